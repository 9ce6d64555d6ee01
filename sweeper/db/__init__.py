"""The trial database: studies, trials (packs of members), members, per-batch metrics, warnings.

    from sweeper.db import upgrade, open_db, Member
    upgrade(url)                 # create or migrate the schema (once, from the driver)
    db = open_db(url)            # then, in every process
    with db.session() as s:      # one short write transaction
        s.add(...)

SQLite (one file, many writer processes) and PostgreSQL are both supported, with the same schema
and the same values (NaN and +-inf included). The database may also hold Optuna's RDBStorage: all of
sweeper's tables are prefixed `sw_`. Read-side queries (study progress, member tables, exports) are
in `sweeper.db.queries`. Importing this package loads SQLAlchemy only;
Alembic loads with `upgrade`, psycopg with the first PostgreSQL query.
"""

from sweeper.db.engine import (
    DEFAULT_URL,
    ENV_VAR,
    Database,
    StorageError,
    default_url,
    open_db,
    parse_url,
    schema_revision,
)
from sweeper.db.models import (
    METRIC_NAMES,
    SCHEMA_REVISION,
    Base,
    BoundaryFit,
    EarlyWarning,
    Member,
    MemberMetric,
    Outcome,
    Predictor,
    Study,
    StudyStatus,
    Trial,
    TrialStatus,
    WarningAction,
)
from sweeper.db.queries import StudyNotFound, export_study, member_rows, parse_filter, study_progress
from sweeper.db.readonly import QueryError, QueryRefused, readonly_schema_revision, run_readonly_query
from sweeper.db.types import Float64, StrictJSON, UTCDateTime


def upgrade(url=None, revision: str = "head") -> str:
    """Create or upgrade the database at `url` to `revision`; see `sweeper.db.migrate.upgrade`."""
    from sweeper.db import migrate  # Alembic is needed only here

    return migrate.upgrade(url, revision)


__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "METRIC_NAMES",
    "SCHEMA_REVISION",
    "Base",
    "BoundaryFit",
    "Database",
    "EarlyWarning",
    "Float64",
    "Member",
    "MemberMetric",
    "Outcome",
    "Predictor",
    "QueryError",
    "QueryRefused",
    "StorageError",
    "StrictJSON",
    "Study",
    "StudyNotFound",
    "StudyStatus",
    "Trial",
    "TrialStatus",
    "UTCDateTime",
    "WarningAction",
    "default_url",
    "export_study",
    "member_rows",
    "open_db",
    "parse_filter",
    "parse_url",
    "readonly_schema_revision",
    "run_readonly_query",
    "schema_revision",
    "study_progress",
    "upgrade",
]
