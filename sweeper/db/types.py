"""Column types that store what the engine produces, exactly, on SQLite and PostgreSQL alike.

Exploding members are the point of this project, so NaN and +-inf are ordinary values here, not
errors. Each backend needs help in a different place:

- `Float64`: PostgreSQL's `double precision` keeps NaN, +-inf and -0.0 natively. SQLite keeps +-inf,
  but turns a NaN parameter into NULL, and a column with REAL (or NUMERIC) affinity stores an
  integral value as an integer, which loses the sign of -0.0. So on SQLite the column is declared
  without a type (BLOB affinity: values are stored as given, IEEE doubles included) and NaN is stored
  as the text 'NaN'. SQLite orders text after every number, and PostgreSQL orders NaN after +inf, so
  `ORDER BY` and `= 'NaN'` agree on both backends. (Aggregates differ: SQLite's AVG reads the text as
  0, PostgreSQL's returns NaN. Filter with `<> 'NaN'` first.)
- `StrictJSON`: JSON has no NaN or Infinity, and Python's `json` writes the non-standard tokens
  `NaN`/`Infinity`, which browsers and PostgreSQL refuse. Non-finite floats are stored as the strings
  "NaN", "Infinity" and "-Infinity" (`sweeper.jsonio`, the convention of Protocol Buffers' JSON
  mapping) and turned back into floats on reading. A genuine string "NaN" inside a JSON value
  therefore reads back as a float.
- `UTCDateTime`: SQLite has no time zones, and PostgreSQL's `timestamp` has none either; both store
  naive UTC and every value read back is timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, UserDefinedType

from sweeper.jsonio import from_strict, to_strict

NAN_TEXT = "NaN"


# ---------------------------------------------------------------------------------------------------
# Floats


class _UntypedSQLite(UserDefinedType):
    """A column declared with no type: SQLite gives it BLOB affinity and converts nothing."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return ""


class Float64(TypeDecorator):
    """A float column that round-trips every IEEE double (NaN, +-inf, -0.0) on SQLite and PostgreSQL."""

    impl = sa.Double
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_UntypedSQLite())
        return dialect.type_descriptor(sa.Double())

    def process_bind_param(self, value: Any, dialect: Dialect) -> float | str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"expected a real number, got {value!r} ({type(value).__name__})")
        value = float(value)
        if dialect.name == "sqlite" and math.isnan(value):
            return NAN_TEXT
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        # float() also reads the text 'NaN' that SQLite holds for NaN.
        return None if value is None else float(value)


# ---------------------------------------------------------------------------------------------------
# JSON


class StrictJSON(TypeDecorator):
    """JSON (PostgreSQL `json`, SQLite text) that never contains the non-standard NaN/Infinity tokens."""

    impl = sa.JSON
    cache_ok = True

    def __init__(self) -> None:
        # SQL NULL for None, never the JSON text 'null'.
        super().__init__(none_as_null=True)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else to_strict(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else from_strict(value)


# ---------------------------------------------------------------------------------------------------
# Time


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as naive UTC and read back as aware UTC. Naive input is refused."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise TypeError(f"expected a timezone-aware datetime, got {value!r}")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)
