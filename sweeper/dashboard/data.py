"""What the dashboard's views show, read from the trial database: plain dicts and numpy arrays.

Every view is of the study's own model and plane (`sweeper.analysis.boundary.study_plane`: the
members' `model_kind`, the stored spec's `[search] plane`, else the model's default): the frontier's
two axes, its slices (the model's other axes), the member's hyperparameters and metrics, the
per-configuration table. Axes are named as in study files (`lambda`, stored in the column `lam`).

Every function reads in one read-only session (`Database.read_session`). The expensive parts are
done by the database: outcome counts per configuration for the per-cell explosion rates are a
`GROUP BY`, trace selections are `LIMIT`ed per outcome, and only the columns a view needs are
selected, so a 10,000-member study costs one narrow query. Non-finite floats stay floats here; the
figure builders and `sweeper.jsonio.to_strict(x, nonfinite=None)` turn them into null (JSON has no NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from sweeper.analysis.boundary import column, limit_coord, study_plane, to_coord
from sweeper.db import Database, Member, MemberMetric, Outcome, Study, parse_url
from sweeper.db.models import FAMILY_ONLY_METRIC_NAMES, METRIC_NAMES, EarlyWarning, Trial
from sweeper.db.queries import _study_id
from sweeper.outcomes import FINISHED, MEMORY_OUTCOMES, STABLE_MEMORY, STABLE_NO_MEMORY
from sweeper.study.spec import axes_of

ALL_METRIC_NAMES = (*METRIC_NAMES, *FAMILY_ONLY_METRIC_NAMES)
"""Every per-batch metric column: the ephemeral engine's and the fast-weight families'."""
FAMILY_KINDS = ("fastweights", "fwp")
MAX_TRACE_POINTS = 400
"""Steps kept per metric trace (evenly strided, first and last kept): plots stay light at any budget."""


def open_readonly(url: str | None = None) -> Database:
    """The database at `url`, used only through read-only sessions. Nothing is created or changed.

    `open_db` would check the schema through the write engine (a BEGIN IMMEDIATE on SQLite); here the
    check goes through `readonly_schema_revision`, which touches nothing.
    """
    from sweeper.db import SCHEMA_REVISION, StorageError, readonly_schema_revision

    parsed = parse_url(url)
    revision = readonly_schema_revision(parsed)
    if revision != SCHEMA_REVISION:
        raise StorageError.wrong_schema(parsed, revision)
    return Database(parsed)


def _study(session, db: Database, name: str) -> Study:
    """The study named `name`; StudyNotFound (naming the known ones) when there is none."""
    return session.get(Study, _study_id(session, db, name))


# ---------------------------------------------------------------------------------------------------
# Study metadata


@dataclass(frozen=True)
class StudyMeta:
    name: str
    status: str
    objective: str | None
    """The study file's first objective metric (a member column, e.g. eval_mem_acc), if it has one."""
    direction: str
    slices: dict[str, list[float]]
    """The distinct values of each axis of the study's model among its members, sorted."""
    members: int
    kind: str = "ephemeral"
    """The study's model: "ephemeral", "rnn", "fastweights" or "fwp"."""
    axes: tuple[str, ...] = ("lr", "plasticity", "ratio", "gamma", "clip")
    """The model's axes, in canonical order."""
    plane: tuple[str, str] = ("lr", "plasticity")
    """The study's (x, y) plane: its `[search] plane`, else the model's default."""

    @property
    def varying(self) -> tuple[str, ...]:
        """The axes that take more than one value among the members."""
        return tuple(a for a in self.axes if len(self.slices.get(a, ())) > 1)

    def slice_axes(self, plane: tuple[str, str] | None = None) -> tuple[str, ...]:
        """The axes the frontier in `plane` (default: the study's) can be sliced by: the other varying ones."""
        plane = plane or self.plane
        return tuple(a for a in self.varying if a not in plane)


