"""Opening the trial database: storage URLs, configured engines, sessions.

Supported storage URLs (anything else is refused with `StorageError` before connecting):

    sqlite:///relative/path.sqlite3      sqlite:////absolute/path.sqlite3
    postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DBNAME   (plain postgresql:// means psycopg 3)

The default is `$SWEEPER_DB`, else `sqlite:///sweeper.sqlite3`. A relative SQLite path is made
absolute at once, so Ray workers that start in another directory open the same file.

Many writers on one SQLite file
-------------------------------
Every trial's worker process writes its members and metrics itself, so SQLite sees several writer
processes at once. SQLite allows one writer at a time; the others must wait, and the way they wait
decides whether they fail with "database is locked":

- WAL journal mode: readers never block the writer and the writer never blocks readers. Switching
  a file into WAL takes an exclusive lock and SQLite does not call the busy handler for it: when
  several processes open a new file at once, `PRAGMA journal_mode = WAL` fails at once with
  "database is locked" in some of them (measured with plain sqlite3: in 46 of 200 runs of six
  processes). `_enter_wal` skips the switch when the file is already in WAL and otherwise retries
  it for up to 30 s.
- busy_timeout = 30 s: a connection that finds the write lock taken sleeps and retries for up to
  30 s instead of failing at once.
- BEGIN IMMEDIATE for every transaction of `Database.session()`: the write lock is taken when the
  transaction starts. With the driver's default (a deferred BEGIN, or none before a SELECT) a
  transaction starts as a reader and upgrades to a writer at its first INSERT; if another process
  wrote in between, SQLite cannot wait for the lock (the reader's snapshot is stale) and fails at
  once with SQLITE_BUSY, whatever the timeout. Python's sqlite3 transaction handling is switched off
  (`isolation_level = None`) and SQLAlchemy emits the BEGIN IMMEDIATE itself.
- Short transactions: a worker commits a batch of metrics rows at a time (milliseconds), so the
  lock is never held long and 30 s is a wide margin. Do not keep a `session()` open across training.
- `Database.read_session()` uses a plain (deferred) BEGIN and `PRAGMA query_only`, so readers such as
  dashboards never take the write lock.

PostgreSQL needs none of this (row-level locks, MVCC); read sessions there are READ ONLY
transactions. An engine holds pooled connections: after `fork()` open a new `Database` in the child.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import event, orm

from sweeper import jsonio
from sweeper.db.models import SCHEMA_REVISION, VERSION_TABLE
from sweeper.errors import SweeperError

ENV_VAR = "SWEEPER_DB"
DEFAULT_URL = "sqlite:///sweeper.sqlite3"
BUSY_TIMEOUT_S = 30.0
URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER@HOST[:PORT]/DBNAME"


class StorageError(SweeperError, RuntimeError):
    """The storage URL is malformed, or the database cannot be used as it is."""

    field_default = "--storage"

    @classmethod
    def no_database(cls, path: str | Path) -> StorageError:
        """No SQLite file at `path`: what to run to create one, or how to name another."""
        default = Path(sa.make_url(DEFAULT_URL).database).absolute()
        looked = f"no database at {path}" + (f" (the default, {DEFAULT_URL})" if Path(path) == default else "")
        return cls(f"{looked}; run `sweeper submit STUDY.toml` first to create it, or pass --storage URL "
                   f"(or set ${ENV_VAR}) to use another database")

    @classmethod
    def wrong_schema(cls, url: sa.URL, revision: str | None) -> StorageError:
        """The database at `url` is not at this code's schema revision (None: no sweeper schema)."""
        found = "no sweeper schema" if revision is None else f"schema revision {revision}"
        return cls(f"{safe_url(url)} has {found}; this code needs revision {SCHEMA_REVISION}: "
                   f"`sweeper submit STUDY.toml --storage URL` upgrades it (or update sweeper, if the "
                   f"database is newer)")


