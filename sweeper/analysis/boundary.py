"""The stability boundary: P(stable) as a linear function of the log-scaled hyperparameters.

    report = fit_boundary(db, "fig7_reversal3_grid_cpu")          # fits, stores, returns
    report.slope, report.slope_ci                                  # log10 plasticity per log10 lr
    latest_fit(db, "fig7_reversal3_grid_cpu").payload              # the stored fit (strict JSON)
    p_stable(payload, {"lr": lrs, "plasticity": plasticities})    # P(stable) anywhere

The paper (Fig. 7) saw a line separate stable from exploding runs in the (base LR, plasticity) plane;
the linearised fast update predicts that the line has slope -1 in log10-log10 coordinates (stability
depends on lr * plasticity). This module measures that line:

- **Members.** stable = outcome `stable`; unstable = `exploded` or `stopped_early` (the stopper
  predicted an explosion); `failed` and `running` members are left out (counted in the report).
- **Features.** log10 of each hyperparameter that takes more than one value among those members
  (lr and plasticity must; ratio, gamma and clip when they vary). A clip of inf (no clipping) has no
  logarithm: it is mapped to one decade beyond the largest finite clip of the study
  (`clip_inf_log10` in the payload), i.e. "looser than any clip tried".
- **Model.** scikit-learn's LogisticRegression (or LinearSVC, Platt-scaled by scikit-learn's sigmoid
  calibration of out-of-fold decision values so that it also gives probabilities) on standardized
  features; the stored hyperplane is mapped back to log10 units,
  P(stable) = sigmoid(intercept + sum_a coef[a] * x_a).
- **Boundary line.** P = 0.5 in the (log10 lr, log10 plasticity) plane, the other features at their
  median: log10 plasticity = slope * log10 lr + intercept, with percentile intervals over
  `bootstrap` refits on members resampled with replacement. The slope is consistent with -1 (the
  lr * plasticity hypothesis) when -1 lies inside its 95% interval.
- **Accuracy.** Stratified k-fold cross-validated accuracy and AUROC (fold means), beside the
  majority-class accuracy that a constant guess would score.
- **Cells.** The explosion rate per (lr, plasticity) pair with Wilson 95% intervals.

Every fit is stored in `sw_boundary_fits` (kind "logistic" or "svm"); its payload is strict JSON (no
NaN or infinity anywhere: what cannot be computed is null).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.errors import SweeperError
from sweeper.jsonio import to_strict
from sweeper.outcomes import FINISHED
from sweeper.provenance import code_version

AXES = ("lr", "plasticity", "ratio", "gamma", "clip")
"""Hyperparameters the classifier may use, in this order."""
PLANE = ("lr", "plasticity")
MODELS = ("logistic", "svm")
MIN_PER_CLASS = 5
"""A fit needs at least this many stable and this many unstable members."""
MIN_BOOTSTRAP_USED = 0.5
"""Intervals are reported only when at least this fraction of the resamples could be fitted."""
PAYLOAD_FORMAT = 1


class BoundaryError(SweeperError, ValueError):
    """The study cannot support a boundary fit; the message says what is missing."""

    field_default = "study"


# ---------------------------------------------------------------------------------------------------
# Members


@dataclass(frozen=True)
class Members:
    """The fitted members of one study, as arrays (one entry per member)."""

    study: str
    study_id: int
    hypers: dict[str, np.ndarray]
    """axis -> (N,) float64, natural units (clip may be inf)."""
    stable: np.ndarray
    """(N,) bool."""
    outcome: np.ndarray
    """(N,) str: stable, exploded or stopped_early."""
    config_index: np.ndarray
    """(N,) int (-1 where unknown)."""
    excluded: dict[str, int]
    """Members left out, by outcome (failed, running)."""

    def subset(self, keep: np.ndarray) -> Members:
        return Members(self.study, self.study_id, {a: v[keep] for a, v in self.hypers.items()}, self.stable[keep],
                       self.outcome[keep], self.config_index[keep], dict(self.excluded))


def load_members(db, study: str, *, finished_trials_only: bool = False) -> Members:
    """The study's stable, exploded and stopped-early members. `finished_trials_only`: only members
    of packs whose trial finished (COMPLETE), as a proposer must when the study is still running."""
    with db.read_session() as s:
        return _members(s, study, _study_id_or_refuse(s, db, study), finished_trials_only)


def load_members_by_id(session, study_id: int, *, finished_trials_only: bool = False) -> Members:
    import sqlalchemy as sa

    from sweeper.db import Study

    name = session.scalar(sa.select(Study.name).where(Study.id == study_id))
    if name is None:
        raise BoundaryError(f"no study with id {study_id}")
    return _members(session, name, study_id, finished_trials_only)


def _members(s, study: str, study_id: int, finished_trials_only: bool) -> Members:
    import sqlalchemy as sa

    from sweeper.db import Member, Outcome, Trial, TrialStatus

    family = s.scalar(sa.select(Member.model_kind).where(Member.study_id == study_id,
                                                         Member.model_kind.in_(("fastweights", "fwp"))).limit(1))
    if family is not None:
        raise BoundaryError(f"study {study!r} is a {family} study: the stability boundary (and the figures and "
                            "report built on it) is of the ephemeral model's (lr, plasticity) plane; a fast-weight "
                            "family's members are listed by `sweeper trials` and `sweeper export`")
    q = (sa.select(Member.lr, Member.plasticity, Member.ratio, Member.gamma, Member.clip, Member.outcome,
                   Member.config_index)
         .where(Member.study_id == study_id).order_by(Member.config_index, Member.id))
    if finished_trials_only:
        q = q.join(Trial, Trial.id == Member.trial_id).where(Trial.status == TrialStatus.COMPLETE)
    rows = s.execute(q).all()
    excluded: dict[str, int] = {}
    kept = []
    for r in rows:
        if r.outcome in FINISHED:
            kept.append(r)
        else:
            excluded[r.outcome.value] = excluded.get(r.outcome.value, 0) + 1
    hypers = {a: np.array([getattr(r, a) for r in kept], dtype=np.float64) for a in AXES}
    outcome = np.array([r.outcome.value for r in kept], dtype=object)
    return Members(study, study_id, hypers, outcome == Outcome.STABLE.value, outcome,
                   np.array([-1 if r.config_index is None else r.config_index for r in kept], dtype=np.int64),
                   excluded)


def _study_id_or_refuse(s, db, study: str) -> int:
    """The id of the study named `study`; BoundaryError, naming the known studies, when there is none."""
    from sweeper.db.queries import StudyNotFound, _study_id

    try:
        return _study_id(s, db, study)
    except StudyNotFound as e:
        raise BoundaryError(e.message) from None


# ---------------------------------------------------------------------------------------------------
# Features


def _features(members: Members) -> tuple[list[str], float | None]:
    """The axes that vary (lr and plasticity required), and where an infinite clip is put (log10)."""
    n_stable = int(members.stable.sum())
    n_unstable = int((~members.stable).sum())
    left_out = ", ".join(f"{n} {k}" for k, n in sorted(members.excluded.items())) or "none"
    if n_stable < MIN_PER_CLASS or n_unstable < MIN_PER_CLASS:
        raise BoundaryError(
            f"study {members.study!r} has {n_stable} stable and {n_unstable} unstable (exploded or stopped early) "
            f"members; a boundary fit needs at least {MIN_PER_CLASS} of each (left out: {left_out}). "
            f"Extend the space across the stability boundary, or wait for more trials to finish")
    features = []
    for axis in AXES:
        values = members.hypers[axis]
        distinct = np.unique(values)
        if axis in PLANE and distinct.size < 2:
            raise BoundaryError(
                f"study {members.study!r}: {axis} takes a single value ({distinct[0]:g}) among its "
                f"{values.size} fitted members; the boundary in the (lr, plasticity) plane needs at least two "
                f"values of each")
        if distinct.size < 2:
            continue
        if np.any(np.isnan(values)) or np.any(values <= 0):
            raise BoundaryError(f"study {members.study!r}: {axis} has values <= 0 or NaN; the classifier works on "
                                f"log10 {axis}, which needs positive values")
        if axis != "clip" and np.any(np.isinf(values)):
            raise BoundaryError(f"study {members.study!r}: {axis} has infinite values")
        features.append(axis)
    clip_inf = None
    if "clip" in features:
        finite = members.hypers["clip"][np.isfinite(members.hypers["clip"])]
        clip_inf = float(np.log10(finite.max()) + 1.0) if finite.size else None
    return features, clip_inf


def _log10(axis: str, values: Any, clip_inf_log10: float | None) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(v)
    if axis == "clip" and clip_inf_log10 is not None:
        x = np.where(np.isposinf(v), clip_inf_log10, x)
    return x


def _design(members: Members, features: Sequence[str], clip_inf: float | None) -> np.ndarray:
    return np.column_stack([_log10(a, members.hypers[a], clip_inf) for a in features])  # (N, F)


# ---------------------------------------------------------------------------------------------------
# Model


def _estimator(model: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if model == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=10_000, random_state=seed))


def _hyperplane(pipeline) -> tuple[float, np.ndarray]:
    """(intercept, coef) of the fitted pipeline's decision function, in the log10 units of X."""
    scaler, clf = pipeline[0], pipeline[-1]
    w = clf.coef_.ravel() / scaler.scale_
    b = float(clf.intercept_.ravel()[0] - np.dot(w, scaler.mean_))
    return b, w


