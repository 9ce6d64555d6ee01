"""Finished members of a study and their stored metric rows, read back for fitting and evaluation.

Ground truth: a member that ran its budget without being stopped early, i.e. outcome `stable` or
`exploded` (members that were stopped, failed or are still running are left out: their future is
unknown). Its rows are the ones the worker stored: the full-metric batches plus the explosion batch.
A row is full where `grad_slow` was recorded (not NULL; NaN is a recorded value).

Every model is read by role (`signals.py`): the columns that fill each role for the study's model
(grad_fast, grad_rest, fast_norm, transition_max, ... for a fast-weight family) are read into the
history under the role's name, and the members' hyperparameters likewise (plasticity = eta for
fastweights, beta_scale for fwp). A family's explosion batch is stored with every metric (its engine
computes them on every batch); unless it is a full-metric batch (every `metrics_every`, and the last)
it is read as the loss-only row the worker's warner kept, so a replay sees what the worker saw.

Each exploded member carries its onset (`sw_members.explode_onset`, docs/engine.md) beside its
detection (`explode_step`). Rows written before schema revision 0004 have no onset: it is then
estimated from the stored rows by the same rule (`onset_from_rows`) and the trace says so
(`onset_estimated`). The stored rows are every `metrics_every`-th batch plus the explosion batch, so
such an estimate can be off by up to about `metrics_every` batches either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import sqlalchemy as sa

from sweeper.config import TrainConfig
from sweeper.db import Member, MemberMetric, Outcome, Study
from sweeper.db.queries import _study_id

from .history import History
from .signals import EVERY_STEP_ROLES, HYPER_SIGNALS, ROLES, ModelSignals, RoleMetrics


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
    """By role (`signals.hyper_roles`): lr, plasticity (eta, beta_scale for the families), ..."""
    history: History
    model: ModelSignals = ModelSignals("ephemeral")
    """The study's model: which of its signals fill the roles (and its task's chance loss)."""

    @property
    def chance_loss(self) -> float | None:
        return self.model.chance_loss

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


def _model(study: Study, member_kind: str | None) -> ModelSignals:
    """The study's model: its members' `model_kind` (else the spec's), the rule from the spec."""
    spec_model = ModelSignals.of_spec(study.spec)
    if member_kind is None or member_kind == spec_model.kind:
        return spec_model
    spec = study.spec or {}
    return ModelSignals.of_spec({**spec, "model": {**(spec.get("model") or {}), "kind": member_kind}})


def study_model(db, study_name: str) -> ModelSignals:
    """The model of a stored study (`ModelSignals`)."""
    with db.read_session() as s:
        study = s.get(Study, _study_id(s, db, study_name))
        kind = s.scalars(sa.select(Member.model_kind).where(Member.study_id == study.id).limit(1)).first()
        return _model(study, kind)


def load_traces(db, study_name: str) -> list[Trace]:
    """The finished (stable or exploded) members of a study with their rows by role, in the order of their
    configuration and seed (`config_index`, `seed`; then member id). Not in member-id order: ids follow the
    order in which packs happened to finish, and a fit's cross-validation folds follow the members' order,
    so the same study must give the same order whichever run of it is read."""
    with db.read_session() as s:
        study = s.get(Study, _study_id(s, db, study_name))  # StudyNotFound names the known ones
        budget, grace = _train_setting(study, "batches"), _train_setting(study, "explode_grace")
        every = _train_setting(study, "metrics_every")
        threshold = float(((study.spec or {}).get("train") or {}).get("explode_threshold",
                                                                        TrainConfig.explode_threshold))
        members = s.scalars(sa.select(Member).where(
            Member.study_id == study.id, Member.outcome.in_([Outcome.STABLE, Outcome.EXPLODED])
        ).order_by(Member.config_index, Member.seed, Member.id)).all()
        model = _model(study, members[0].model_kind if members else None)
        family = model.kind in ("fastweights", "fwp")
        traces = {}
        for i, m in enumerate(members):
            hyper = {role: float(getattr(m, field)) for role, field in HYPER_SIGNALS[model.kind].items()
                     if getattr(m, field) is not None}
            traces[m.id] = Trace(m.id, study_name, m.outcome, m.explode_step, m.explode_onset,
                                 m.outcome == Outcome.EXPLODED and m.explode_onset is None, m.steps_done, budget,
                                 grace, hyper, History(i, hyper, model.chance_loss), model)
        roles = [r for r in ROLES if r in model.signals]
        cols = [MemberMetric.member_id, MemberMetric.step, *(getattr(MemberMetric, model.signals[r]) for r in roles)]
        q = (sa.select(*cols).join(Member, Member.id == MemberMetric.member_id)
             .where(Member.study_id == study.id, Member.outcome.in_([Outcome.STABLE, Outcome.EXPLODED]))
             .order_by(MemberMetric.member_id, MemberMetric.step))
        for row in s.execute(q):
            t, step = traces[row[0]], row[1]
            values = dict(zip(roles, row[2:]))
            full = values["grad_slow"] is not None
            if family and full and step % every and step != budget - 1:
                full = False  # a family's explosion batch between two full ones: the loss-only row
            if not full:
                values = {k: v for k, v in values.items() if k in EVERY_STEP_ROLES}
            t.history.append(step, full, t.explode_step == step, values)
    for t in traces.values():
        if t.onset_estimated:
            v = t.history.view()
            t.explode_onset = (onset_from_rows(v.step, v["loss"], v["max_logit"], t.explode_step, threshold)
                               if len(v) else t.explode_step)
    return list(traces.values())


def thinned(trace: Trace, factor: int) -> Trace:
    """The member as a study recording full metrics `factor` times less often would have stored it: every
    `factor`-th of its full-metric rows from the first (batch 0, then every factor x metrics_every), the
    budget's last batch when it has it, and the explosion batch (as a loss-only row where it is not one
    of those). `factor` 1 gives the trace itself."""
    if factor < 1:
        raise ValueError(f"factor {factor}: expected an integer >= 1")
    if factor == 1:
        return trace
    v = trace.history.view()
    full_rows = np.flatnonzero(v.full)
    keep = set(full_rows[::factor].tolist())
    history = History(v.member, v.hyper, v.chance_loss)
    for r, step in enumerate(v.step):
        step = int(step)
        full = bool(v.full[r]) and (r in keep or step == trace.budget - 1)
        if not full and not (v.exploded[r] or step == trace.explode_step):
            continue
        names = ROLES if full else EVERY_STEP_ROLES
        history.append(step, full, bool(v.exploded[r]), {k: float(v.metrics[k][r]) for k in names})
    return replace(trace, history=history)


def replay_batches(traces: list[Trace]):
    """The stored rows as the batches a worker would have seen (RoleMetrics, by role), batch by batch.

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
                  for name in ROLES}
        yield RoleMetrics(step=step, member=member, exploded=exploded, full=full, values=arrays)
