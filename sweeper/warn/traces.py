"""Finished members of a study and their stored metric rows, read back for fitting and evaluation.

Ground truth: a member that ran its budget without being stopped early, i.e. outcome `stable` or
`exploded` (members that were stopped, failed or are still running are left out: their future is
unknown). Its rows are the ones the worker stored: the full-metric batches plus the explosion batch.
A row is full where `grad_slow` was recorded (not NULL; NaN is a recorded value).

Each exploded member carries its onset (`sw_members.explode_onset`, docs/engine.md) beside its
detection (`explode_step`). Rows written before schema revision 0004 have no onset: it is then
estimated from the stored rows by the same rule (`onset_from_rows`) and the trace says so
(`onset_estimated`). The stored rows are every `metrics_every`-th batch plus the explosion batch, so
such an estimate can be off by up to about `metrics_every` batches either way.
"""

from __future__ import annotations

import math
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
    """Detection: the batch at which the explosion criterion decided."""
    explode_onset: int | None
    """Onset: the first batch of the excursion it confirmed (<= explode_step)."""
    onset_estimated: bool
    """True when the onset was not stored (rows older than revision 0004) and comes from `onset_from_rows`."""
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


def onset_from_rows(step, loss, max_logit, detection: int, threshold: float) -> int:
    """The onset rule of docs/engine.md on a member's stored rows (batch `step[k]`, ascending): the first
    row of the latest run of rows, at or before `detection`, whose loss is above `threshold` or whose loss
    or max_logit is not finite; `detection` itself when there is none."""
    above = [not (math.isfinite(x) and math.isfinite(z)) or x > threshold
             for x, z in zip(np.asarray(loss, dtype=float), np.asarray(max_logit, dtype=float))]
    k = int(np.searchsorted(np.asarray(step), detection, side="right")) - 1
    while k >= 0 and not above[k]:
        k -= 1
    if k < 0:
        return detection
    while k > 0 and above[k - 1]:
        k -= 1
    return int(step[k])


def load_traces(db, study_name: str) -> list[Trace]:
    """The finished (stable or exploded) members of a study, in member-id order, with their rows."""
    with db.read_session() as s:
        study = s.get(Study, _study_id(s, db, study_name))  # StudyNotFound names the known ones
        budget, grace = _train_setting(study, "batches"), _train_setting(study, "explode_grace")
        threshold = float(((study.spec or {}).get("train") or {}).get("explode_threshold",
                                                                        TrainConfig.explode_threshold))
        members = s.scalars(sa.select(Member).where(
            Member.study_id == study.id, Member.outcome.in_([Outcome.STABLE, Outcome.EXPLODED])
        ).order_by(Member.id)).all()
        traces = {}
        for i, m in enumerate(members):
            hyper = {k: getattr(m, k) for k in ("lr", "plasticity", "ratio", "gamma", "clip")}
            traces[m.id] = Trace(m.id, study_name, m.outcome, m.explode_step, m.explode_onset,
                                 m.outcome == Outcome.EXPLODED and m.explode_onset is None, m.steps_done, budget,
                                 grace, hyper, History(i, hyper))
        cols = [MemberMetric.member_id, MemberMetric.step, *(getattr(MemberMetric, k) for k in METRIC_NAMES)]
        q = (sa.select(*cols).join(Member, Member.id == MemberMetric.member_id)
             .where(Member.study_id == study.id, Member.outcome.in_([Outcome.STABLE, Outcome.EXPLODED]))
             .order_by(MemberMetric.member_id, MemberMetric.step))
        for row in s.execute(q):
            t = traces[row[0]]
            values = dict(zip(METRIC_NAMES, row[2:]))
            full = values["grad_slow"] is not None
            t.history.append(row[1], full, t.explode_step == row[1], values)
    for t in traces.values():
        if t.onset_estimated:
            v = t.history.view()
            t.explode_onset = (onset_from_rows(v.step, v["loss"], v["max_logit"], t.explode_step, threshold)
                               if len(v) else t.explode_step)
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