def _fit_plane(X: np.ndarray, y: np.ndarray, model: str, seed: int, platt: tuple[float, float]):
    """The hyperplane (intercept, coef) with P(stable) = sigmoid(intercept + X @ coef)."""
    est = _estimator(model, seed).fit(X, y)
    b, w = _hyperplane(est)
    a, c = platt
    return a * b + c, a * w


def _line(b: float, w: np.ndarray, features: Sequence[str], at: Mapping[str, float]) -> tuple[float, float] | None:
    """(slope, intercept) of P = 0.5 in (log10 lr, log10 plasticity), other features at `at` (log10)."""
    i_lr, i_p = features.index("lr"), features.index("plasticity")
    if abs(w[i_p]) < 1e-12 * max(1.0, float(np.abs(w).max())):
        return None  # the boundary is vertical: plasticity does not matter to the fit
    rest = b + sum(w[i] * at[a] for i, a in enumerate(features) if a not in PLANE)
    return float(-w[i_lr] / w[i_p]), float(-rest / w[i_p])


def _folds(folds: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)


def _cv(X: np.ndarray, y: np.ndarray, model: str, folds: int, seed: int) -> dict:
    from sklearn.model_selection import cross_validate

    scores = cross_validate(_estimator(model, seed), X, y, cv=_folds(folds, seed), scoring=("accuracy", "roc_auc"))
    accs, aucs = scores["test_accuracy"], scores["test_roc_auc"]
    majority = max(y.mean(), 1 - y.mean())
    return {"folds": folds, "accuracy": float(np.mean(accs)), "accuracy_sd": float(np.std(accs)),
            "auroc": float(np.mean(aucs)), "auroc_sd": float(np.std(aucs)),
            "majority_baseline": float(majority)}


