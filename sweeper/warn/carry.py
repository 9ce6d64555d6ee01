"""Whether a learned predictor carries over to another study: two checks at its first scored batch.

- **Range** (needs no outcomes): where the fitted members' features lay at the first scored batch
  (`min_step`), the RANGE_LOW..RANGE_HIGH percentiles of each feature over the members still running
  there. `outside` gives, for another set of members, the share lying outside that range in each
  feature and in any feature. A predictor scores runs it has seen the like of; a study whose runs sit
  outside in many members (per-step backprop scored by a predictor fitted on DFA, docs/findings.md)
  is scored by extrapolation, and its scores' threshold means little there.
- **Precursors** (needs outcomes): each feature alone as a warning at the first scored batch, its AUROC
  exploding vs stable over the members that have not broken yet (`precursors`). Above 0.5 a higher
  value comes before an explosion. `precursor_shift` names, for the fitted study's strongest
  precursors, whether they keep their sign on another study, point the other way (`reversed`: no
  threshold on a score that leans on them serves both) or lose it (`lost`).

`sweeper warn fit` stores both for its members in the predictor's payload (`carry`), so `sweeper warn
eval` reports them for any study it is evaluated on; `sweeper warn transfer` prints them per cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .features import feature_matrix
from .history import HistoryView
from .traces import Trace

RANGE_LOW, RANGE_HIGH = 1.0, 99.0
"""The fitted range of a feature: these percentiles over the fitted members at the first scored batch."""
RANGE_TOLERANCE = 1e-6
"""A value is outside its range when it is beyond it by more than this (in the feature's units, decades
for most): the rounding of a feature that every fitted member shares is not a shift."""
RANGE_SKIP = ("log_step",)
"""Not compared: the batch of the last row, not a property of the run."""
CLEAR_SIGN = 0.1
"""A precursor points one way on a study when its AUROC alone is at least this far from 0.5."""
SHIFT_FEATURES = 4
"""`precursor_shift` reads the fitted study's this many strongest precursors."""


def _running(traces: Sequence[Trace], at: int, *, before_onset: bool) -> tuple[list[Trace], list[HistoryView]]:
    """The members with a full row by `at` and still running there (not yet decided, or with
    `before_onset` not yet broken: onset after `at`), and their histories up to `at`."""
    keep, views = [], []
    for t in traces:
        if t.exploded and (t.explode_onset <= at if before_onset else t.explode_step < at):
            continue
        v = t.history.view().upto(at)
        if len(v.full_rows()):
            keep.append(t)
            views.append(v)
    return keep, views


def feature_range(traces: Sequence[Trace], features: Sequence[str], at: int) -> dict[str, Any]:
    """{"at", "members", "low": {feature: value}, "high": {...}} over the members running at `at`."""
    keep, views = _running(traces, at, before_onset=False)
    if not keep:
        return {"at": at, "members": 0, "low": {}, "high": {}}
    X = feature_matrix(views, tuple(features))
    low, high = np.percentile(X, RANGE_LOW, axis=0), np.percentile(X, RANGE_HIGH, axis=0)
    return {"at": at, "members": len(keep), "low": dict(zip(features, map(float, low))),
            "high": dict(zip(features, map(float, high)))}


def outside(traces: Sequence[Trace], fitted_range: Mapping[str, Any]) -> dict[str, Any]:
    """The share of these members (running at the range's batch) outside the fitted range: per feature
    (largest first) and in any feature."""
    at, low, high = int(fitted_range["at"]), fitted_range["low"], fitted_range["high"]
    features = [f for f in low if f not in RANGE_SKIP]
    keep, views = _running(traces, at, before_onset=False)
    if not keep or not features:
        return {"at": at, "members": len(keep), "any": None, "by_feature": {}}
    X = feature_matrix(views, tuple(features))
    lo, hi = np.array([low[f] for f in features]), np.array([high[f] for f in features])
    out = (X < lo - RANGE_TOLERANCE) | (X > hi + RANGE_TOLERANCE)
    share = out.mean(axis=0)
    order = np.argsort(-share, kind="stable")
    return {"at": at, "members": len(keep), "any": float(out.any(axis=1).mean()),
            "by_feature": {features[i]: float(share[i]) for i in order}}


def precursors(traces: Sequence[Trace], features: Sequence[str], at: int) -> dict[str, float | None]:
    """Each feature alone as a warning at batch `at`: its AUROC, exploding vs stable, over the members
    still running at `at` whose onset is after it (nothing has broken yet), from their history up to
    `at`. None where a class has no such member or the feature is constant there."""
    from .evaluate import auroc

    keep, views = _running(traces, at, before_onset=True)
    y = np.array([t.exploded for t in keep], dtype=bool)
    if not len(keep) or y.all() or not y.any():
        return {f: None for f in features}
    X = feature_matrix(views, tuple(features))
    return {f: (auroc(y, X[:, i]) if np.ptp(X[:, i]) > 0 else None) for i, f in enumerate(features)}


def sign_of(a: float | None) -> int:
    """+1 / -1 where a precursor's AUROC points clearly one way (CLEAR_SIGN), 0 where it does not."""
    if a is None or abs(a - 0.5) < CLEAR_SIGN:
        return 0
    return 1 if a > 0.5 else -1


def precursor_shift(fitted_on: Mapping[str, float | None], here: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """The fitted study's SHIFT_FEATURES strongest precursors (farthest from 0.5) with their AUROC on
    another study and a verdict: `kept` (the same sign), `reversed` (clearly the other way) or `lost`
    (no clear sign there)."""
    strong = sorted((f for f, a in fitted_on.items() if sign_of(a)), key=lambda f: -abs(fitted_on[f] - 0.5))
    out = []
    for f in strong[:SHIFT_FEATURES]:
        s, t = sign_of(fitted_on[f]), sign_of(here.get(f))
        out.append({"feature": f, "fitted_auroc": fitted_on[f], "auroc": here.get(f),
                    "verdict": "kept" if s == t else ("reversed" if t else "lost")})
    return out


def fitted_carry(traces: Sequence[Trace], features: Sequence[str], at: int) -> dict[str, Any]:
    """The payload block `sweeper warn fit` stores: the fitted members' range and precursors at `at`."""
    return {"range": feature_range(traces, features, at), "precursors": precursors(traces, features, at)}


def carry_report(carry: Mapping[str, Any], traces: Sequence[Trace]) -> dict[str, Any]:
    """Both checks of a stored `carry` block on other members."""
    at = int(carry["range"]["at"])
    here = precursors(traces, list(carry["precursors"]), at)
    return {"outside": outside(traces, carry["range"]), "precursors": precursor_shift(carry["precursors"], here)}