def study_meta(db: Database, name: str) -> StudyMeta:
    with db.read_session() as s:
        study = _study(s, db, name)
        where = study_plane(s, study.id)
        slices = {
            axis: sorted(v for (v,) in s.execute(sa.select(getattr(Member, column(axis)))
                                                 .where(Member.study_id == study.id).distinct()) if v is not None)
            for axis in where.axes
        }  # fmt: skip
        members = s.scalar(sa.select(sa.func.count()).select_from(Member).where(Member.study_id == study.id))
    objectives = (study.spec or {}).get("objectives") or []
    objective = objectives[0].get("metric") if objectives else None
    direction = objectives[0].get("direction", "maximize") if objectives else "maximize"
    return StudyMeta(study.name, study.status.value, objective, direction, slices, members or 0, where.kind,
                     where.axes, where.plane)


# ---------------------------------------------------------------------------------------------------
# Stability frontier


FRONTIER_COLUMNS = (
    "id", "seed", "outcome", "steps_done", "explode_step", "stop_step", "final_loss", "eval_mem_acc", "baseline",
    "config_index", "explode_onset", "remembers", "memory_threshold",
)  # fmt: skip
"""The member columns every frontier reads; the study's model's axes are read beside them. `remembers`
(the memory judgement) is read as 1.0, 0.0 or NaN (not judged)."""


def memory_outcomes(outcome: np.ndarray, remembers: np.ndarray) -> np.ndarray:
    """(N,) object: each member's `sweeper.outcomes.memory_outcome` (exploded, stable (no memory), stable
    (memory), stable without a judgement, ...) from its stored outcome and `remembers` (1.0, 0.0, NaN)."""
    labels = np.array(outcome, dtype=object)
    stable = labels == Outcome.STABLE.value
    labels[stable & (remembers == 1.0)] = STABLE_MEMORY
    labels[stable & (remembers == 0.0)] = STABLE_NO_MEMORY
    return labels


def _slice_conditions(study_id: int, slices: dict[str, float | None], axes: tuple[str, ...]) -> list:
    conditions = [Member.study_id == study_id]
    for axis, value in slices.items():
        if axis not in axes:
            raise ValueError(f"cannot slice by {axis!r}; choose from: {', '.join(axes)}")
        if value is not None:
            conditions.append(getattr(Member, column(axis)) == float(value))
    return conditions


def _check_plane(plane, axes: tuple[str, ...]) -> tuple[str, str]:
    if len(plane) != 2 or plane[0] == plane[1] or not all(a in axes for a in plane):
        raise ValueError(f"plane {tuple(plane)!r}: expected two distinct axes of the study's model: {', '.join(axes)}")
    return plane[0], plane[1]


def frontier_info(db: Database, name: str, slices: dict[str, float | None] | None = None, cells: int = 12,
                  plane: tuple[str, str] | None = None) -> dict:
    """Every member of the slice in the study's plane (or `plane`, two axes of its model), and
    explosion rates per cell.

    Returns {"members": {column or axis: np.ndarray}, "memory_outcome": (N,) each member's outcome as
    the user sees it (`memory_outcomes`), "counts": {memory_outcome: members}, "x", "y": the members'
    scaled coordinates (`sweeper.analysis.boundary.to_coord`: log10, or log10(1 - lambda)), "plane": (x axis, y axis),
    "kind", "axes": the model and its axes, "limits": {axis of the plane: where its end value (clip
    inf, eta 0, lambda 1) is drawn, one decade beyond the rest}, "cells": {"x_edges", "y_edges",
    "rate", "count"}, "slices": the slice used}. `rate[j, i]` is the fraction of finished members in
    y bin j and x bin i that exploded or were stopped early (NaN where a cell has none); the counts
    per (x, y) pair come from SQL, the binning into `cells` x `cells` cells from numpy.
    """
    slices = slices or {}
    with db.read_session() as s:
        study = _study(s, db, name)
        where = study_plane(s, study.id)
        plane = _check_plane(plane or where.plane, where.axes)
        conditions = _slice_conditions(study.id, slices, where.axes)
        names = (*FRONTIER_COLUMNS, *where.axes)
        # The columns as the driver returns them, with no per-value type processing; numpy converts
        # them below. At 10,000 members this halves frontier_info's time (measured 100 -> 48 ms).
        raw = sa.select(*(sa.type_coerce(getattr(Member, column(c)), sa.types.NullType()).label(column(c)) for c in names))
        rows = s.connection().execute(raw.where(*conditions)).all()
        xcol, ycol = (getattr(Member, column(a)) for a in plane)
        counts = s.execute(
            sa.select(xcol, ycol, Member.outcome, sa.func.count())
            .where(*conditions, Member.outcome.in_(FINISHED))
            .group_by(xcol, ycol, Member.outcome)
        ).all()

    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    members: dict[str, np.ndarray] = {}
    for name_, values in zip(names, columns, strict=True):
        if name_ == "outcome":  # stored as the Outcome's value
            members[name_] = np.array(values, dtype=object)
        elif name_ in ("id", "seed", "steps_done"):
            members[name_] = np.array(values, dtype=np.int64)
        else:  # None -> NaN; SQLite's text 'NaN' (how Float64 stores NaN there) -> NaN
            members[name_] = np.array(values, dtype=np.float64)
    limits = {a: limit_coord(a, members[a]) for a in plane}
    limits = {a: v for a, v in limits.items() if v is not None}
    x, y = (to_coord(a, members[a], limits.get(a)) for a in plane)
    labels = memory_outcomes(members["outcome"], members["remembers"])
    counts_by = {label: int((labels == label).sum()) for label in MEMORY_OUTCOMES}
    return {"members": members, "memory_outcome": labels, "counts": counts_by, "x": x, "y": y, "plane": plane,
            "kind": where.kind, "axes": where.axes, "limits": limits, "cells": _cells(counts, cells, plane, limits),
            "slices": dict(slices)}