def _platt(X: np.ndarray, y: np.ndarray, model: str, folds: int, seed: int) -> tuple[float, float]:
    """Platt scaling: scikit-learn's sigmoid calibration of the out-of-fold decision values d, as
    (a, c) with P(stable) = sigmoid(a * d + c)."""
    from sklearn.calibration import CalibratedClassifierCV

    calibrated = CalibratedClassifierCV(_estimator(model, seed), method="sigmoid", cv=_folds(folds, seed),
                                        ensemble=False).fit(X, y)
    sigmoid = calibrated.calibrated_classifiers_[0].calibrators[0]  # P = 1 / (1 + exp(a_ * d + b_))
    return -float(sigmoid.a_), -float(sigmoid.b_)


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k / n; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _cells(members: Members) -> list[dict]:
    keys = np.column_stack([members.hypers["lr"], members.hypers["plasticity"]])
    cells = []
    for lr, p in sorted({(float(a), float(b)) for a, b in keys}):
        at = (members.hypers["lr"] == lr) & (members.hypers["plasticity"] == p)
        n = int(at.sum())
        k = int((~members.stable[at]).sum())
        lo, hi = wilson(k, n)
        cells.append({"lr": lr, "plasticity": p, "members": n, "unstable": k, "explosion_rate": k / n,
                      "ci95": [lo, hi]})
    return cells


# ---------------------------------------------------------------------------------------------------
# The fit


@dataclass(frozen=True)
class BoundaryReport:
    """One boundary fit: `payload` is what is stored (strict JSON); the properties read it."""

    study: str
    kind: str
    payload: dict
    id: int | None = None
    created_at: Any = None

    @property
    def slope(self) -> float | None:
        return self.payload["boundary"]["slope"]

    @property
    def slope_ci(self) -> list[float] | None:
        return self.payload["boundary"]["slope_ci95"]

    @property
    def intercept(self) -> float | None:
        return self.payload["boundary"]["intercept"]

    @property
    def intercept_ci(self) -> list[float] | None:
        return self.payload["boundary"]["intercept_ci95"]

    @property
    def cv_accuracy(self) -> float:
        return self.payload["cv"]["accuracy"]

    @property
    def auroc(self) -> float:
        return self.payload["cv"]["auroc"]

    @property
    def consistent_with_product(self) -> bool | None:
        return self.payload["product_hypothesis"]["consistent"]

    def to_dict(self) -> dict:
        return {"id": self.id, "study": self.study, "kind": self.kind,
                "created_at": None if self.created_at is None else str(self.created_at), **self.payload}


