"""Predictors and stability-boundary fits; warnings point at the stored predictor.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from sweeper.db.types import Float64, StrictJSON, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("payload", StrictJSON(), nullable=True),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name="fk_predictors_study_id_studies", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_predictors"),
    )
    op.create_index("ix_predictors_study_id", "predictors", ["study_id"])
    op.create_table(
        "boundary_fits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("payload", StrictJSON(), nullable=True),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("code_version", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name="fk_boundary_fits_study_id_studies", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_boundary_fits"),
    )
    op.create_index("ix_boundary_fits_study_id", "boundary_fits", ["study_id"])

    # SQLite cannot add a foreign key to a table: Alembic's batch mode copies `warnings` into a new
    # table and renames it (PostgreSQL just alters it). The copy is built from the table as revision
    # 0001 left it, not from reflection, which would lose the Float64 and JSON types and the CHECK.
    with op.batch_alter_table("warnings", copy_from=_warnings_0001()) as batch:
        batch.add_column(sa.Column("predictor_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_warnings_predictor_id_predictors", "predictors", ["predictor_id"], ["id"], ondelete="SET NULL"
        )


def _warnings_0001() -> sa.Table:
    metadata = sa.MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})
    sa.Table("members", metadata, sa.Column("id", sa.Integer(), primary_key=True))
    return sa.Table(
        "warnings",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("score", Float64(), nullable=False),
        sa.Column("predictor", sa.String(255), nullable=False),
        sa.Column("signals", StrictJSON(), nullable=True),
        sa.Column(
            "action",
            sa.Enum("stopped", "shadow", name="warning_action", native_enum=False, create_constraint=True, length=16),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name="fk_warnings_member_id_members", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_warnings"),
        sa.Index("ix_warnings_member_id_step", "member_id", "step"),
    )


def downgrade() -> None:
    raise NotImplementedError("sweeper's schema only moves forward; restore a copy of the database to go back")
