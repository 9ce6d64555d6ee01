"""Alembic environment: run by `sweeper.db.migrate`, which passes an open connection.

The connection comes inside a transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL), so Alembic runs every revision in that one transaction (`transactional_ddl=True`; SQLite
does have transactional DDL, Alembic only assumes it lacks it). On SQLite, foreign keys are off for
the migration connection, and `migrate.upgrade` runs `PRAGMA foreign_key_check` before committing.
"""

from alembic import context

from sweeper.db.engine import make_engine, parse_url
from sweeper.db.migrate import include_name
from sweeper.db.models import VERSION_TABLE, Base


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
        compare_type=True,
        include_name=include_name,  # the database may hold Optuna's tables too
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("sweeper's migrations run online only: use sweeper.db.upgrade(url)")

_connection = context.config.attributes.get("connection")
if _connection is not None:
    run_migrations(_connection)
else:  # the alembic command line, e.g. autogenerating a revision
    _engine = make_engine(parse_url(context.config.get_main_option("sqlalchemy.url")), foreign_keys=False)
    with _engine.connect() as _connection:
        run_migrations(_connection)
    _engine.dispose()