def frontier_fingerprint(db: Database, name: str) -> list:
    """A few numbers that change whenever what the frontier shows changes: the study's status, its
    member count, largest member id, outcome counts and steps done, and its newest boundary fit.

    One aggregate query over the study's members, so a live page can poll it every few seconds and
    rebuild its figure (1.0 MB for 10,000 members) only when it differs.
    """
    from sweeper.db.models import BoundaryFit

    with db.read_session() as s:
        study = _study(s, db, name)
        where = Member.study_id == study.id
        agg = s.execute(sa.select(
            sa.func.count(), sa.func.max(Member.id), sa.func.sum(Member.steps_done),
            *(sa.func.sum(sa.case((Member.outcome == o, 1), else_=0)) for o in Outcome),
        ).where(where)).one()  # fmt: skip
        fit = s.scalar(sa.select(sa.func.max(BoundaryFit.id)).where(BoundaryFit.study_id == study.id))
        return [study.status.value, *(int(v or 0) for v in agg), fit]


def _cells(counts: list, n: int, plane: tuple[str, str], limits: dict[str, float]) -> dict:
    """Explosion rate per cell of the scaled plane from (x, y, outcome, count) rows."""
    if not counts:
        return {"x_edges": np.array([]), "y_edges": np.array([]), "rate": np.zeros((0, 0)), "count": np.zeros((0, 0))}
    xs, ys, outcome, count = zip(*counts, strict=True)
    x = to_coord(plane[0], np.array(xs, dtype=np.float64), limits.get(plane[0]))
    y = to_coord(plane[1], np.array(ys, dtype=np.float64), limits.get(plane[1]))
    ok = np.isfinite(x) & np.isfinite(y)
    count = np.asarray(count, dtype=np.float64)
    unstable = np.array([o != Outcome.STABLE for o in outcome])
    edges = []
    for v in (x[ok], y[ok]):
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        pad = max((hi - lo) * 0.02, 0.05)
        edges.append(np.linspace(lo - pad, hi + pad, n + 1))
    total, _, _ = np.histogram2d(y[ok], x[ok], bins=[edges[1], edges[0]], weights=count[ok])
    bad, _, _ = np.histogram2d(y[ok], x[ok], bins=[edges[1], edges[0]], weights=(count * unstable)[ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(total > 0, bad / total, np.nan)
    return {"x_edges": edges[0], "y_edges": edges[1], "rate": rate, "count": total}


# ---------------------------------------------------------------------------------------------------
# One member


def _stride(n: int, keep: int) -> np.ndarray:
    """Indices of at most `keep` of `n` evenly spaced points, the first and the last included."""
    if n <= keep:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, keep).round().astype(np.int64))


