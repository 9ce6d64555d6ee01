"""Studies of the fast-weight families (docs/families.md): a member's model family and its own axes.

sw_members:

- `model_kind` (VARCHAR(16), NOT NULL, default 'ephemeral'): the study's `[model] kind`, one of
  'ephemeral', 'rnn', 'fastweights', 'fwp'. Existing rows are backfilled from their study's stored
  spec (`sw_studies.spec`, the JSON of `StudySpec.to_dict()`: `spec["model"]["kind"]`), read and
  parsed here in Python (one query per study, the same code on SQLite and PostgreSQL); a study whose
  spec names no kind (or is not a dict) is 'ephemeral', the default of `[model] kind`.
- `eta`, `beta_scale`, `lam` (Float64, nullable): the families' axes (fastweights: eta; fwp:
  beta_scale; both: lambda, stored as `lam` like the field of FastWeightsHyper and FWPHyper). NULL
  for ephemeral and RNN members, so existing rows keep NULL.
- `plasticity`, `ratio`, `gamma` become nullable: a family member has none of them (NULL).

sw_member_metrics: `fast_norm`, `grad_fast`, `grad_rest`, `grad_fast_ratio`, `grad_fast_rms_ratio`,
`transition_max` (Float64, nullable): the families' per-batch metrics; NULL for ephemeral and RNN
rows, existing ones included.

SQLite cannot drop a NOT NULL in place: sw_members is rebuilt through Alembic's batch mode from the
table as revision 0004 left it (not from reflection, which would lose the Float64 and JSON types and
the CHECK). PostgreSQL alters it in place. The metric columns are added in place on both.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import json

import sqlalchemy as sa
from alembic import op

from sweeper.db.types import Float64, StrictJSON, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MODEL_KINDS = ("ephemeral", "rnn", "fastweights", "fwp")
FAMILY_METRICS = ("fast_norm", "grad_fast", "grad_rest", "grad_fast_ratio", "grad_fast_rms_ratio", "transition_max")
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""models.NAMING_CONVENTION, frozen here as this revision used it."""


def upgrade() -> None:
    with op.batch_alter_table("sw_members", copy_from=_members_0004()) as batch:
        for name in ("plasticity", "ratio", "gamma"):
            batch.alter_column(name, existing_type=Float64(), nullable=True)
        batch.add_column(sa.Column("model_kind", sa.String(16), nullable=False, server_default="ephemeral"))
        for name in ("eta", "beta_scale", "lam"):
            batch.add_column(sa.Column(name, Float64(), nullable=True))
    _backfill_model_kind()
    for name in FAMILY_METRICS:
        op.add_column("sw_member_metrics", sa.Column(name, Float64(), nullable=True))


def _backfill_model_kind() -> None:
    bind = op.get_bind()
    studies = sa.table("sw_studies", sa.column("id", sa.Integer()), sa.column("spec", sa.Text()))
    members = sa.table("sw_members", sa.column("study_id", sa.Integer()), sa.column("model_kind", sa.String(16)))
    for study_id, text in bind.execute(sa.select(studies.c.id, studies.c.spec)).all():
        try:
            spec = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            spec = None
        model = spec.get("model") if isinstance(spec, dict) else None
        kind = model.get("kind", "ephemeral") if isinstance(model, dict) else "ephemeral"
        if kind != "ephemeral" and kind in MODEL_KINDS:
            bind.execute(sa.update(members).where(members.c.study_id == study_id).values(model_kind=kind))


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _members_0004() -> sa.Table:
    """sw_members as revision 0004 left it (the SQLite rebuild copies from this)."""
    m = sa.MetaData(naming_convention=NAMING_CONVENTION)
    sa.Table("sw_studies", m, sa.Column("id", sa.Integer(), primary_key=True))
    sa.Table("sw_trials", m, sa.Column("id", sa.Integer(), primary_key=True))
    return sa.Table(
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
        *[sa.Column(name, Float64(), nullable=True)
          for name in ("final_loss", "final_acc", "mem_acc", "baseline", "eval_loss", "eval_acc", "eval_mem_acc",
                       "eval_mem_acc_frozen")],
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("wall_time_s", Float64(), nullable=True),
        sa.Column("device", sa.String(255), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.Column("config_index", sa.Integer(), nullable=True),
        sa.Column("optuna_trial_number", sa.Integer(), nullable=True),
        sa.Column("stop_step", sa.Integer(), nullable=True),
        sa.Column("explode_onset", sa.Integer(), nullable=True),
        sa.Column("final_step", sa.Integer(), nullable=True),
        sa.UniqueConstraint("trial_id", "pack_index"),
        sa.Index("ix_sw_members_study_id_outcome", "study_id", "outcome"),
    )  # fmt: skip


def downgrade() -> None:
    raise NotImplementedError("sweeper's schema only moves forward; restore a copy of the database to go back")
