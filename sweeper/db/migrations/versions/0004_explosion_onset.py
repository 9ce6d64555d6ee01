"""sw_members: explode_onset (the first batch of the excursion the explosion criterion confirmed, beside
explode_step, the batch at which it decided) and final_step (the batch final_loss, final_acc and
mem_acc are from). See docs/engine.md.

Both columns are nullable and added in place (SQLite and PostgreSQL both add a nullable column without
rebuilding the table). Existing rows keep NULL in both: unknown. The onset needs the loss of every
batch, and the stored rows (`sw_member_metrics`) hold only every `metrics_every`-th batch plus the
explosion batch, so it is not backfilled; `sweeper warn eval` estimates it from those rows where it is
NULL and counts such members (`sweeper/warn/traces.py`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sw_members", sa.Column("explode_onset", sa.Integer(), nullable=True))
    op.add_column("sw_members", sa.Column("final_step", sa.Integer(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("sweeper's schema only moves forward; restore a copy of the database to go back")
