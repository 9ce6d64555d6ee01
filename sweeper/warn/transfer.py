"""`sweeper warn transfer`: does a predictor fitted on one study warn on runs from elsewhere?

A learned predictor is fitted on one study (`fit.fit_traces`, nothing stored) and replayed, through
the worker's own OnlineWarner, on every member of each other study: another task, width, updater,
`metrics_every` or model. Beside it, on the same members and from the same first scored batch, the
detectors that need no fitting: the paper's ratio rule (`RatioRule`, its default threshold), the
loss z-score (`LossZScore`) and the median-stopping rule (`evaluate.py`). Every figure is
`evaluate.summarize`'s (lead time from the onset, compute saved of the waste after the onsets, ...;
`evaluate.py` defines them). A cell is one (fitted-on, evaluated-on) pair:

- off the diagonal, every finished member of the evaluated study (none was fitted on);
- on the diagonal, the fitted study's own members scored out of fold: each by the fold model that
  was not fitted on it (`fit.Fitted.oof_scores`), at the stored threshold. That threshold was chosen
  on these same scores, so the diagonal's false-stop rate is at most `max_false_stop` by
  construction: a reference, not a test.

Beside each detector's AUROC over every member, `auroc_running`: over the members still running at the
first scored batch (an explosion the criterion decided before it is left out: the engine has already
stopped that run, and no detector that starts there has anything to rank). The target reads the
first.

A cell meets the target when the learned predictor's AUROC is at least TARGET_AUROC and its false-stop
rate at most TARGET_FALSE_STOP; only off-diagonal cells count. "Late" explosions are those with
onset >= `late_onset` (default 100, as in `warn eval`), against all the stable members.

A missed cell says why (`reasons`): how many of its explosions were decided before the first scored
batch (no detector that starts there can warn on them), and, for a logistic-regression predictor,
which features pushed its falsely stopped members over the threshold: each feature's weight times
its standardized value at the alarm (its push on the logit), the median over those members, beside
the feature's median value there and the median over the fitted study's stable members at the same
batches. A feature far from the fitted study's stable value names the shift that moved them. And
whether the precursors the fit leans on mean the same there (`carry.precursors`, `precursor_shift`):
each feature alone, at the first scored batch, ranks the members that have not yet broken (its
AUROC, exploding vs stable); a feature whose AUROC is clearly above 0.5 on the fitted study and
clearly below on the evaluated one (or the reverse) is `reversed` there: a higher value came before
an explosion in one setting and before a stable run in the other, and no threshold on a score that
leans on it can serve both. One with no clear sign there is `lost`. Every off-diagonal cell also
says how many of the evaluated members lie outside the fitted members' feature range at the first
scored batch (`carry.outside`; it needs no outcomes).

`ratio_growth` answers the paper's claim directly: the growth of the ephemeral / slow gradient-norm
ratio over a member's first batches, exploding vs stable members, with the AUROC of that growth alone.

Everything here is a pure function of traces (`traces.load_traces`), except `load_study`, which reads
one study from the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sweeper.errors import SweeperError

from .carry import outside, precursor_shift, precursors
from .evaluate import (
    LATE_ONSET,
    Outcomes,
    auroc,
    baseline_outcomes,
    check_both_outcomes,
    members_block,
    outcomes_from_scores,
    scores_of,
    subset,
    summarize,
)
from .features import DEFAULT_FEATURES, safe_log10
from .fit import Fitted, check_cadences, check_settings, fit_traces, parse_features
from .predictors import LearnedPredictor, RatioRule
from .traces import Trace

TARGET_AUROC = 0.9
TARGET_FALSE_STOP = 0.05
DETECTORS = ("learned", "ratio_rule", "loss_zscore", "median_rule")
"""The detectors of every cell, in the order they are printed."""
SETTING_AXES = ("model", "task", "width", "updater", "metrics_every", "batches")
"""The axes of a study's setting that a cell reports as changed between its two studies."""
GROWTH_BATCHES = 50
"""`ratio_growth`: the ratio's growth from a member's first batches to this batch."""


class TransferError(SweeperError, ValueError):
    """The studies cannot be compared as asked (one study only, an unknown --fit, ...)."""

    field_default = "STUDY"


# ---------------------------------------------------------------------------------------------------
# Studies