def fit_members(members: Members, *, model: str = "logistic", bootstrap: int = 200, folds: int = 5,
                seed: int = 0, cv: bool = True) -> dict:
    """Fit the boundary on `members` and return the payload (nothing is stored). `cv=False` and
    `bootstrap=0` give the point estimate alone (what `compare` refits many times)."""
    if model not in MODELS:
        raise BoundaryError("--model", f"got {model!r}; expected one of {', '.join(MODELS)}")
    if not isinstance(bootstrap, int) or bootstrap < 0 or bootstrap > 100_000:
        raise BoundaryError("--bootstrap", f"got {bootstrap!r}; expected an integer in [0, 100000]")
    if not isinstance(folds, int) or folds < 2:
        raise BoundaryError("--folds", f"got {folds!r}; expected an integer >= 2")
    features, clip_inf = _features(members)
    X = _design(members, features, clip_inf)
    y = members.stable.astype(np.int64)
    n_min = int(min(y.sum(), y.size - y.sum()))
    k = min(folds, n_min)

    cv_report, platt = None, (1.0, 0.0)
    if cv or model == "svm":
        cv_report = _cv(X, y, model, k, seed)
        if k < folds:
            cv_report["note"] = f"{k} folds, not {folds}: the smaller class has only {n_min} members"
    if model == "svm":
        platt = _platt(X, y, model, k, seed)
    b, w = _fit_plane(X, y, model, seed, platt)
    medians = {a: float(np.median(X[:, i])) for i, a in enumerate(features)}
    line = _line(b, w, features, medians)

    rng = np.random.default_rng(seed)
    slopes, intercepts, failed = [], [], 0
    for _ in range(bootstrap):
        idx = rng.integers(0, y.size, y.size)
        if y[idx].min() == y[idx].max():
            failed += 1
            continue
        bb, ww = _fit_plane(X[idx], y[idx], model, seed, platt)
        fit = _line(bb, ww, features, medians)
        if fit is None:
            failed += 1
            continue
        slopes.append(fit[0])
        intercepts.append(fit[1])
    used = len(slopes)
    enough = bootstrap > 0 and used >= MIN_BOOTSTRAP_USED * bootstrap

    def ci(values):
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if enough else None

    slope_ci, intercept_ci = ci(slopes), ci(intercepts)
    consistent = None if slope_ci is None else bool(slope_ci[0] <= -1.0 <= slope_ci[1])
    stable_side = None
    if line is not None:
        stable_side = "below" if w[features.index("plasticity")] < 0 else "above"
    counts = {o.value: int((members.outcome == o.value).sum()) for o in FINISHED}
    payload = {
        "format": PAYLOAD_FORMAT,
        "study": members.study,
        "model": model,
        "features": list(features),
        "transform": "log10",
        "clip_inf_log10": clip_inf,
        "hyperplane": {"intercept": b, "coef": {a: float(w[i]) for i, a in enumerate(features)},
                       "meaning": "P(stable) = 1 / (1 + exp(-(intercept + sum coef[a] * log10 a)))"},
        "medians": {a: float(10 ** v) for a, v in medians.items()},
        "boundary": {
            "slope": None if line is None else line[0],
            "intercept": None if line is None else line[1],
            "slope_ci95": slope_ci,
            "intercept_ci95": intercept_ci,
            "equation": "log10 plasticity = slope * log10 lr + intercept (P(stable) = 0.5)",
            "stable_side": stable_side,
            "others_at_median": {a: float(10 ** medians[a]) for a in features if a not in PLANE},
            "bootstrap": {"requested": bootstrap, "used": used, "skipped": failed},
        },
        "product_hypothesis": {
            "slope": -1.0,
            "consistent": consistent,
            "statement": _statement(line, slope_ci, consistent),
        },
        "cv": cv_report,
        "members": {"fitted": int(y.size), **counts, "excluded": dict(members.excluded)},
        "cells": _cells(members),
        "seed": seed,
    }
    # The headline numbers as flat scalars (what a table shows); keys without a value are left out.
    headline = {"slope": payload["boundary"]["slope"], "intercept": payload["boundary"]["intercept"],
                "slope_ci95_low": (slope_ci or [None])[0], "slope_ci95_high": (slope_ci or [None, None])[1],
                "intercept_ci95_low": (intercept_ci or [None])[0],
                "intercept_ci95_high": (intercept_ci or [None, None])[1],
                "consistent_with_slope_minus_1": consistent,
                "cv_accuracy": None if cv_report is None else cv_report["accuracy"],
                "cv_auroc": None if cv_report is None else cv_report["auroc"], "members": int(y.size)}
    payload["summary"] = {k: v for k, v in headline.items() if v is not None}
    return to_strict(payload, nonfinite=None)  # strict JSON: what cannot be computed is null


