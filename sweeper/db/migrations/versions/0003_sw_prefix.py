"""Prefix every table with `sw_` (to share a database with Optuna); columns for the sweep executor.

Optuna's RDBStorage owns the tables `studies` and `trials` (and the index `ix_trials_study_id`), so
sweeper's tables, indexes and constraints are renamed `sw_...` and both can live in one database.
New columns:

- sw_studies: driver_host, driver_pid, heartbeat_at (the driver's liveness, checked on resume),
  planned_trials.
- sw_trials: points (the configurations the pack trains: [{"point", "optuna_trial_number",
  "config_index"}]), result (the last summary reported).
- sw_members: config_index, optuna_trial_number, stop_step.

PostgreSQL renames in place (tables, constraints, indexes, sequences). SQLite cannot rename a
constraint, and a unique constraint's name is part of its table's CREATE statement, so there each
table is created afresh under its new name from the definitions below, its rows copied, and the old
table dropped (foreign keys are off during migrations; `migrate.upgrade` checks them before commit).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from sweeper.db.types import Float64, StrictJSON, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PREFIX = "sw_"
OLD_TABLES = ("studies", "trials", "members", "member_metrics", "predictors", "warnings", "boundary_fits")
"""Parents before children: the order to create in (and, reversed, to drop in)."""
NEW_COLUMNS = {
    "studies": ["driver_host", "driver_pid", "heartbeat_at", "planned_trials"],
    "trials": ["points", "result"],
    "members": ["config_index", "optuna_trial_number", "stop_step"],
}

# Constraint and index names, as the naming convention in models.py makes them, without the table
# prefix: (table, kind, rest, referred table). Checks carry the enum's name, foreign keys the column.
_NAMES = [
    ("studies", "pk", "", None), ("studies", "uq", "name", None), ("studies", "ck", "study_status", None),
    ("trials", "pk", "", None), ("trials", "uq", "study_id_number", None), ("trials", "ck", "trial_status", None),
    ("trials", "fk", "study_id", "studies"), ("trials", "ix", "study_id", None),
    ("members", "pk", "", None), ("members", "uq", "trial_id_pack_index", None), ("members", "ck", "outcome", None),
    ("members", "fk", "study_id", "studies"), ("members", "fk", "trial_id", "trials"),
    ("members", "ix", "study_id_outcome", None),
    ("member_metrics", "pk", "", None), ("member_metrics", "fk", "member_id", "members"),
    ("warnings", "pk", "", None), ("warnings", "ck", "warning_action", None),
    ("warnings", "fk", "member_id", "members"), ("warnings", "fk", "predictor_id", "predictors"),
    ("warnings", "ix", "member_id_step", None),
    ("predictors", "pk", "", None), ("predictors", "fk", "study_id", "studies"), ("predictors", "ix", "study_id", None),
    ("boundary_fits", "pk", "", None), ("boundary_fits", "fk", "study_id", "studies"),
    ("boundary_fits", "ix", "study_id", None),
]  # fmt: skip
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""models.NAMING_CONVENTION, frozen here as this revision used it."""


def _name(table: str, kind: str, rest: str, referred: str | None, prefix: str) -> str:
    parts = [kind, prefix + table, rest, prefix + referred if referred else ""]
    return "_".join(p for p in parts if p)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rename_in_place()
    else:
        _rebuild()


def _rename_in_place() -> None:
    for table in OLD_TABLES:
        op.rename_table(table, PREFIX + table)
        op.execute(f"ALTER SEQUENCE IF EXISTS {table}_id_seq RENAME TO {PREFIX}{table}_id_seq")
    for table, kind, rest, referred in _NAMES:
        old, new = _name(table, kind, rest, referred, ""), _name(table, kind, rest, referred, PREFIX)
        if kind == "ix":
            op.execute(f"ALTER INDEX {old} RENAME TO {new}")
        else:  # renaming a primary key or unique constraint renames its index too
            op.execute(f"ALTER TABLE {PREFIX}{table} RENAME CONSTRAINT {old} TO {new}")
    tables = _tables_0003()
    for table, columns in NEW_COLUMNS.items():
        for column in columns:
            op.add_column(PREFIX + table, sa.Column(column, tables[PREFIX + table].c[column].type, nullable=True))


