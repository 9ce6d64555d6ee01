"""Schema migrations, run from Python with Alembic (no alembic.ini).

`upgrade(url)` creates a blank database or brings an old one to the current schema. A database
without sweeper's schema gets the current one at once, from `models.Base.metadata`, and is stamped
with the head revision (Alembic's recipe for new databases); the revisions run only on databases an
older sweeper made, and a test checks that both roads lead to the same schema. The database may hold
other tables, Optuna's RDBStorage included: sweeper's are all prefixed `sw_`. It is safe to
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
from sweeper.db.models import VERSION_TABLE, Base

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x5357454550  # "SWEEP": the advisory lock that serializes concurrent upgrades


def alembic_config(url: str | sa.URL | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option(
            "sqlalchemy.url", parse_url(url).render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """For Alembic's autogenerate: only sweeper's tables count; others (Optuna's) are left alone."""
    return type_ != "table" or name in Base.metadata.tables


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
            config.attributes["connection"] = connection
            blank = not sa.inspect(connection).has_table(VERSION_TABLE)
            if blank and revision in ("head", head_revision()):
                _create_current_schema(connection, url)
                command.stamp(config, "head")
            else:
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


def _create_current_schema(connection: sa.Connection, url: sa.URL) -> None:
    ours = set(Base.metadata.tables) & set(sa.inspect(connection).get_table_names())
    if ours:
        raise StorageError(
            f"{safe_url(url)} has table(s) {', '.join(sorted(ours))} but no {VERSION_TABLE}: not a database "
            f"sweeper made; use another database"
        )
    Base.metadata.create_all(connection, checkfirst=False)