def _statement(line, slope_ci, consistent) -> str:
    if line is None:
        return "no slope: the fit gives plasticity no weight (a vertical boundary)"
    if slope_ci is None:
        return f"slope {line[0]:.3f}; no interval (too few bootstrap refits succeeded)"
    verdict = "consistent with" if consistent else "not consistent with"
    return (f"slope {line[0]:.3f}, 95% interval [{slope_ci[0]:.3f}, {slope_ci[1]:.3f}]: {verdict} -1 "
            f"(stability set by lr * plasticity)")


def fit_boundary(db, study_name: str, *, model: str = "logistic", bootstrap: int = 200, folds: int = 5,
                 seed: int = 0, store: bool = True) -> BoundaryReport:
    """Fit the study's boundary (see the module's docstring), store it, and return the report.

    Raises BoundaryError for an unknown study, too few stable or unstable members, a single value of
    lr or plasticity, or bad arguments: never an error from inside scikit-learn."""
    members = load_members(db, study_name)
    payload = fit_members(members, model=model, bootstrap=bootstrap, folds=folds, seed=seed)
    if not store:
        return BoundaryReport(study_name, model, payload)
    from sweeper.db import BoundaryFit

    with db.session() as s:
        row = BoundaryFit(study_id=members.study_id, kind=model, payload=payload, code_version=code_version())
        s.add(row)
        s.flush()
        fit_id, created = row.id, row.created_at
    return BoundaryReport(study_name, model, payload, fit_id, created)


def latest_fit(db, study: str) -> BoundaryReport | None:
    """The study's newest stored fit, or None when it has none. BoundaryError for an unknown study."""
    import sqlalchemy as sa

    from sweeper.db import BoundaryFit

    with db.read_session() as s:
        study_id = _study_id_or_refuse(s, db, study)
        row = s.scalars(sa.select(BoundaryFit).where(BoundaryFit.study_id == study_id)
                        .order_by(BoundaryFit.created_at.desc(), BoundaryFit.id.desc()).limit(1)).first()
        if row is None:
            return None
        return BoundaryReport(study, row.kind, row.payload, row.id, row.created_at)


# ---------------------------------------------------------------------------------------------------
# Using a fit


def p_stable(payload: Mapping[str, Any], points: Mapping[str, Any]) -> np.ndarray:
    """P(stable) under a stored fit, at `points` = {axis: value or array} in natural units.

    The contract others rely on (the dashboard draws contours with it; the frontier proposer and the
    Optuna filter call it):
    - `payload` is a fit's payload (`latest_fit(db, study).payload`, or `BoundaryReport.payload`);
    - `points` maps hyperparameter names ("lr", "plasticity", "ratio", "gamma", "clip") to scalars or
      arrays that broadcast together; clip may be inf (no clipping);
    - a feature of the fit that `points` does not give is held at the fitted study's median;
      names the fit does not use (an axis constant in the fitted study) are ignored;
    - returns a float64 array of the broadcast shape (0-d for scalars); NaN where a value is <= 0.
    """
    features = payload["features"]
    plane = payload["hyperplane"]
    clip_inf = payload.get("clip_inf_log10")
    unknown = set(points) - set(AXES)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(sorted(unknown))}; known: {', '.join(AXES)}")
    arrays = [np.asarray(points[a], dtype=np.float64) if a in points
              else np.asarray(payload["medians"][a], dtype=np.float64) for a in features]
    arrays = np.broadcast_arrays(*arrays) if arrays else []
    z = np.full(arrays[0].shape if arrays else (), plane["intercept"], dtype=np.float64)
    for a, v in zip(features, arrays):
        z = z + plane["coef"][a] * _log10(a, v, clip_inf)
    from scipy.special import expit

    return expit(z)