@dataclass(frozen=True)
class StudyTraces:
    """One study's finished members and the setting they were trained in."""

    name: str
    traces: list[Trace]
    setting: Mapping[str, Any]
    """model, task (name and the parameters that set its size), width, updater, metrics_every, batches."""


def setting_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The setting of a study from its stored spec (`sw_studies.spec`), defaults filled in."""
    from sweeper.config import ModelConfig, TrainConfig
    from sweeper.engine.families.config import FastWeightsModel, FWPModel

    task = dict(spec.get("task") or {})
    model = dict(spec.get("model") or {})
    train = dict(spec.get("train") or {})
    kind = model.get("kind", "ephemeral")
    name = task.pop("name", "?")
    params = " ".join(f"{k}={v}" for k, v in sorted(task.items()) if k in ("n", "length"))
    width = {"fastweights": model.get("hidden", FastWeightsModel.hidden),
             "fwp": model.get("d_model", FWPModel.d_model)}.get(kind, model.get("width", ModelConfig.width))
    return {
        "model": kind,
        "task": f"{name} {params}".strip() if params else name,
        "width": width,
        "updater": train.get("updater", "bptt" if kind in ("fastweights", "fwp") else TrainConfig.updater),
        "metrics_every": train.get("metrics_every", TrainConfig.metrics_every),
        "batches": train.get("batches", TrainConfig.batches),
    }


def load_study(db, name: str) -> StudyTraces:
    """A study's finished members and setting (StudyNotFound, naming the studies there are, if unknown)."""
    import sqlalchemy as sa

    from sweeper.db import Study

    from .traces import load_traces

    traces = load_traces(db, name)
    with db.read_session() as s:
        spec = s.scalars(sa.select(Study.spec).where(Study.name == name)).first() or {}
    return StudyTraces(name, traces, setting_of(spec))


# ---------------------------------------------------------------------------------------------------
# The matrix


@dataclass(frozen=True)
class TransferSettings:
    """How each predictor is fitted and its cells evaluated (the `warn fit` / `warn eval` flags)."""

    features: str = DEFAULT_FEATURES
    """Comma-separated feature sets (`features.FEATURE_SETS`)."""
    steps: int | None = None
    """Fit on batches <= steps only (None: the whole budget)."""
    model: str = "logreg"
    min_step: int = 20
    """First batch every detector scores."""
    max_false_stop: float = 0.05
    """The fitted threshold: at most this fraction of the fitted study's stable members alarmed out of fold."""
    late_onset: int = LATE_ONSET
    seed: int = 0
    cadences: tuple[int, ...] = (1,)
    """The fit also learns from its members recorded this many times less often (`fit.py`'s Cadences)."""

    def as_dict(self) -> dict[str, Any]:
        return {"features": self.features, "steps": self.steps, "model": self.model, "min_step": self.min_step,
                "max_false_stop": self.max_false_stop, "late_onset": self.late_onset, "seed": self.seed,
                "cadences": list(self.cadences)}


@dataclass
class _Target:
    """A study's members with the baselines' decisions on them (the same for every fitted row)."""

    study: StudyTraces
    baselines: dict[str, Outcomes] = field(default_factory=dict)


def check_request(names: Sequence[str], fit: str | None, all_pairs: bool) -> list[str]:
    """The fitted-on studies of a request, or TransferError naming what is wrong (before any work)."""
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if list(names).count(n) > 1})
        raise TransferError(f"study {', '.join(dup)} given twice; name each study once")
    if all_pairs:
        if fit is not None:
            raise TransferError("--fit", "--all-pairs fits on every study in turn; give one of --fit and --all-pairs")
        if len(names) < 2:
            raise TransferError(f"got one study ({names[0]}); --all-pairs needs at least two to fit on one and "
                                "evaluate on another")
        return list(names)
    fit = names[0] if fit is None else fit
    if not [n for n in names if n != fit]:
        raise TransferError(f"nothing to evaluate on: the only study given ({fit}) is the one fitted on; name at "
                            "least one more study")
    return [fit]