def member_info(db: Database, member_id: int, max_points: int = MAX_TRACE_POINTS * 5) -> dict:
    """One member's configuration, result, metric traces (downsampled) and early-warning alarms.

    The summary names the member's model (`model_kind`) and its `axes`, its memory judgement
    (`memory`: "remembers", "no memory" or None when not judged, with `memory_threshold` and
    `eval_mem_positions`), and holds each of its axes by axis name (a family's `lambda` included;
    plasticity, ratio and gamma are None for a family's member); `metrics` holds every metric, the
    ephemeral engine's and the families' (NaN where the member's model has none)."""
    with db.read_session() as s:
        member = s.get(Member, int(member_id))
        if member is None:
            raise LookupError(f"no member with id {member_id}")
        study_name = s.scalar(sa.select(Study.name).where(Study.id == member.study_id))
        trial_number = s.scalar(sa.select(Trial.number).where(Trial.id == member.trial_id))
        metric_rows = s.execute(
            sa.select(MemberMetric.step, *(getattr(MemberMetric, m) for m in ALL_METRIC_NAMES))
            .where(MemberMetric.member_id == member.id)
            .order_by(MemberMetric.step)
        ).all()
        alarms = s.execute(
            sa.select(EarlyWarning.step, EarlyWarning.score, EarlyWarning.predictor, EarlyWarning.action)
            .where(EarlyWarning.member_id == member.id)
            .order_by(EarlyWarning.step)
        ).all()
    keep = _stride(len(metric_rows), max_points)
    columns = list(zip(*metric_rows, strict=True)) if metric_rows else [[] for _ in range(len(ALL_METRIC_NAMES) + 1)]
    metrics = {"step": np.asarray(columns[0], dtype=np.int64)[keep]}
    for name, values in zip(ALL_METRIC_NAMES, columns[1:], strict=True):
        metrics[name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)[keep]
    summary = {
        "id": member.id, "study": study_name, "trial": trial_number, "pack_index": member.pack_index,
        "config_index": member.config_index, "model_kind": member.model_kind, "axes": axes_of(member.model_kind),
        "lr": member.lr, "plasticity": member.plasticity, "ratio": member.ratio, "gamma": member.gamma,
        "eta": member.eta, "beta_scale": member.beta_scale, "lambda": member.lam, "clip": member.clip, "seed": member.seed,
        "outcome": member.outcome.value, "steps_done": member.steps_done, "explode_step": member.explode_step,
        "explode_onset": member.explode_onset, "stop_step": member.stop_step, "final_step": member.final_step,
        "final_loss": member.final_loss, "mem_acc": member.mem_acc,
        "baseline": member.baseline, "eval_mem_acc": member.eval_mem_acc,
        "eval_mem_acc_frozen": member.eval_mem_acc_frozen, "error": member.error,
        "memory": None if member.remembers is None else ("remembers" if member.remembers else "no memory"),
        "memory_threshold": member.memory_threshold, "eval_mem_positions": member.eval_mem_positions,
    }  # fmt: skip
    warnings = [
        {"step": step, "score": score, "predictor": predictor, "action": action.value}
        for step, score, predictor, action in alarms
    ]
    return {"member": summary, "metrics": metrics, "warnings": warnings, "metric_rows": len(metric_rows)}


# ---------------------------------------------------------------------------------------------------
# Ratio traces, stable vs exploding (Fig. 6 style)


def default_metric(kind: str) -> str:
    """The gradient-norm ratio of a model: grad_ratio (ephemeral / slow), or grad_fast_ratio for a family."""
    return "grad_fast_ratio" if kind in FAMILY_KINDS else "grad_ratio"


def metric_names(kind: str) -> tuple[str, ...]:
    """The per-batch metrics a model's members record."""
    if kind in FAMILY_KINDS:
        return (*(m for m in METRIC_NAMES if m not in ("grad_eph", "grad_slow", "grad_ratio", "grad_rms_ratio", "w_eph")),
                *FAMILY_ONLY_METRIC_NAMES)
    return METRIC_NAMES


