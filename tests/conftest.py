"""Fixtures shared by the database tests: a blank database on each backend.

`db_url` is a fresh SQLite file, or a fresh uniquely named PostgreSQL database (created on the server
named by $SWEEPER_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres, and dropped with
everything in it afterwards, Optuna's tables included), so tests never see each other's tables.
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