def transfer_matrix(studies: Sequence[StudyTraces], fit_on: Sequence[str],
                    settings: TransferSettings = TransferSettings()) -> dict[str, Any]:
    """Fit on each study of `fit_on` (a name in `studies`) and evaluate on every study of `studies`.

    Returns the strict-JSON-able report: `studies` (setting and member counts), `fits` (per fitted-on
    study: features, threshold, out-of-fold summary), `cells` (one per (fitted-on, evaluated-on) pair,
    with each detector's figures on every explosion and on the late ones), and `meeting` / `missing`:
    the off-diagonal cells that meet the target and those that do not, with why; `precursors`: each
    feature's AUROC alone at the first scored batch on every study (`carry.precursors`)."""
    by_name = {s.name: s for s in studies}
    unknown = [n for n in fit_on if n not in by_name]
    if unknown:
        raise TransferError("--fit", f"{', '.join(unknown)} is not among the studies given ({', '.join(by_name)})")
    check_settings(settings.model, settings.steps, settings.min_step, settings.max_false_stop)
    settings = replace(settings, cadences=check_cadences(settings.cadences))  # as integers, in the report too
    if settings.late_onset < 0:
        raise TransferError("--late-onset", f"got {settings.late_onset}; expected a batch >= 0")
    features = parse_features(settings.features)
    for s in studies:
        if not s.traces:
            raise TransferError(f"study {s.name!r} has no finished (stable or exploded) members")
        check_both_outcomes(s.traces, s.name)
    targets = {s.name: _Target(s) for s in studies}
    min_step, at_step = settings.min_step, settings.min_step
    rule = RatioRule()
    for t in targets.values():
        model = t.study.traces[0].model
        t.baselines = {"ratio_rule": outcomes_from_scores(scores_of(t.study.traces, rule, min_step, model),
                                                          rule.threshold, at_step)}
        base = baseline_outcomes(t.study.traces, min_step, at_step, model)
        t.baselines.update({k: base[k] for k in ("loss_zscore", "median_rule")})

    signs = {s.name: precursors(s.traces, features, min_step) for s in studies}
    fits, cells = [], []
    for name in fit_on:
        source = by_name[name]
        fitted = fit_traces(source.traces, features, what=f"study {name}", steps=settings.steps,
                            model=settings.model, min_step=min_step, max_false_stop=settings.max_false_stop,
                            seed=settings.seed, cadences=settings.cadences)
        fits.append(_fit_block(source, fitted))
        for target in targets.values():
            learned = _learned_outcomes(fitted, source, target.study, min_step, at_step)
            cell = _cell(source, target, learned, settings.late_onset, min_step)
            if not cell["out_of_fold"]:
                cell["outside"] = outside(target.study.traces, fitted.predictor.payload["carry"]["range"])
            if cell["meets_target"] is False:
                cell["reasons"] = reasons(fitted, source, target.study, learned, min_step, signs)
            cells.append(cell)
    off = [c for c in cells if not c["out_of_fold"]]
    return {
        "settings": settings.as_dict(),
        "features": list(features),
        "targets": {"auroc": TARGET_AUROC, "false_stop_rate": TARGET_FALSE_STOP},
        "studies": [{"name": s.name, "setting": dict(s.setting),
                     **members_block(s.traces, min_step, settings.late_onset)} for s in studies],
        "precursors": {"at": min_step, "by_study": signs},
        "fits": fits,
        "cells": cells,
        "meeting": [_pair(c) for c in off if c["meets_target"]],
        "missing": [{**_pair(c), "why": c["why"], "reasons": c.get("reasons")} for c in off if not c["meets_target"]],
    }


def _pair(cell: Mapping[str, Any]) -> dict[str, str]:
    return {"fitted_on": cell["fitted_on"], "evaluated_on": cell["evaluated_on"]}


def _fit_block(source: StudyTraces, fitted: Fitted) -> dict[str, Any]:
    r = fitted.predictor.payload["report"]
    return {"fitted_on": source.name, "setting": dict(source.setting), "threshold": fitted.predictor.threshold,
            "members": r["members"], "exploded": r["exploded"], "stable": r["stable"],
            "skipped_exploded_before_min_step": fitted.skipped, "out_of_fold": dict(fitted.oof)}


