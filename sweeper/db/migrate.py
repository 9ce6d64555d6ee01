"""Schema migrations, run from Python with Alembic (no alembic.ini).

`upgrade(url)` creates a blank database or brings an old one to the current schema. It is safe to
run from several processes at once: the whole upgrade is one transaction (SQLite and PostgreSQL both
have transactional DDL) taken under an exclusive lock (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL), so the second process waits and then finds nothing to do. A failed upgrade rolls back
and leaves the database at its old revision, never half-migrated.

To write a new revision (developers): change `models.py`, then

    python -c "from alembic import command; from sweeper.db.migrate import alembic_config; \
command.revision(alembic_config('sqlite:///scratch.sqlite3'), 'what changed', autogenerate=True)"

against a scratch database upgraded to the previous head, review the generated file in
`migrations/versions/`, give it the next number, and update `models.SCHEMA_REVISION`. A revision
that changes an existing table goes through `op.batch_alter_table(name, copy_from=<the table as the
previous revision left it>)`: SQLite rebuilds the table, and rebuilding it from reflection would
lose the Float64 and JSON column types and the CHECK constraints (see 0002_predictors.py).
Revisions only move forward; `downgrade()` raises.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from sweeper.db.engine import StorageError, backend_of, make_engine, parse_url, safe_url, schema_revision
from sweeper.db.models import VERSION_TABLE

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x5357454550  # "SWEEP": the advisory lock that serializes concurrent upgrades
_OPTUNA_TABLES = ("study_directions", "trial_values", "version_info")


def alembic_config(url: str | sa.URL | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option(
            "sqlalchemy.url", parse_url(url).render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str | sa.URL | None = None) -> str | None:
    """The database's schema revision; None if sweeper never set it up."""
    url = parse_url(url)
    engine = make_engine(url)
    try:
        return schema_revision(engine)
    finally:
        engine.dispose()


def upgrade(url: str | sa.URL | None = None, revision: str = "head") -> str:
    """Create or upgrade the database at `url` to `revision` (default: the newest); return it."""
    url = parse_url(url)
    engine = make_engine(url, foreign_keys=False)
    config = alembic_config()
    try:
        with engine.begin() as connection:  # BEGIN IMMEDIATE on SQLite
            if backend_of(url) == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            _refuse_optuna_storage(connection, url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            if backend_of(url) == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StorageError(f"{safe_url(url)}: upgrade would break foreign keys: {broken[:5]}")
            return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
    except CommandError as e:
        # e.g. "Can't locate revision identified by '0007'": the database is newer than this code.
        raise StorageError(f"cannot upgrade {safe_url(url)}: {e}") from e
    except sa.exc.OperationalError as e:
        raise StorageError(f"cannot upgrade {safe_url(url)}: {e.orig}") from e
    finally:
        engine.dispose()


def _refuse_optuna_storage(connection: sa.Connection, url: sa.URL) -> None:
    tables = set(sa.inspect(connection).get_table_names())
    if tables.intersection(_OPTUNA_TABLES):
        raise StorageError(
            f"{safe_url(url)} holds an Optuna storage (tables {', '.join(sorted(tables & set(_OPTUNA_TABLES)))}), "
            f"whose 'studies' and 'trials' tables would clash with sweeper's; give Optuna a database of its own"
        )
