"""Finished members of a study and their stored metric rows, read back for fitting and evaluation.

Ground truth: a member that ran its budget without being stopped early, i.e. outcome `stable` or
`exploded` (members that were stopped, failed or are still running are left out: their future is
unknown). Its rows are the ones the worker stored: the full-metric batches plus the explosion batch.
A row is full where `grad_slow` was recorded (not NULL; NaN is a recorded value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from sweeper.config import TrainConfig
from sweeper.db import Member, MemberMetric, Outcome, Study
from sweeper.db.queries import _study_id
from sweeper.engine.metrics import METRIC_NAMES, StepMetrics

from .history import History


@dataclass
class Trace:
    """One finished member: who it is, what became of it, and its stored rows."""

    member_id: int
    study: str
    outcome: Outcome
    """STABLE or EXPLODED."""
    explode_step: int | None
    steps_done: int
    budget: int
    """train.batches: what the member would train if nothing stopped it."""
    grace: int
    """train.explode_grace: explosions at this batch were flagged as soon as the criterion could look."""
    hyper: dict[str, float]
    history: History

    @property
    def exploded(self) -> bool:
        return self.outcome == Outcome.EXPLODED


def _train_setting(study: Study, name: str) -> int:
    train = (study.spec or {}).get("train") or {}
    return int(train.get(name, getattr(TrainConfig, name)))


def load_traces(db, study_name: str) -> list[Trace]:
    """The finished (stable or exploded) members of a study, in member-id order, with their rows."""
    with db.read_session() as s:
        study = s.get(Study, _study_id(s, db, study_name))  # StudyNotFound names the known ones
        budget, grace = _train_setting(study, "batches"), _train_setting(study, "explode_grace")
        members = s.scalars(sa.select(Member).where(
            Member.study_id == study.id, Member.outcome.in_([Outcome.STABLE, Outcome.EXPLODED])
        ).order_by(Member.id)).all()
        traces = {}
        for i, m in enumerate(members):
            hyper = {k: getattr(m, k) for k in ("lr", "plasticity", "ratio", "gamma", "clip")}
            traces[m.id] = Trace(m.id, study_name, m.outcome, m.explode_step, m.steps_done, budget, grace,
                                 hyper, History(i, hyper))
        cols = [MemberMetric.member_id, MemberMetric.step, *(getattr(MemberMetric, k) for k in METRIC_NAMES)]
        q = (sa.select(*cols).join(Member, Member.id == MemberMetric.member_id)
             .where(Member.study_id == study.id, Member.outcome.in_([Outcome.STABLE, Outcome.EXPLODED]))
             .order_by(MemberMetric.member_id, MemberMetric.step))
        for row in s.execute(q):
            t = traces[row[0]]
            values = dict(zip(METRIC_NAMES, row[2:]))
            full = values["grad_slow"] is not None
            t.history.append(row[1], full, t.explode_step == row[1], values)
    return list(traces.values())


def replay_batches(traces: list[Trace]):
    """The stored rows as the StepMetrics a worker would have seen, batch by batch.

    Member k of the replay is traces[k]. An exploded member's rows end at its explosion, as they do
    when the engine stops it (`stop_on_explosion`). Each batch carries the members that have a row at
    it; a batch is full if any of its rows is (the engine computes a batch's metrics for all or none).
    """
    by_step: dict[int, list[tuple[int, int]]] = {}
    for k, t in enumerate(traces):
        v = t.history.view()
        for r, step in enumerate(v.step):
            step = int(step)
            if t.explode_step is not None and step > t.explode_step:
                break
            by_step.setdefault(step, []).append((k, r))
    views = [t.history.view() for t in traces]
    for step in sorted(by_step):
        rows = by_step[step]
        member = np.array([k for k, _ in rows], dtype=np.int64)
        full = bool(any(views[k].full[r] for k, r in rows))
        exploded = np.array([traces[k].explode_step == step for k, _ in rows], dtype=bool)
        arrays = {name: np.array([views[k].metrics[name][r] for k, r in rows], dtype=np.float64)
                  for name in METRIC_NAMES}
        yield StepMetrics(step=step, member=member, exploded=exploded, full=full, **arrays)