def _learned_outcomes(fitted: Fitted, source: StudyTraces, target: StudyTraces, min_step: int,
                      at_step: int) -> Outcomes:
    """The learned predictor's decisions on `target`'s members: out of fold on its own study (members it
    could not learn from, exploded before min_step, are never scored), else a replay."""
    p: LearnedPredictor = fitted.predictor
    if target.name == source.name:
        oof = {t.member_id: sc for t, sc in zip(fitted.traces, fitted.oof_scores)}
        scores = [oof.get(t.member_id, []) for t in target.traces]
    else:
        model = target.traces[0].model
        reason = p.refusal(model)
        if reason is not None:
            raise TransferError(target.name, reason)
        scores = scores_of(target.traces, p, min_step, model)
    return outcomes_from_scores(scores, p.threshold, at_step)


CELL_FIGURES = ("auroc", "false_stop_rate", "recall", "recall_by_onset", "precision", "median_lead_time",
                "late_alarms", "compute_saved", "compute_saved_beyond_explosion_stop", "threshold")


def _cell(source: StudyTraces, target: _Target, learned: Outcomes, late_onset: int, min_step: int) -> dict[str, Any]:
    traces = target.study.traces
    outcomes = {"learned": learned, **target.baselines}
    late = [k for k, t in enumerate(traces) if not t.exploded or t.explode_onset >= late_onset]
    n_late = sum(traces[k].exploded for k in late)
    running = [k for k, t in enumerate(traces) if not t.exploded or t.explode_step >= min_step]
    detectors = {}
    for name in DETECTORS:
        every = summarize(traces, outcomes[name])
        late_fig = summarize([traces[k] for k in late], subset(outcomes[name], late)) if n_late else None
        detectors[name] = {
            **{k: every[k] for k in CELL_FIGURES},
            "auroc_running": summarize([traces[k] for k in running], subset(outcomes[name], running))["auroc"],
            "late_recall": late_fig["recall"] if late_fig else None,
            "late_recall_by_onset": late_fig["recall_by_onset"] if late_fig else None,
            "late_median_lead_time": late_fig["median_lead_time"] if late_fig else None,
            "late_auroc": late_fig["auroc"] if late_fig else None,
        }
    own = source.name == target.study.name
    meets, why = _meets(detectors["learned"])
    return {
        "fitted_on": source.name,
        "evaluated_on": target.study.name,
        "out_of_fold": own,
        "changed": [a for a in SETTING_AXES if source.setting.get(a) != target.study.setting.get(a)],
        "members": len(traces),
        "exploded": sum(t.exploded for t in traces),
        "late_explosions": n_late,
        "detectors": detectors,
        "meets_target": meets if not own else None,
        "why": why if not own else None,
    }


REASON_FEATURES = 3
"""`reasons`: the features named per missed cell (the largest median pushes)."""


def reasons(fitted: Fitted, source: StudyTraces, target: StudyTraces, learned: Outcomes, min_step: int,
            precursors_by_study: Mapping[str, Mapping[str, float | None]]) -> dict[str, Any]:
    """Why the learned predictor misses on `target` (see the module's docstring): the explosions decided
    before `min_step`, whether the fitted study's strongest precursors (`precursors_by_study`, by study
    name) keep their sign there, and for a logistic-regression predictor the features behind its false
    stops."""
    from .features import feature_matrix

    traces = target.traces
    out: dict[str, Any] = {
        "exploded_before_min_step": sum(t.exploded and t.explode_step < min_step for t in traces),
        "exploded": sum(t.exploded for t in traces),
        "false_stops": [],
        "precursors": precursor_shift(precursors_by_study[source.name], precursors_by_study[target.name]),
    }
    false = [(t, a) for t, a in zip(traces, learned.alarm) if not t.exploded and a is not None]
    linear = _linear_terms(fitted.predictor)
    out["false_stop_batch_median"] = float(np.median([a for _, a in false])) if false else None
    if not false or linear is None:
        return out
    features = fitted.predictor.features
    weight, mean, scale = linear
    X = feature_matrix([t.history.view().upto(int(a)) for t, a in false], features)  # (F, n)
    push = weight * (X - mean) / scale
    reference = [t for t in fitted.traces if not t.exploded]
    at_batch: dict[int, np.ndarray] = {}
    for _, a in false:  # the fitted study's stable members at the same batches
        if a not in at_batch:
            alive = [t.history.view().upto(int(a)) for t in reference]
            at_batch[a] = np.median(feature_matrix([h for h in alive if len(h.full_rows())], features), axis=0)
    ref = np.array([at_batch[a] for _, a in false])
    order = np.argsort(-np.median(push, axis=0))[:REASON_FEATURES]
    out["false_stops"] = [{"feature": features[i], "median_push": float(np.median(push[:, i])),
                           "median_value": float(np.median(X[:, i])),
                           "fitted_stable_median": float(np.median(ref[:, i]))} for i in order]
    return out


