"""Fixtures shared by the database tests: a blank database on each backend.

`db_url` is a fresh SQLite file, or a fresh uniquely named PostgreSQL database (created on the server
named by $SWEEPER_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres, and dropped with
everything in it afterwards, Optuna's tables included), so tests never see each other's tables.

Markers (registered in pyproject.toml) are added here by what a test uses, so a test file need not
name them: `postgres` (a BACKENDS parameter set to "postgresql", or a PostgreSQL fixture), `browser`
(the `chromium` fixture), `ray` (the `local_ray` or `cluster` fixture, or a module whose tests run
`sweeper submit` in subprocesses), `cluster` (tests/sweep/test_cluster.py). `slow` is written on
the tests themselves.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("SWEEPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _pg_admin():
    import psycopg

    conninfo = sa.make_url(PG_ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"cannot reach the PostgreSQL server for the PostgreSQL tests at {PG_ADMIN_URL} ({e}). "
            f"Start one, or point SWEEPER_TEST_PG at a server where this user may CREATE DATABASE.",
            pytrace=False,
        )


@contextmanager
def _fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'sweeper.sqlite3'}"
        return
    name = f"sweeper_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            sa.make_url(PG_ADMIN_URL)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def fresh_database() -> Callable[[str, Path], AbstractContextManager[str]]:
    """`with fresh_database(backend, directory) as url:` a blank database, for fixtures of wider scope."""
    return _fresh_database


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> Iterator[str]:
    """A blank database on each backend."""
    with _fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def db(db_url):
    from sweeper.db import open_db, upgrade

    upgrade(db_url)
    database = open_db(db_url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def local_ray():
    """A private local Ray (2 CPUs, loopback, no dashboard) for one test module's in-process submits."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def chromium():
    """One headless Debian Chromium (under Playwright) for the whole run; each test opens its own context."""
    from tests.helpers import browser

    with browser.browser() as b:
        yield b


# ---------------------------------------------------------------------------------------------------
# Markers by use

POSTGRES_FIXTURES = {"pg_url"}
BROWSER_FIXTURES = {"chromium"}
RAY_FIXTURES = {"local_ray", "cluster"}
# Modules whose tests start Ray through `sweeper submit` subprocesses or `ray start`, not a fixture.
RAY_MODULES = {"tests/sweep/test_driver.py", "tests/sweep/test_local_ray.py", "tests/sweep/test_cluster.py"}
CLUSTER_MODULES = {"tests/sweep/test_cluster.py"}


def pytest_collection_modifyitems(config, items):
    root = Path(str(config.rootpath))
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        try:
            module = Path(str(item.path)).relative_to(root).as_posix()
        except ValueError:
            module = ""
        if any(isinstance(v, str) and v == "postgresql" for v in params.values()) or fixtures & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if fixtures & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if fixtures & RAY_FIXTURES or module in RAY_MODULES:
            item.add_marker(pytest.mark.ray)
        if module in CLUSTER_MODULES:
            item.add_marker(pytest.mark.cluster)