def default_url() -> str:
    """`$SWEEPER_DB` if set, else `sqlite:///sweeper.sqlite3`."""
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def safe_url(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_url(url: str | sa.URL | None = None) -> sa.URL:
    """Check a storage URL without connecting; return it normalized (driver named, SQLite path absolute)."""
    if url is None:
        url = default_url()
    if isinstance(url, str):
        text = url.strip()
        if not text:
            raise StorageError(f"empty storage URL; expected {URL_FORMS}")
        try:
            url = sa.make_url(text)
        except (sa.exc.ArgumentError, ValueError) as e:
            raise StorageError(f"cannot parse storage URL {text!r} ({e}); expected {URL_FORMS}") from None
    elif not isinstance(url, sa.URL):
        raise StorageError(f"expected a storage URL string, got {type(url).__name__}")

    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        return _check_sqlite_url(url, driver)
    if backend in ("postgresql", "postgres"):
        return _check_postgresql_url(url, driver)
    raise StorageError(f"unsupported database {backend!r} in {safe_url(url)}; expected {URL_FORMS}")


def _check_sqlite_url(url: sa.URL, driver: str) -> sa.URL:
    where = safe_url(url)
    if driver not in ("", "pysqlite"):
        raise StorageError(f"{where}: SQLite driver {driver!r} is not supported; use sqlite:///PATH")
    if url.host or url.port or url.username or url.password:
        raise StorageError(
            f"{where}: a SQLite URL has no host part (got {url.host!r}); a file path needs three slashes: "
            f"sqlite:///relative/path or sqlite:////absolute/path"
        )
    if not url.database or url.database == ":memory:":
        raise StorageError(
            f"{where}: missing database file path (an in-memory SQLite database cannot be shared by worker "
            f"processes); use sqlite:///PATH"
        )
    if url.query:
        raise StorageError(f"{where}: SQLite URLs take no options (got ?{'&'.join(url.query)})")
    path = Path(url.database).absolute()
    if path.is_dir():
        raise StorageError(f"{where}: {path} is a directory, not a database file")
    if not path.parent.is_dir():
        raise StorageError(f"{where}: directory {path.parent} does not exist")
    return url.set(drivername="sqlite+pysqlite", database=str(path))


def _check_postgresql_url(url: sa.URL, driver: str) -> sa.URL:
    where = safe_url(url)
    if driver not in ("", "psycopg"):
        raise StorageError(f"{where}: PostgreSQL driver {driver!r} is not supported; use postgresql+psycopg://")
    if not url.database:
        raise StorageError(f"{where}: missing database name; expected postgresql+psycopg://USER@HOST[:PORT]/DBNAME")
    return url.set(drivername="postgresql+psycopg")


def backend_of(url: sa.URL) -> Literal["sqlite", "postgresql"]:
    return "sqlite" if url.drivername.startswith("sqlite") else "postgresql"


# ---------------------------------------------------------------------------------------------------
# Engines


_strict_json_dumps = functools.partial(jsonio.dumps, indent=None)


def make_engine(url: sa.URL, *, read_only: bool = False, foreign_keys: bool = True) -> sa.Engine:
    """An engine configured as the module docstring describes. `url` must come from `parse_url`.

    `foreign_keys=False` is for migrations only: SQLite rebuilds a table by copying it and dropping the
    old one, which must not cascade (SQLite's documented procedure for schema changes).
    """
    if backend_of(url) == "postgresql":
        engine = sa.create_engine(url, pool_pre_ping=True, json_serializer=_strict_json_dumps)
        return engine.execution_options(postgresql_readonly=True) if read_only else engine

    engine = sa.create_engine(url, json_serializer=_strict_json_dumps)
    busy_ms = int(BUSY_TIMEOUT_S * 1000)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, emits BEGIN (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        _enter_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; fsync at checkpoints
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        if read_only:
            cursor.execute("PRAGMA query_only = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _enter_wal(cursor: sqlite3.Cursor, timeout_s: float = BUSY_TIMEOUT_S) -> None:
    """Put the file in WAL mode (persistent: stored in the file), retrying while another process
    holds a lock, since SQLite's busy handler does not cover this switch (module docstring)."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.001
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorname", "") not in ("SQLITE_BUSY", "SQLITE_LOCKED"):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(delay_s)
            delay_s = min(2 * delay_s, 0.05)


# ---------------------------------------------------------------------------------------------------
# Database


class Database:
    """An open trial database: a configured engine and short-lived sessions.

    db = open_db("sqlite:///runs.sqlite3")
    with db.session() as s:          # one short write transaction, committed on exit
        s.add(member)
    with db.read_session() as s:     # read-only, never takes the write lock
        s.scalars(select(Member)).all()
    """

    def __init__(self, url: sa.URL):
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = orm.sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine: sa.Engine | None = None
        self._read_sessionmaker: orm.sessionmaker[orm.Session] | None = None

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return backend_of(self.url)

    @contextmanager
    def session(self) -> Iterator[orm.Session]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self.sessionmaker.begin() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[orm.Session]:
        """A read-only transaction (the database refuses writes in it). Loaded objects stay readable."""
        if self._read_sessionmaker is None:
            self._read_engine = make_engine(self.url, read_only=True)
            self._read_sessionmaker = orm.sessionmaker(self._read_engine, expire_on_commit=False)
        with self._read_sessionmaker() as session:
            yield session  # closing returns the connection, whose pool rolls the transaction back

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({safe_url(self.url)!r})"


def schema_revision(engine: sa.Engine) -> str | None:
    """The schema's Alembic revision, or None for a database sweeper never set up."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def open_db(url: str | sa.URL | None = None, *, check_schema: bool = True) -> Database:
    """Open an existing trial database; its schema must be at this code's revision.

    Nothing about the schema is changed here: create or upgrade a database with
    `sweeper.db.upgrade(url)` (once, from the driver, before workers start).
    """
    url = parse_url(url)
    if backend_of(url) == "sqlite" and not Path(url.database).exists():
        raise StorageError.no_database(url.database)
    db = Database(url)
    if check_schema:
        try:
            revision = schema_revision(db.engine)
        except sa.exc.OperationalError as e:
            db.dispose()
            raise StorageError(f"cannot connect to {safe_url(url)}: {e.orig}") from e
        if revision != SCHEMA_REVISION:
            db.dispose()
            raise StorageError.wrong_schema(url, revision)
    return db
