"""What the dashboard's views show, read from the trial database: plain dicts and numpy arrays.

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

from sweeper.db import Database, Member, MemberMetric, Outcome, Study, parse_url
from sweeper.db.models import METRIC_NAMES, EarlyWarning, Trial
from sweeper.db.queries import _study_id
from sweeper.outcomes import FINISHED

SLICE_AXES = ("gamma", "ratio", "clip")
"""The hyperparameters the frontier can be sliced by (lr and plasticity are its axes)."""
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
    """The distinct values of each of `SLICE_AXES` in the study, sorted."""
    members: int


def study_meta(db: Database, name: str) -> StudyMeta:
    with db.read_session() as s:
        study = _study(s, db, name)
        slices = {
            axis: sorted(v for (v,) in s.execute(sa.select(getattr(Member, axis)).where(Member.study_id == study.id).distinct()))
            for axis in SLICE_AXES
        }
        members = s.scalar(sa.select(sa.func.count()).select_from(Member).where(Member.study_id == study.id))
    objectives = (study.spec or {}).get("objectives") or []
    objective = objectives[0].get("metric") if objectives else None
    direction = objectives[0].get("direction", "maximize") if objectives else "maximize"
    return StudyMeta(study.name, study.status.value, objective, direction, slices, members or 0)


# ---------------------------------------------------------------------------------------------------
# Stability frontier


FRONTIER_COLUMNS = (
    "id", "lr", "plasticity", "ratio", "gamma", "clip", "seed", "outcome", "steps_done", "explode_step",
    "stop_step", "final_loss", "eval_mem_acc", "baseline", "config_index", "explode_onset",
)  # fmt: skip


def _slice_conditions(study_id: int, slices: dict[str, float | None]) -> list:
    conditions = [Member.study_id == study_id]
    for axis, value in slices.items():
        if axis not in SLICE_AXES:
            raise ValueError(f"cannot slice by {axis!r}; choose from: {', '.join(SLICE_AXES)}")
        if value is not None:
            conditions.append(getattr(Member, axis) == float(value))
    return conditions


def frontier_info(db: Database, name: str, slices: dict[str, float | None] | None = None, cells: int = 12) -> dict:
    """Every member of the slice in the (log10 lr, log10 plasticity) plane, and explosion rates per cell.

    Returns {"members": {column: np.ndarray}, "cells": {"x_edges", "y_edges", "rate", "count"},
    "slices": the slice used}. `rate[j, i]` is the fraction of finished members in plasticity bin j
    and lr bin i that exploded or were stopped early (NaN where a cell has none); the counts per
    configuration come from SQL, the binning into `cells` x `cells` log-spaced cells from numpy.
    """
    slices = slices or {}
    with db.read_session() as s:
        study = _study(s, db, name)
        conditions = _slice_conditions(study.id, slices)
        # The columns as the driver returns them, with no per-value type processing; numpy converts
        # them below. At 10,000 members this halves frontier_info's time (measured 100 -> 48 ms).
        raw = sa.select(*(sa.type_coerce(getattr(Member, c), sa.types.NullType()).label(c) for c in FRONTIER_COLUMNS))
        rows = s.connection().execute(raw.where(*conditions)).all()
        counts = s.execute(
            sa.select(Member.lr, Member.plasticity, Member.outcome, sa.func.count())
            .where(*conditions, Member.outcome.in_(FINISHED))
            .group_by(Member.lr, Member.plasticity, Member.outcome)
        ).all()

    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in FRONTIER_COLUMNS]
    members: dict[str, np.ndarray] = {}
    for column, values in zip(FRONTIER_COLUMNS, columns, strict=True):
        if column == "outcome":  # stored as the Outcome's value
            members[column] = np.array(values, dtype=object)
        elif column in ("id", "seed", "steps_done"):
            members[column] = np.array(values, dtype=np.int64)
        else:  # None -> NaN; SQLite's text 'NaN' (how Float64 stores NaN there) -> NaN
            members[column] = np.array(values, dtype=np.float64)
    return {"members": members, "cells": _cells(counts, cells), "slices": dict(slices)}


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


def _log10(values) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(values, dtype=np.float64))


def _cells(counts: list, n: int) -> dict:
    """Explosion rate per log-spaced cell from (lr, plasticity, outcome, count) rows."""
    if not counts:
        return {"x_edges": np.array([]), "y_edges": np.array([]), "rate": np.zeros((0, 0)), "count": np.zeros((0, 0))}
    lr, plasticity, outcome, count = zip(*counts, strict=True)
    x, y = _log10(lr), _log10(plasticity)
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
    """One member's configuration, result, metric traces (downsampled) and early-warning alarms."""
    with db.read_session() as s:
        member = s.get(Member, int(member_id))
        if member is None:
            raise LookupError(f"no member with id {member_id}")
        study_name = s.scalar(sa.select(Study.name).where(Study.id == member.study_id))
        trial_number = s.scalar(sa.select(Trial.number).where(Trial.id == member.trial_id))
        metric_rows = s.execute(
            sa.select(MemberMetric.step, *(getattr(MemberMetric, m) for m in METRIC_NAMES))
            .where(MemberMetric.member_id == member.id)
            .order_by(MemberMetric.step)
        ).all()
        alarms = s.execute(
            sa.select(EarlyWarning.step, EarlyWarning.score, EarlyWarning.predictor, EarlyWarning.action)
            .where(EarlyWarning.member_id == member.id)
            .order_by(EarlyWarning.step)
        ).all()
    keep = _stride(len(metric_rows), max_points)
    columns = list(zip(*metric_rows, strict=True)) if metric_rows else [[] for _ in range(len(METRIC_NAMES) + 1)]
    metrics = {"step": np.asarray(columns[0], dtype=np.int64)[keep]}
    for name, values in zip(METRIC_NAMES, columns[1:], strict=True):
        metrics[name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)[keep]
    summary = {
        "id": member.id, "study": study_name, "trial": trial_number, "pack_index": member.pack_index,
        "config_index": member.config_index, "lr": member.lr, "plasticity": member.plasticity,
        "ratio": member.ratio, "gamma": member.gamma, "clip": member.clip, "seed": member.seed,
        "outcome": member.outcome.value, "steps_done": member.steps_done, "explode_step": member.explode_step,
        "explode_onset": member.explode_onset, "stop_step": member.stop_step, "final_step": member.final_step,
        "final_loss": member.final_loss, "mem_acc": member.mem_acc,
        "baseline": member.baseline, "eval_mem_acc": member.eval_mem_acc,
        "eval_mem_acc_frozen": member.eval_mem_acc_frozen, "error": member.error,
    }  # fmt: skip
    warnings = [
        {"step": step, "score": score, "predictor": predictor, "action": action.value}
        for step, score, predictor, action in alarms
    ]
    return {"member": summary, "metrics": metrics, "warnings": warnings, "metric_rows": len(metric_rows)}


