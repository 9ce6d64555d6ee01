"""Ad-hoc SQL over the trial database, read-only by construction.

`run_readonly_query(url, sql)` runs one statement that only reads (SELECT, WITH ... SELECT, VALUES,
and on PostgreSQL TABLE) and returns its column names and rows. The database itself enforces this,
not a look at the SQL text, so quoting, comments and unicode tricks change nothing:

- SQLite: the file is opened read-only (`mode=ro`) with `PRAGMA query_only`, and an authorizer (a
  callback SQLite consults while compiling a statement) allows only reading tables and calling
  functions. It refuses what `mode=ro` alone lets through: ATTACH (which creates files), PRAGMA
  (including `query_only = OFF`), and temporary tables, views and triggers. Python's sqlite3 compiles
  one statement at a time and refuses a string with a second one before running anything.
- PostgreSQL: the session is READ ONLY (`default_transaction_read_only` and `BEGIN READ ONLY`), and
  the statement runs as `DECLARE ... CURSOR FOR <sql>` over the extended query protocol: the server
  accepts only a single SELECT/VALUES there and refuses data-modifying CTEs, so COPY, SET, DO,
  CALL and a second statement never run. Functions a SELECT can call still run with the connecting
  role's rights: for untrusted users connect as a role with SELECT privileges only.

Values come back as each backend stores them: on SQLite a NaN in a float column reads as the text
'NaN' (see `sweeper.db.types`), on PostgreSQL as float('nan').
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sweeper.db.engine import BUSY_TIMEOUT_S, StorageError, backend_of, parse_url, safe_url

QueryResult = tuple[list[str], list[tuple[Any, ...]]]

_ONE_READ = "only a single read statement (SELECT, WITH ... SELECT, VALUES) can run"


class QueryError(StorageError):
    """The query failed: bad SQL, an unknown table, too many rows, or the time limit."""

    field_default = "query"


class QueryRefused(QueryError):
    """The query is not a single read statement; nothing ran."""


def run_readonly_query(
    url: str | sa.URL | None, sql: str, *, max_rows: int = 10_000, timeout_s: float = 30.0
) -> QueryResult:
    """Run one read-only statement; return (column names, rows).

    Raises QueryRefused for anything but a single read statement, QueryError if the query fails or
    returns more than `max_rows` rows (add a LIMIT), StorageError for a bad URL or database.
    """
    url = parse_url(url)
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused(f"empty query; {_ONE_READ}")
    if "\x00" in sql:
        raise QueryRefused("the query contains a NUL character")
    if backend_of(url) == "sqlite":
        return _sqlite_query(url, sql, max_rows, timeout_s)
    return _postgresql_query(url, sql, max_rows, timeout_s)


def readonly_schema_revision(url: str | sa.URL | None) -> str | None:
    """The schema revision of the database at `url` (None: no sweeper schema), read as a query is.

    Unlike `open_db`, nothing about the database is touched (no journal mode set, no file created).
    """
    from sweeper.db.models import VERSION_TABLE

    try:
        _, rows = run_readonly_query(url, f"SELECT version_num FROM {VERSION_TABLE}", max_rows=1)
    except QueryRefused:
        raise
    except QueryError:  # no such table
        return None
    return rows[0][0] if rows else None


def _check_row_count(rows: list, max_rows: int) -> list:
    if len(rows) > max_rows:
        raise QueryError(f"the query returns more than {max_rows} rows; add a LIMIT")
    return rows


# ---------------------------------------------------------------------------------------------------
# SQLite

# The action codes of sqlite3_set_authorizer (https://sqlite.org/c3ref/c_alter_table.html).
_SQLITE_ACTIONS = {
    1: "CREATE INDEX", 2: "CREATE TABLE", 3: "CREATE TEMP INDEX", 4: "CREATE TEMP TABLE",
    5: "CREATE TEMP TRIGGER", 6: "CREATE TEMP VIEW", 7: "CREATE TRIGGER", 8: "CREATE VIEW",
    9: "DELETE", 10: "DROP INDEX", 11: "DROP TABLE", 12: "DROP TEMP INDEX", 13: "DROP TEMP TABLE",
    14: "DROP TEMP TRIGGER", 15: "DROP TEMP VIEW", 16: "DROP TRIGGER", 17: "DROP VIEW", 18: "INSERT",
    19: "PRAGMA", 20: "READ", 21: "SELECT", 22: "TRANSACTION", 23: "UPDATE", 24: "ATTACH",
    25: "DETACH", 26: "ALTER TABLE", 27: "REINDEX", 28: "ANALYZE", 29: "CREATE VTABLE",
    30: "DROP VTABLE", 31: "FUNCTION", 32: "SAVEPOINT", 33: "RECURSIVE",
}  # fmt: skip
_SQLITE_ALLOWED = {20, 21, 31, 33}  # READ, SELECT, FUNCTION, RECURSIVE


def _sqlite_query(url: sa.URL, sql: str, max_rows: int, timeout_s: float) -> QueryResult:
    path = Path(url.database)
    if not path.is_file():
        raise StorageError.no_database(path)
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as e:
        raise StorageError(f"cannot open {path} read-only: {e}") from e
    try:
        connection.execute("PRAGMA query_only = ON")
        denied: list[str] = []

        def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
            if action in _SQLITE_ALLOWED:
                return sqlite3.SQLITE_OK
            target = " ".join(a for a in (arg1, arg2) if a)
            denied.append(f"{_SQLITE_ACTIONS.get(action, f'action {action}')} {target}".strip())
            return sqlite3.SQLITE_DENY

        connection.set_authorizer(authorize)
        deadline = time.monotonic() + timeout_s
        connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            cursor = connection.execute(sql)
            if cursor.description is None:
                raise QueryRefused(f"the statement returns no rows; {_ONE_READ}")
            rows = _check_row_count(cursor.fetchmany(max_rows + 1), max_rows)
        except sqlite3.ProgrammingError as e:  # "You can only execute one statement at a time."
            raise QueryRefused(f"{_ONE_READ} ({e})") from None
        except sqlite3.DatabaseError as e:
            if denied:
                raise QueryRefused(f"{_ONE_READ}; this one would {denied[0]}") from None
            if "readonly" in str(e) or "read-only" in str(e):
                raise QueryRefused(f"{_ONE_READ}; the database refused a write ({e})") from None
            if time.monotonic() > deadline:
                raise QueryError(f"the query ran past its {timeout_s:g} s limit") from None
            raise QueryError(str(e)) from None
        return [d[0] for d in cursor.description], rows
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------------
# PostgreSQL

_CURSOR = "sweeper_readonly"
_DECLARE = f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR "


def _postgresql_query(url: sa.URL, sql: str, max_rows: int, timeout_s: float) -> QueryResult:
    import psycopg  # only PostgreSQL users need the driver

    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    options = f"-c default_transaction_read_only=on -c statement_timeout={int(timeout_s * 1000)}"
    try:
        connection = psycopg.connect(conninfo, options=options, connect_timeout=10)
    except psycopg.Error as e:
        raise StorageError(f"cannot connect to {safe_url(url)}: {e}") from None
    try:
        connection.read_only = True  # BEGIN READ ONLY
        sql = sql.lstrip()
        with connection.cursor() as cursor:
            try:
                # binary=True forces the extended query protocol: one statement per query, or an error.
                cursor.execute(_DECLARE + sql, binary=True)
                cursor.execute(f"FETCH FORWARD {max_rows + 1} FROM {_CURSOR}")
                columns = [column.name for column in cursor.description]
                rows = _check_row_count(cursor.fetchall(), max_rows)
            except psycopg.Error as e:
                raise _classify_postgresql_error(e, timeout_s) from None
        return columns, rows
    finally:
        connection.close()  # ends the read-only transaction without committing anything


def _classify_postgresql_error(e: Exception, timeout_s: float) -> QueryError:
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    sqlstate = getattr(e, "sqlstate", None)
    position = getattr(getattr(e, "diag", None), "statement_position", None)
    if sqlstate == "42601" and (position is None or int(position) == len(_DECLARE) + 1):
        # A syntax error at the statement's first word (INSERT, DROP, COPY, ...) or a second statement.
        return QueryRefused(f"{_ONE_READ} ({message})")
    if sqlstate == "25006" or (sqlstate == "0A000" and "data-modifying" in message):
        return QueryRefused(f"{_ONE_READ}; the database refused a write ({message})")
    if sqlstate == "57014":
        return QueryError(f"the query ran past its {timeout_s:g} s limit")
    return QueryError(message)