def overlay_info(
    db: Database,
    name: str,
    metric: str | None = None,
    per_outcome: int = 20,
    max_points: int = MAX_TRACE_POINTS,
    slices: dict[str, float | None] | None = None,
) -> dict:
    """`metric` (default: the model's gradient-norm ratio, `default_metric`) over steps for up to
    `per_outcome` stable and `per_outcome` exploded members.

    Returns {"metric", "traces": {"stable": [{"id", "step", "value", "explode_step", "explode_onset"}],
    "exploded": [...]},
    "counts": {outcome: members in the study slice}}. Members are picked in id order (deterministic)
    in SQL; traces are strided to `max_points` steps.
    """
    if metric is not None and metric not in ALL_METRIC_NAMES:
        raise ValueError(f"unknown metric {metric!r}; choose from: {', '.join(ALL_METRIC_NAMES)}")
    out = {"metric": metric, "traces": {}, "counts": {}}
    with db.read_session() as s:
        study = _study(s, db, name)
        where = study_plane(s, study.id)
        metric = out["metric"] = metric or default_metric(where.kind)
        metric_column = getattr(MemberMetric, metric)
        conditions = _slice_conditions(study.id, slices or {}, where.axes)
        for outcome in (Outcome.STABLE, Outcome.EXPLODED):
            picked = s.execute(
                sa.select(Member.id, Member.explode_step, Member.explode_onset)
                .where(*conditions, Member.outcome == outcome)
                .order_by(Member.id)
                .limit(per_outcome)
            ).all()
            out["counts"][outcome.value] = s.scalar(
                sa.select(sa.func.count()).select_from(Member).where(*conditions, Member.outcome == outcome)
            )
            ids = [member_id for member_id, _, _ in picked]
            rows = s.execute(
                sa.select(MemberMetric.member_id, MemberMetric.step, metric_column)
                .where(MemberMetric.member_id.in_(ids), metric_column.is_not(None))
                .order_by(MemberMetric.member_id, MemberMetric.step)
            ).all()
            by_member: dict[int, list] = {member_id: [] for member_id in ids}
            for member_id, step, value in rows:
                by_member[member_id].append((step, value))
            traces = []
            for member_id, explode_step, explode_onset in picked:
                points = by_member[member_id]
                keep = _stride(len(points), max_points)
                steps = np.array([p[0] for p in points], dtype=np.int64)[keep] if points else np.array([], np.int64)
                values = np.array([p[1] for p in points], dtype=np.float64)[keep] if points else np.array([])
                traces.append({"id": member_id, "step": steps, "value": values, "explode_step": explode_step,
                               "explode_onset": explode_onset})
            out["traces"][outcome.value] = traces
    return out


# ---------------------------------------------------------------------------------------------------
# Per-configuration summary (Table 1 style)


def config_table(db: Database, name: str) -> list[dict]:
    """One row per configuration (config_index): the model's hyperparameters (by axis name), seeds,
    explosion rate, mean eval_mem_acc.

    The outcome counts are a SQL `GROUP BY`; the means skip NaN (done in Python, because SQLite's AVG
    would read a stored NaN as 0).
    """
    with db.read_session() as s:
        study = _study(s, db, name)
        axes = study_plane(s, study.id).axes
        rows = s.execute(
            sa.select(
                Member.config_index, *(getattr(Member, column(a)) for a in axes), Member.outcome, Member.eval_mem_acc,
                Member.baseline,
            ).where(Member.study_id == study.id).order_by(Member.config_index, Member.id)
        ).all()  # fmt: skip
    table: dict[Any, dict] = {}
    for config_index, *values, outcome, eval_mem_acc, baseline in rows:
        key = config_index if config_index is not None else tuple(values)
        row = table.setdefault(key, {
            "config": config_index, **dict(zip(axes, values, strict=True)), "seeds": 0, "finished": 0, "exploded": 0,
            "accs": [], "baselines": [],
        })  # fmt: skip
        row["seeds"] += 1
        if outcome in FINISHED:
            row["finished"] += 1
            row["exploded"] += outcome != Outcome.STABLE
        if outcome == Outcome.STABLE and eval_mem_acc is not None and math.isfinite(eval_mem_acc):
            row["accs"].append(eval_mem_acc)
        if baseline is not None and math.isfinite(baseline):
            row["baselines"].append(baseline)
    out = []
    for row in table.values():
        accs, baselines = row.pop("accs"), row.pop("baselines")
        row["explosion_rate"] = row["exploded"] / row["finished"] if row["finished"] else math.nan
        row["eval_mem_acc_mean"] = float(np.mean(accs)) if accs else math.nan
        row["eval_mem_acc_sd"] = float(np.std(accs, ddof=1)) if len(accs) > 1 else math.nan
        row["baseline"] = float(np.mean(baselines)) if baselines else math.nan
        out.append(row)
    return out
