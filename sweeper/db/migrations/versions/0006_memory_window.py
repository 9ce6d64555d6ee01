"""sw_members: the memory judgement of a stable member (sweeper.outcomes.judge_memory).

- `remembers` (BOOLEAN, nullable): True when the member's eval_mem_acc beats `memory_threshold`, False
  when it is stable without memory; NULL for a member that is not stable, or has no evaluation.
- `memory_threshold` (Float64, nullable): the accuracy it had to beat, the `[execution] memory_level`
  quantile of Binomial(eval_mem_positions, baseline) over eval_mem_positions.
- `eval_mem_positions` (INTEGER, nullable): the memory positions its evaluation scored (n).

All three are added in place (SQLite and PostgreSQL both add a nullable column without rebuilding).

Existing stable members are judged here, from their stored eval_mem_acc and baseline, when the
evaluation's size can be known: their study's stored spec (`sw_studies.spec`, the JSON of
`StudySpec.to_dict()`) is rebuilt with `study_from_dict`, and the memory positions of each member's
evaluation are counted from the task, `execution.eval_batches`, `train.batch_size` and the member's seed
exactly as a pack counts them (`sweeper.study.memory`), at the spec's `memory_level` (0.95 for every
spec stored before it existed). A study whose spec does not rebuild (not a study's spec, or one the
code no longer accepts) leaves its members NULL: unknown, not guessed. The judgement is the rule of
the code that runs this revision; the stored threshold and n say what it was decided from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from sweeper.db.types import Float64, StrictJSON

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sw_members", sa.Column("remembers", sa.Boolean(), nullable=True))
    op.add_column("sw_members", sa.Column("memory_threshold", Float64(), nullable=True))
    op.add_column("sw_members", sa.Column("eval_mem_positions", sa.Integer(), nullable=True))
    _judge_stored_members()


def _spec(data):
    """The stored study, rebuilt; None when it cannot be (then its members stay unjudged)."""
    from sweeper.study import study_from_dict

    if not isinstance(data, dict):
        return None
    try:
        return study_from_dict(data)
    except Exception:  # noqa: BLE001 (any refusal or malformed field alike means: the size is unknown)
        return None


def _judge_stored_members() -> None:
    from sweeper.study.memory import eval_memory_positions, judge_rows

    bind = op.get_bind()
    studies = sa.table("sw_studies", sa.column("id", sa.Integer()), sa.column("spec", StrictJSON()))
    members = sa.table(
        "sw_members", sa.column("id", sa.Integer()), sa.column("study_id", sa.Integer()),
        sa.column("seed", sa.BigInteger()), sa.column("outcome", sa.String(16)),
        sa.column("eval_mem_acc", Float64()), sa.column("baseline", Float64()),
        sa.column("remembers", sa.Boolean()), sa.column("memory_threshold", Float64()),
        sa.column("eval_mem_positions", sa.Integer()),
    )  # fmt: skip
    update = (sa.update(members).where(members.c.id == sa.bindparam("member_id"))
              .values(remembers=sa.bindparam("r"), memory_threshold=sa.bindparam("t"),
                      eval_mem_positions=sa.bindparam("n")))
    for study_id, data in bind.execute(sa.select(studies.c.id, studies.c.spec)).all():
        rows = [dict(r._mapping) for r in bind.execute(
            sa.select(members.c.id, members.c.seed, members.c.outcome, members.c.eval_mem_acc, members.c.baseline)
            .where(members.c.study_id == study_id, members.c.outcome == "stable"))]
        spec = _spec(data) if rows else None
        if spec is None:
            continue
        positions = eval_memory_positions(spec.run.task, {r["seed"] for r in rows}, spec.execution.eval_batches,
                                          spec.run.train.batch_size)
        judged = [{"member_id": r["id"], "r": j.remembers, "t": j.threshold, "n": j.positions}
                  for r, j in zip(rows, judge_rows(spec, rows, positions)) if j.remembers is not None]
        if judged:
            bind.execute(update, judged)


def downgrade() -> None:
    raise NotImplementedError("sweeper's schema only moves forward; restore a copy of the database to go back")