def _rebuild() -> None:
    bind = op.get_bind()
    tables = _tables_0003()
    for table in OLD_TABLES:
        new = tables[PREFIX + table]
        new.create(bind)
        columns = ", ".join(c.name for c in new.columns if c.name not in NEW_COLUMNS.get(table, ()))
        op.execute(f"INSERT INTO {new.name} ({columns}) SELECT {columns} FROM {table}")
    for table in reversed(OLD_TABLES):
        op.drop_table(table)  # drops its indexes too


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _floats(*names: str) -> list[sa.Column]:
    return [sa.Column(name, Float64(), nullable=True) for name in names]


def _tables_0003() -> dict[str, sa.Table]:
    """Every table as this revision leaves it (the SQLite rebuild creates them from this)."""
    m = sa.MetaData(naming_convention=NAMING_CONVENTION)
    sa.Table(
        "sw_studies", m,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column(
            "status", _enum("study_status", "CREATED", "RUNNING", "COMPLETE", "FAILED", "INTERRUPTED"), nullable=False
        ),
        sa.Column("spec", StrictJSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.Column("optuna_study_name", sa.String(255), nullable=True),
        sa.Column("driver_host", sa.String(255), nullable=True),
        sa.Column("driver_pid", sa.Integer(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("planned_trials", sa.Integer(), nullable=True),
    )
    sa.Table(
        "sw_trials", m,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("sw_studies.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "status", _enum("trial_status", "WAITING", "RUNNING", "COMPLETE", "FAILED", "PRUNED"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("ray_trial_id", sa.String(255), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("device", sa.String(255), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("wall_time_s", Float64(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("optuna_trial_number", sa.Integer(), nullable=True),
        sa.Column("points", StrictJSON(), nullable=True),
        sa.Column("result", StrictJSON(), nullable=True),
        sa.UniqueConstraint("study_id", "number"),
    )  # fmt: skip
    sa.Table(
        "sw_members", m,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.Integer(), sa.ForeignKey("sw_trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("sw_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pack_index", sa.Integer(), nullable=False),
        *[sa.Column(name, Float64(), nullable=False) for name in ("lr", "plasticity", "ratio", "gamma", "clip")],
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("config", StrictJSON(), nullable=False),
        sa.Column(
            "outcome", _enum("outcome", "running", "stable", "exploded", "stopped_early", "failed"), nullable=False
        ),
        sa.Column("explode_step", sa.Integer(), nullable=True),
        sa.Column("steps_done", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        *_floats("final_loss", "final_acc", "mem_acc", "baseline", "eval_loss", "eval_acc", "eval_mem_acc",
                 "eval_mem_acc_frozen"),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("wall_time_s", Float64(), nullable=True),
        sa.Column("device", sa.String(255), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.Column("config_index", sa.Integer(), nullable=True),
        sa.Column("optuna_trial_number", sa.Integer(), nullable=True),
        sa.Column("stop_step", sa.Integer(), nullable=True),
        sa.UniqueConstraint("trial_id", "pack_index"),
        sa.Index("ix_sw_members_study_id_outcome", "study_id", "outcome"),
    )  # fmt: skip
    sa.Table(
        "sw_member_metrics", m,
        sa.Column("member_id", sa.Integer(), sa.ForeignKey("sw_members.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        *_floats("loss", "acc", "mem_acc", "baseline", "grad_eph", "grad_slow", "grad_ratio", "grad_rms_ratio",
                 "w_eph", "w_slow", "max_logit"),
    )  # fmt: skip
    sa.Table(
        "sw_predictors", m,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("sw_studies.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("payload", StrictJSON(), nullable=True),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
    )  # fmt: skip
    sa.Table(
        "sw_warnings", m,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("member_id", sa.Integer(), sa.ForeignKey("sw_members.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("score", Float64(), nullable=False),
        sa.Column("predictor", sa.String(255), nullable=False),
        sa.Column("signals", StrictJSON(), nullable=True),
        sa.Column("action", _enum("warning_action", "stopped", "shadow"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("predictor_id", sa.Integer(), sa.ForeignKey("sw_predictors.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Index("ix_sw_warnings_member_id_step", "member_id", "step"),
    )  # fmt: skip
    sa.Table(
        "sw_boundary_fits", m,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("sw_studies.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("payload", StrictJSON(), nullable=True),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
    )  # fmt: skip
    return dict(m.tables)


def downgrade() -> None:
    raise NotImplementedError("sweeper's schema only moves forward; restore a copy of the database to go back")
