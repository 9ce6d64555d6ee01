"""Initial schema: studies, trials, members, member_metrics, warnings.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from sweeper.db.types import Float64, StrictJSON, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    # VARCHAR + CHECK on every backend (no PostgreSQL ENUM type to migrate later).
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column(
            "status",
            _enum("study_status", "CREATED", "RUNNING", "COMPLETE", "FAILED", "INTERRUPTED"),
            nullable=False,
        ),
        sa.Column("spec", StrictJSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.Column("optuna_study_name", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
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
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name="fk_trials_study_id_studies", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_trials"),
        sa.UniqueConstraint("study_id", "number", name="uq_trials_study_id_number"),
    )
    op.create_index("ix_trials_study_id", "trials", ["study_id"])
    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("pack_index", sa.Integer(), nullable=False),
        sa.Column("lr", Float64(), nullable=False),
        sa.Column("plasticity", Float64(), nullable=False),
        sa.Column("ratio", Float64(), nullable=False),
        sa.Column("gamma", Float64(), nullable=False),
        sa.Column("clip", Float64(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("config", StrictJSON(), nullable=False),
        sa.Column(
            "outcome", _enum("outcome", "running", "stable", "exploded", "stopped_early", "failed"), nullable=False
        ),
        sa.Column("explode_step", sa.Integer(), nullable=True),
        sa.Column("steps_done", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        *[
            sa.Column(name, Float64(), nullable=True)
            for name in (
                "final_loss",
                "final_acc",
                "mem_acc",
                "baseline",
                "eval_loss",
                "eval_acc",
                "eval_mem_acc",
                "eval_mem_acc_frozen",
            )
        ],
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("wall_time_s", Float64(), nullable=True),
        sa.Column("device", sa.String(255), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name="fk_members_study_id_studies", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_members_trial_id_trials", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_members"),
        sa.UniqueConstraint("trial_id", "pack_index", name="uq_members_trial_id_pack_index"),
    )
    op.create_index("ix_members_study_id_outcome", "members", ["study_id", "outcome"])
    op.create_table(
        "member_metrics",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        *[
            sa.Column(name, Float64(), nullable=True)
            for name in (
                "loss",
                "acc",
                "mem_acc",
                "baseline",
                "grad_eph",
                "grad_slow",
                "grad_ratio",
                "grad_rms_ratio",
                "w_eph",
                "w_slow",
                "max_logit",
            )
        ],
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name="fk_member_metrics_member_id_members", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("member_id", "step", name="pk_member_metrics"),
    )
    op.create_table(
        "warnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("score", Float64(), nullable=False),
        sa.Column("predictor", sa.String(255), nullable=False),
        sa.Column("signals", StrictJSON(), nullable=True),
        sa.Column("action", _enum("warning_action", "stopped", "shadow"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name="fk_warnings_member_id_members", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_warnings"),
    )
    op.create_index("ix_warnings_member_id_step", "warnings", ["member_id", "step"])


def downgrade() -> None:
    raise NotImplementedError("sweeper's schema only moves forward; restore a copy of the database to go back")