def _linear_terms(predictor: LearnedPredictor) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(weight, mean, scale) of a calibrated logistic regression on standardized features, averaged over
    its calibration folds: the logit is sum(weight * (x - mean) / scale) + const. None for another model."""
    folds = getattr(predictor.model, "calibrated_classifiers_", None) or []
    terms = []
    for fold in folds:
        pipe = getattr(fold, "estimator", None)
        steps = getattr(pipe, "named_steps", None) or {}
        scaler, model = steps.get("standardscaler"), steps.get("logisticregression")
        if scaler is None or model is None:
            return None
        terms.append((model.coef_.ravel(), scaler.mean_, scaler.scale_))
    if not terms:
        return None
    return tuple(np.mean([t[k] for t in terms], axis=0) for k in range(3))  # type: ignore[return-value]


def _meets(r: Mapping[str, Any]) -> tuple[bool, str | None]:
    """Whether the learned predictor's figures meet the target; if not, which part misses and by how much."""
    misses = []
    if r["auroc"] is None or r["auroc"] < TARGET_AUROC:
        misses.append(f"AUROC {_num(r['auroc'])} < {TARGET_AUROC}")
    if r["false_stop_rate"] is None or r["false_stop_rate"] > TARGET_FALSE_STOP:
        misses.append(f"false stops {_pct(r['false_stop_rate'])} > {_pct(TARGET_FALSE_STOP)}")
    return not misses, "; ".join(misses) or None


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------------------------------------------
# The paper's claim: does the ratio grow from the start in runs that later explode?


def ratio_growth(study: StudyTraces, upto: int = GROWTH_BATCHES, start_batches: int = 10) -> dict[str, Any]:
    """Per member, the ephemeral / slow gradient-norm ratio's growth in decades from its first batches
    (median of log10 over its full rows of batches <= first + start_batches) to batch `upto` (median of
    log10 over the rows of the last start_batches batches up to it), raw (grad_ratio) and per entry
    (grad_rms_ratio: each norm over the square root of its entry count); their starting levels too.

    Compared: the stable members and the exploded ones whose onset is after `upto` (the growth is then
    measured before anything broke): the medians per class, the fraction of each class whose ratio
    grew, the AUROC of the growth alone (higher growth = exploding) and of a low start. Beside them,
    the explosions with an onset in (first + 2 start_batches, upto]: their growth from the same start
    to the rows of the start_batches batches before their onset (`early_*`; not in the AUROCs)."""
    rows, early = [], []
    for t in study.traces:
        v = t.history.view().full_rows()
        if not len(v):
            continue
        first = v.step[0]
        logs = {name: safe_log10(v[col]) for name, col in (("raw", "grad_ratio"), ("rms", "grad_rms_ratio"))}
        start = v.step <= first + start_batches
        if t.exploded and first + 2 * start_batches < t.explode_onset <= upto:
            before = (v.step >= t.explode_onset - start_batches) & (v.step < t.explode_onset)
            if before.any():
                early.append({name: float(np.median(y[before])) - float(np.median(y[start]))
                              for name, y in logs.items()})
            continue
        keep = v.step <= upto
        if v.step[keep][-1] < upto or (t.exploded and t.explode_onset <= upto):
            continue  # ended before `upto`, or exploded before it
        now = keep & (v.step >= upto - start_batches)
        row = {"exploded": t.exploded}
        for name, y in logs.items():
            row[f"{name}_start"] = float(np.median(y[start]))
            row[f"{name}_growth"] = float(np.median(y[now])) - row[f"{name}_start"]
        rows.append(row)
    stable = [r for r in rows if not r["exploded"]]
    later = [r for r in rows if r["exploded"]]

    def med(rs, key):
        return float(np.median([r[key] for r in rs])) if rs else None

    def grew(rs, key):
        return float(np.mean([r[key] > 0 for r in rs])) if rs else None

    y = np.array([r["exploded"] for r in rows], dtype=bool)
    out = {"study": study.name, "setting": dict(study.setting), "upto": upto,
           "stable": len(stable), "exploded_later": len(later), "exploded_early_measured": len(early),
           "exploded_before": sum(t.exploded and t.explode_onset <= upto for t in study.traces)}
    for name in ("raw", "rms"):
        g = np.array([r[f"{name}_growth"] for r in rows])
        s0 = np.array([r[f"{name}_start"] for r in rows])
        out[name] = {
            "median_growth_stable": med(stable, f"{name}_growth"),
            "median_growth_exploded": med(later, f"{name}_growth"),
            "grew_stable": grew(stable, f"{name}_growth"),
            "grew_exploded": grew(later, f"{name}_growth"),
            "auroc_growth": auroc(y, g) if len(g) else None,
            "median_start_stable": med(stable, f"{name}_start"),
            "median_start_exploded": med(later, f"{name}_start"),
            "auroc_start_low": auroc(y, -s0) if len(s0) else None,
            "early_median_growth": med(early, name),
            "early_grew": grew(early, name),
        }
    return out