# ---------------------------------------------------------------------------------------------------
# Ratio traces, stable vs exploding (Fig. 6 style)


def overlay_info(
    db: Database,
    name: str,
    metric: str = "grad_ratio",
    per_outcome: int = 20,
    max_points: int = MAX_TRACE_POINTS,
    slices: dict[str, float | None] | None = None,
) -> dict:
    """`metric` over steps for up to `per_outcome` stable and `per_outcome` exploded members.

    Returns {"metric", "traces": {"stable": [{"id", "step", "value", "explode_step", "explode_onset"}],
    "exploded": [...]},
    "counts": {outcome: members in the study slice}}. Members are picked in id order (deterministic)
    in SQL; traces are strided to `max_points` steps.
    """
    if metric not in METRIC_NAMES:
        raise ValueError(f"unknown metric {metric!r}; choose from: {', '.join(METRIC_NAMES)}")
    column = getattr(MemberMetric, metric)
    out = {"metric": metric, "traces": {}, "counts": {}}
    with db.read_session() as s:
        study = _study(s, db, name)
        conditions = _slice_conditions(study.id, slices or {})
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
                sa.select(MemberMetric.member_id, MemberMetric.step, column)
                .where(MemberMetric.member_id.in_(ids), column.is_not(None))
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
    """One row per configuration (config_index): hyperparameters, seeds, explosion rate, mean eval_mem_acc.

    The outcome counts are a SQL `GROUP BY`; the means skip NaN (done in Python, because SQLite's AVG
    would read a stored NaN as 0).
    """
    with db.read_session() as s:
        study = _study(s, db, name)
        rows = s.execute(
            sa.select(
                Member.config_index, Member.lr, Member.plasticity, Member.ratio, Member.gamma, Member.clip,
                Member.outcome, Member.eval_mem_acc, Member.baseline,
            ).where(Member.study_id == study.id).order_by(Member.config_index, Member.id)
        ).all()  # fmt: skip
    table: dict[Any, dict] = {}
    for config_index, lr, plasticity, ratio, gamma, clip, outcome, eval_mem_acc, baseline in rows:
        key = config_index if config_index is not None else (lr, plasticity, ratio, gamma, clip)
        row = table.setdefault(key, {
            "config": config_index, "lr": lr, "plasticity": plasticity, "ratio": ratio, "gamma": gamma,
            "clip": clip, "seeds": 0, "finished": 0, "exploded": 0, "accs": [], "baselines": [],
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