# ---------------------------------------------------------------------------------------------------
# Fig. 6 over studies: loss and gradient ratio over batches, exploding vs stable members


FIG6_CLASSES = ("stable", "exploded_late", "exploded_early")


def fig6_data(study: StudyTraces, *, upto: int = 300, per_class: int = 8,
              late_onset: int = LATE_ONSET) -> dict[str, Any]:
    """The data of a Fig. 6-style panel for one study: per class of member (stable, exploded with onset >=
    late_onset, exploded earlier), the per-batch median and quartiles of log10 loss, log10 raw ratio and
    log10 per-entry ratio over the full rows up to `upto` (rows after a member's onset left out: the
    question is what the traces show before the explosion), and a few members' own traces (the first
    `per_class` of each class in member order).

    Returns {"study", "setting", "upto", "classes": {class: {"members": n, "bands": [rows], "traces":
    [rows]}}}; a band row is {step, n, <signal>_q25/_median/_q75}, a trace row {member_id, onset, step,
    loss, grad_ratio, grad_rms_ratio} (the stored values, not logged)."""
    signals = ("loss", "grad_ratio", "grad_rms_ratio")
    members: dict[str, list[Trace]] = {c: [] for c in FIG6_CLASSES}
    for t in study.traces:
        c = "stable" if not t.exploded else "exploded_late" if t.explode_onset >= late_onset else "exploded_early"
        members[c].append(t)
    classes = {}
    for c, ts in members.items():
        by_step: dict[int, dict[str, list[float]]] = {}
        traces = []
        for k, t in enumerate(ts):
            v = t.history.view().full_rows()
            end = min(upto, t.explode_onset - 1) if t.exploded else upto
            keep = v.step <= end
            logs = {s: safe_log10(v[s]) for s in signals}
            for r in np.flatnonzero(keep):
                step = int(v.step[r])
                row = by_step.setdefault(step, {s: [] for s in signals})
                for s in signals:
                    row[s].append(float(logs[s][r]))
                if k < per_class:
                    traces.append({"member_id": t.member_id, "onset": t.explode_onset, "step": step,
                                   **{s: float(v[s][r]) for s in signals}})
        bands = []
        for step in sorted(by_step):
            row = {"step": step, "n": len(by_step[step]["loss"])}
            for s in signals:
                q25, q50, q75 = np.percentile(by_step[step][s], [25, 50, 75])
                row.update({f"{s}_q25": float(q25), f"{s}_median": float(q50), f"{s}_q75": float(q75)})
            bands.append(row)
        classes[c] = {"members": len(ts), "bands": bands, "traces": traces}
    return {"study": study.name, "setting": dict(study.setting), "upto": upto, "late_onset": late_onset,
            "classes": classes}


__all__ = ["DETECTORS", "TARGET_AUROC", "TARGET_FALSE_STOP", "StudyTraces", "TransferError", "TransferSettings",
           "check_request", "fig6_data", "load_study", "ratio_growth", "setting_of", "transfer_matrix"]
