"""The stability boundary: P(stable) as a linear function of the scaled hyperparameters, and its line
in the study's plane.

    report = fit_boundary(db, "fig7_reversal3_grid_cpu")          # fits, stores, returns
    report.plane                                                   # ("lr", "plasticity")
    report.slope, report.slope_ci                                  # log10 plasticity per log10 lr
    latest_fit(db, "fig7_reversal3_grid_cpu").payload              # the stored fit (strict JSON)
    p_stable(payload, {"lr": lrs, "plasticity": plasticities})    # P(stable) anywhere

The paper (Fig. 7) saw a line separate stable from exploding runs in the (base LR, plasticity) plane;
the linearised fast update predicts that the line has slope -1 in log10-log10 coordinates (stability
depends on lr * plasticity). This module measures that line, for the ephemeral model and for the
fast-weight families alike:

- **Plane.** Every study has two axes (x, y) of its model: `[search] plane` of its study file, else
  the model's default (`sweeper.study.spec.DEFAULT_PLANES`: ephemeral and rnn (lr, plasticity),
  fastweights (lr, eta), fwp (lr, beta_scale)). It is read from the study's stored spec
  (`sw_studies.spec`) and its members' `model_kind` (`study_plane`), so the database alone says it.
- **Members.** stable = outcome `stable`; unstable = `exploded` or `stopped_early` (the stopper
  predicted an explosion); `failed` and `running` members are left out (counted in the report).
- **Features and their scale.** Every axis of the study's model that takes more than one value
  among those members (both axes of the plane must), each on a logarithmic scale (`to_coord`):
  log10 of the value, except the families' decay lambda in (0, 1], which enters as
  log10(1 - lambda): the log of the rate at which the fast state forgets (minus the log of its
  memory time 1 / (1 - lambda)), which puts 0.9, 0.99 and 0.999 a decade apart, as log10 lambda
  would not. Three values lie at an end of their scale: clip inf (no clipping), eta 0 (no fast
  weights) and lambda 1 (no decay). Each is placed one decade beyond the other values of the study
  on its side ("looser, weaker or slower than any tried"): clip inf above the largest finite clip,
  eta 0 below the smallest positive eta, lambda 1 below the smallest 1 - lambda. The payload's
  `limits` records where (`clip_inf_log10` too). Any other value without a logarithm (<= 0, NaN) is
  refused.
- **Model.** scikit-learn's LogisticRegression (or LinearSVC, Platt-scaled by scikit-learn's sigmoid
  calibration of out-of-fold decision values so that it also gives probabilities) on standardized
  features; the stored hyperplane is mapped back to the scaled units,
  P(stable) = sigmoid(intercept + sum_a coef[a] * scaled a).
- **Boundary line.** P = 0.5 in the plane, the other features at their median:
  Y = slope * X + intercept with X, Y the plane's scaled axes (log10 y = slope * log10 x + intercept
  for the default planes), with percentile intervals over `bootstrap` refits on members resampled
  with replacement. The slope is consistent with -1 (the product hypothesis: stability set by
  x * y, e.g. lr * plasticity, lr * eta, lr * (1 - lambda)) when -1 lies inside its 95% interval.
- **Accuracy.** Stratified k-fold cross-validated accuracy and AUROC (fold means), beside the
  majority-class accuracy that a constant guess would score.
- **Cells.** The explosion rate per (x, y) pair with Wilson 95% intervals.

**Two splits** (`label`). `label="stable"` (the default, everything above) separates stable from
unstable members: the stability boundary, the window's upper edge. `label="remembers"` fits the same
model, with the same features and scales, among the stable members that have a memory judgement
(`sw_members.remembers`, `sweeper.outcomes.judge_memory`): those that remember against those that
ended stable without memory; its line, P(remembers | stable) = 0.5, is the memory onset, the window's
lower edge (`sweeper.analysis.window` fits both and the window between them). Its bootstrap draws the
very resamples of the study's finished members that the stability fit draws (same seed), keeping the
judged stable members of each, so that replicate k of the two fits come from one resample
(`boundary.replicates`, aligned, null where a resample could not be fitted).

Every fit is stored in `sw_boundary_fits` (kind "logistic" or "svm"); its payload is strict JSON (no
NaN or infinity anywhere: what cannot be computed is null). Payload format 2 names its `model_kind`,
`plane`, `transforms` and `limits`; a format-1 payload has none of them and means the ephemeral
model's (lr, plasticity) plane, log10 throughout and clip's limit alone (`clip_inf_log10`), which is
how every reader here takes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.errors import SweeperError
from sweeper.jsonio import to_strict
from sweeper.outcomes import FINISHED
from sweeper.provenance import code_version
from sweeper.study.spec import DEFAULT_PLANES, axes_of, default_plane

AXES = ("lr", "plasticity", "ratio", "gamma", "clip", "eta", "beta_scale", "lambda")
"""Every hyperparameter a fit may use, over all models (a study uses its own model's, `axes_of(kind)`)."""
PLANE = DEFAULT_PLANES["ephemeral"]
"""The plane of the ephemeral model, and of every format-1 payload."""
LIMITS = {"clip": (math.inf, 1), "eta": (0.0, -1), "lambda": (1.0, -1)}
"""axis -> (the value at the end of its scale, the side it lies on): placed one decade beyond the rest."""
MODELS = ("logistic", "svm")
MIN_PER_CLASS = 5
"""A fit needs at least this many stable and this many unstable members."""
MIN_BOOTSTRAP_USED = 0.5
"""Intervals are reported only when at least this fraction of the resamples could be fitted."""
PAYLOAD_FORMAT = 2


@dataclass(frozen=True)
class Split:
    """What a fit separates (`SPLITS[label]`)."""

    label: str
    positive: str
    """The class whose probability the fit gives, as text ("stable", "remember")."""
    negative: str
    probability: str
    """"P(stable)", "P(remembers | stable)"."""
    line: str
    """What its P = 0.5 line is called."""
    sets: str
    """What slope -1 would say the product sets."""


SPLITS = {
    "stable": Split("stable", "stable", "unstable (exploded or stopped early)", "P(stable)", "stability boundary",
                    "stability"),
    "remembers": Split("remembers", "remember", "stable without memory", "P(remembers | stable)", "memory onset",
                       "the memory onset"),
}
LABELS = tuple(SPLITS)
"""`label` of a fit: "stable" (stable vs exploded or stopped early, every finished member) or "remembers"
(remembers vs not, among the stable members with a memory judgement)."""


class BoundaryError(SweeperError, ValueError):
    """The study cannot support a boundary fit; the message says what is missing."""

    field_default = "study"


# ---------------------------------------------------------------------------------------------------
# Axes: their database columns, scales and labels


def column(axis: str) -> str:
    """The `sw_members` column of an axis (the families' `lambda` is stored as `lam`)."""
    return "lam" if axis == "lambda" else axis


def scale_of(axis: str) -> str:
    """The scale an axis is fitted and drawn on: "log10", or "log10(1 - lambda)" for lambda."""
    return "log10(1 - lambda)" if axis == "lambda" else "log10"


def axis_label(axis: str) -> str:
    """The scaled axis as text: "log10 lr", "log10(1 - lambda)"."""
    return scale_of(axis) if axis == "lambda" else f"log10 {axis}"


def product_name(plane: Sequence[str]) -> str:
    """What slope -1 says sets stability in `plane`: "lr * plasticity", "lr * (1 - lambda)"."""
    return " * ".join("(1 - lambda)" if a == "lambda" else a for a in plane)


def to_coord(axis: str, values: Any, limit: float | None = None) -> np.ndarray:
    """Natural values -> the axis's scaled coordinate (`scale_of`); its end value (`LIMITS`) goes to
    `limit` when given. NaN or +-inf where a value has no logarithm."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log10(1.0 - v) if axis == "lambda" else np.log10(v)
    if limit is not None and axis in LIMITS:
        x = np.where(v == LIMITS[axis][0], limit, x)
    return x


def from_coord(axis: str, coords: Any) -> np.ndarray:
    """Scaled coordinates -> natural values (the inverse of `to_coord` away from a limit)."""
    c = np.asarray(coords, dtype=np.float64)
    return 1.0 - 10.0**c if axis == "lambda" else 10.0**c


def limit_coord(axis: str, values: Any) -> float | None:
    """Where `axis`'s end value (clip inf, eta 0, lambda 1) is placed among `values`: one decade
    beyond the others on its side; None for an axis without one, or with no other value."""
    if axis not in LIMITS:
        return None
    end, side = LIMITS[axis]
    v = np.asarray(values, dtype=np.float64)
    c = to_coord(axis, v[v != end])
    c = c[np.isfinite(c)]
    if c.size == 0:
        return None
    return float(c.max() + 1.0) if side > 0 else float(c.min() - 1.0)


def payload_plane(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The plane of a stored fit's payload ((lr, plasticity) for a format-1 payload)."""
    plane = payload.get("plane")
    return (plane[0], plane[1]) if isinstance(plane, (list, tuple)) and len(plane) == 2 else PLANE


def payload_kind(payload: Mapping[str, Any]) -> str:
    """The model kind of a stored fit's members ("ephemeral" for a format-1 payload)."""
    return payload.get("model_kind") or "ephemeral"


def payload_limits(payload: Mapping[str, Any]) -> dict[str, float]:
    """Where a stored fit put each axis's end value (format 1: clip's alone, `clip_inf_log10`)."""
    limits = payload.get("limits")
    if isinstance(limits, Mapping):
        return {a: float(v) for a, v in limits.items() if v is not None}
    clip = payload.get("clip_inf_log10")
    return {} if clip is None else {"clip": float(clip)}


# ---------------------------------------------------------------------------------------------------
# The study's model and plane


@dataclass(frozen=True)
class StudyPlane:
    """A study's model, its axes and its plane, as the database records them."""

    kind: str
    """"ephemeral", "rnn", "fastweights" or "fwp"."""
    axes: tuple[str, ...]
    """The model's axes, in canonical order (`axes_of(kind)`)."""
    plane: tuple[str, str]
    """(x, y): the stored spec's `[search] plane`, else the model's default."""


def plane_of_spec(spec: Any, kind: str) -> tuple[str, str]:
    """The plane a stored study spec (`StudySpec.to_dict()`) names for model `kind`, else the default."""
    search = spec.get("search") if isinstance(spec, Mapping) else None
    plane = search.get("plane") if isinstance(search, Mapping) else None
    axes = axes_of(kind)
    if isinstance(plane, list) and len(plane) == 2 and plane[0] != plane[1] and all(a in axes for a in plane):
        return plane[0], plane[1]
    return default_plane(kind)


def study_plane(session, study_id: int) -> StudyPlane:
    """The model (its members' `model_kind`, else the stored spec's `[model] kind`) and plane of a study."""
    import sqlalchemy as sa

    from sweeper.db import Member, Study

    spec = session.scalar(sa.select(Study.spec).where(Study.id == study_id))
    kind = session.scalar(sa.select(Member.model_kind).where(Member.study_id == study_id).limit(1))
    if kind is None:
        model = spec.get("model") if isinstance(spec, Mapping) else None
        kind = model.get("kind", "ephemeral") if isinstance(model, Mapping) else "ephemeral"
    kind = kind if kind in DEFAULT_PLANES else "ephemeral"
    return StudyPlane(kind, axes_of(kind), plane_of_spec(spec, kind))


# ---------------------------------------------------------------------------------------------------
# Members


@dataclass(frozen=True)
class Members:
    """The fitted members of one study, as arrays (one entry per member)."""

    study: str
    study_id: int
    hypers: dict[str, np.ndarray]
    """axis -> (N,) float64, natural units (clip may be inf), for every axis of the study's model."""
    stable: np.ndarray
    """(N,) bool."""
    outcome: np.ndarray
    """(N,) str: stable, exploded or stopped_early."""
    config_index: np.ndarray
    """(N,) int (-1 where unknown)."""
    excluded: dict[str, int]
    """Members left out, by outcome (failed, running)."""
    kind: str = "ephemeral"
    """The study's model kind."""
    plane: tuple[str, str] = PLANE
    """The study's (x, y) axes."""
    remembers: np.ndarray | None = None
    """(N,) float64: the memory judgement (`sw_members.remembers`), 1.0 remembers, 0.0 stable without
    memory, NaN not judged (not stable, or no evaluation); None: not loaded (every member unjudged)."""

    def subset(self, keep: np.ndarray) -> Members:
        return Members(self.study, self.study_id, {a: v[keep] for a, v in self.hypers.items()}, self.stable[keep],
                       self.outcome[keep], self.config_index[keep], dict(self.excluded), self.kind, self.plane,
                       None if self.remembers is None else self.remembers[keep])

    def judged(self) -> np.ndarray:
        """(N,) bool: the stable members with a memory judgement."""
        if self.remembers is None:
            return np.zeros(self.stable.size, dtype=bool)
        return self.stable & np.isfinite(self.remembers)


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

    where = study_plane(s, study_id)
    q = (sa.select(*(getattr(Member, column(a)).label(column(a)) for a in where.axes), Member.outcome,
                   Member.config_index, Member.remembers)
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
    hypers = {a: np.array([getattr(r, column(a)) for r in kept], dtype=np.float64) for a in where.axes}
    outcome = np.array([r.outcome.value for r in kept], dtype=object)
    remembers = np.array([math.nan if r.remembers is None else float(r.remembers) for r in kept], dtype=np.float64)
    return Members(study, study_id, hypers, outcome == Outcome.STABLE.value, outcome,
                   np.array([-1 if r.config_index is None else r.config_index for r in kept], dtype=np.int64),
                   excluded, where.kind, where.plane, remembers)


def _study_id_or_refuse(s, db, study: str) -> int:
    """The id of the study named `study`; BoundaryError, naming the known studies, when there is none."""
    from sweeper.db.queries import StudyNotFound, _study_id

    try:
        return _study_id(s, db, study)
    except StudyNotFound as e:
        raise BoundaryError(e.message) from None


# ---------------------------------------------------------------------------------------------------
# Features


def split_of(label: str) -> Split:
    """The split a label names; BoundaryError for an unknown one."""
    if label not in SPLITS:
        raise BoundaryError("label", f"got {label!r}; expected one of {', '.join(LABELS)}")
    return SPLITS[label]


def labelled(members: Members, label: str = "stable") -> tuple[Members, np.ndarray, np.ndarray]:
    """(the members a split is fitted on, their class as (N',) bool, their rows in `members`): every
    member and `stable` for "stable"; the judged stable members and `remembers` for "remembers"."""
    split_of(label)
    if label == "stable":
        return members, members.stable, np.arange(members.stable.size)
    rows = np.flatnonzero(members.judged())
    fitted = members.subset(rows)
    return fitted, fitted.remembers == 1.0, rows


def _check_classes(members: Members, label: str) -> None:
    """Refuse a split with fewer than MIN_PER_CLASS members in a class, saying what the study has."""
    left_out = ", ".join(f"{n} {k}" for k, n in sorted(members.excluded.items())) or "none"
    n_stable = int(members.stable.sum())
    if label == "stable":
        n_unstable = int((~members.stable).sum())
        if n_stable < MIN_PER_CLASS or n_unstable < MIN_PER_CLASS:
            raise BoundaryError(
                f"study {members.study!r} has {n_stable} stable and {n_unstable} unstable (exploded or stopped early) "
                f"members; a boundary fit needs at least {MIN_PER_CLASS} of each (left out: {left_out}). "
                f"Extend the space across the stability boundary, or wait for more trials to finish")
        return
    judged = members.judged()
    n_judged = int(judged.sum())
    k = int((members.remembers[judged] == 1.0).sum()) if n_judged else 0
    need = f"a memory-onset fit needs at least {MIN_PER_CLASS} stable members that remember and {MIN_PER_CLASS} that do not"
    if n_judged == 0:
        raise BoundaryError(
            f"study {members.study!r} has no memory judgement: none of its {n_stable} stable members was judged "
            f"(the study evaluates nothing, [execution] eval_batches = 0); {need}")
    if k == 0 or k == n_judged:
        which = "none" if k == 0 else "all"
        raise BoundaryError(f"study {members.study!r}: {which} of its {n_judged} judged stable members remember; {need}")
    if k < MIN_PER_CLASS or n_judged - k < MIN_PER_CLASS:
        raise BoundaryError(f"study {members.study!r} has {k} stable members that remember and {n_judged - k} stable "
                            f"without memory; {need}")


def _features(members: Members) -> tuple[list[str], dict[str, float]]:
    """The axes that vary among `members` (both of the plane required), and where each end value is
    put (`limits`)."""
    x, y = members.plane
    features = []
    for axis in axes_of(members.kind):
        values = members.hypers[axis]
        distinct = np.unique(values)
        if axis in members.plane and distinct.size < 2:
            raise BoundaryError(
                f"study {members.study!r}: {axis} takes a single value ({distinct[0]:g}) among its "
                f"{values.size} fitted members; the boundary in the study's ({x}, {y}) plane needs at least two "
                f"values of each")
        if distinct.size < 2:
            continue
        end = LIMITS.get(axis, (None,))[0]
        coords = to_coord(axis, values)
        bad = ~np.isfinite(coords) & (values != end) if end is not None else ~np.isfinite(coords)
        if np.any(bad):
            shown = ", ".join(f"{v:g}" for v in np.unique(values[bad])[:3])
            raise BoundaryError(f"study {members.study!r}: {axis} has values ({shown}) without a {scale_of(axis)}; "
                                f"the classifier works on {axis_label(axis)}")
        features.append(axis)
    limits = {a: limit_coord(a, members.hypers[a]) for a in features if a in LIMITS}
    return features, {a: v for a, v in limits.items() if v is not None}


def _design(members: Members, features: Sequence[str], limits: Mapping[str, float]) -> np.ndarray:
    return np.column_stack([to_coord(a, members.hypers[a], limits.get(a)) for a in features])  # (N, F)


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
    """(intercept, coef) of the fitted pipeline's decision function, in the scaled units of X."""
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


def _line(b: float, w: np.ndarray, features: Sequence[str], at: Mapping[str, float],
          plane: tuple[str, str]) -> tuple[float, float] | None:
    """(slope, intercept) of P = 0.5 in the scaled plane (Y = slope * X + intercept), other features at `at`."""
    ix, iy = features.index(plane[0]), features.index(plane[1])
    if abs(w[iy]) < 1e-12 * max(1.0, float(np.abs(w).max())):
        return None  # the boundary is vertical: y does not matter to the fit
    rest = b + sum(w[i] * at[a] for i, a in enumerate(features) if a not in plane)
    return float(-w[ix] / w[iy]), float(-rest / w[iy])


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


def _cells(members: Members, positive: np.ndarray | None = None, label: str = "stable") -> list[dict]:
    """Per (x, y) pair of the plane, keyed by the axes' names (clip inf is null): the explosion rate
    ("stable"), or the fraction that remember among the judged stable members (`positive`; "remembers"),
    each with its Wilson 95% interval."""
    x, y = members.plane
    xs, ys = members.hypers[x], members.hypers[y]
    cells = []
    for a, b in sorted({(float(a), float(b)) for a, b in zip(xs, ys)}):
        at = (xs == a) & (ys == b)
        n = int(at.sum())
        if label == "stable":
            k = int((~members.stable[at]).sum())
            cells.append({x: a, y: b, "members": n, "unstable": k, "explosion_rate": k / n, "ci95": list(wilson(k, n))})
        else:
            k = int(positive[at].sum())
            cells.append({x: a, y: b, "members": n, "remember": k, "remembers_rate": k / n, "ci95": list(wilson(k, n))})
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
    def plane(self) -> tuple[str, str]:
        return payload_plane(self.payload)

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
                seed: int = 0, cv: bool = True, label: str = "stable",
                at: Mapping[str, float | None] | None = None) -> dict:
    """Fit the boundary of `label`'s split (`SPLITS`) on `members` in their plane and return the
    payload (nothing is stored). `cv=False` and `bootstrap=0` give the point estimate alone (what
    `compare` refits many times).

    `members` are the study's finished members whatever the label (`load_members`): "remembers" fits
    on the judged stable ones among them, and its bootstrap resamples all of them (see the module's
    docstring). `at`: natural values of the fitted axes outside the plane at which the line (and each
    bootstrap line) is drawn, e.g. another fit's `medians`; an axis it does not give is held at its
    median among the fitted members."""
    if model not in MODELS:
        raise BoundaryError("--model", f"got {model!r}; expected one of {', '.join(MODELS)}")
    if not isinstance(bootstrap, int) or bootstrap < 0 or bootstrap > 100_000:
        raise BoundaryError("--bootstrap", f"got {bootstrap!r}; expected an integer in [0, 100000]")
    if not isinstance(folds, int) or folds < 2:
        raise BoundaryError("--folds", f"got {folds!r}; expected an integer >= 2")
    split = split_of(label)
    _check_classes(members, label)
    plane = members.plane
    fitted, positive, rows = labelled(members, label)
    features, limits = _features(fitted)
    X = _design(fitted, features, limits)
    y = positive.astype(np.int64)
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
    held = dict(medians)
    for a, v in (at or {}).items():
        if a in held and a not in plane and v is not None:
            held[a] = float(to_coord(a, v, limits.get(a)))
    line = _line(b, w, features, held, plane)

    # Resamples of all the finished members (as the stability fit draws them), each cut down to the
    # members the split is fitted on: the same seed gives both splits the same resamples.
    row_of = np.full(members.stable.size, -1, dtype=np.int64)
    row_of[rows] = np.arange(rows.size)
    rng = np.random.default_rng(seed)
    slopes, intercepts, failed = [], [], 0
    replicates: list[tuple[float, float] | None] = []
    for _ in range(bootstrap):
        idx = row_of[rng.integers(0, members.stable.size, members.stable.size)]
        idx = idx[idx >= 0]
        fit = None
        if idx.size and y[idx].min() != y[idx].max():
            bb, ww = _fit_plane(X[idx], y[idx], model, seed, platt)
            fit = _line(bb, ww, features, held, plane)
        replicates.append(fit)
        if fit is None:
            failed += 1
            continue
        slopes.append(fit[0])
        intercepts.append(fit[1])
    used = len(slopes)
    enough = bootstrap > 0 and used >= MIN_BOOTSTRAP_USED * bootstrap

    def ci(values):
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if enough else None

    def natural(a: str, coord: float) -> float:
        return float(from_coord(a, coord))

    def shown(a: str, coord: float) -> float:  # an axis's end value as itself (clip inf is stored as null)
        return LIMITS[a][0] if a in limits and coord == limits[a] else natural(a, coord)

    slope_ci, intercept_ci = ci(slopes), ci(intercepts)
    consistent = None if slope_ci is None else bool(slope_ci[0] <= -1.0 <= slope_ci[1])
    side = None
    if line is not None:
        side = "below" if w[features.index(plane[1])] < 0 else "above"
    counts = {o.value: int((members.outcome == o.value).sum()) for o in FINISHED}
    if label == "remembers":
        judged = members.judged()
        counts = {**counts, "remember": int(y.sum()), "no_memory": int(y.size - y.sum()),
                  "unjudged": int((members.stable & ~judged).sum())}
    payload = {
        "format": PAYLOAD_FORMAT,
        "study": members.study,
        "model": model,
        "label": label,
        "split": {"positive": split.positive, "negative": split.negative, "probability": split.probability,
                  "line": split.line},
        "model_kind": members.kind,
        "plane": list(plane),
        "features": list(features),
        "transforms": {a: scale_of(a) for a in features},
        "limits": limits,
        "clip_inf_log10": limits.get("clip"),
        "hyperplane": {"intercept": b, "coef": {a: float(w[i]) for i, a in enumerate(features)},
                       "meaning": f"{split.probability} = 1 / (1 + exp(-(intercept + sum coef[a] * transforms[a] "
                                  "of a))); an axis's end value (clip inf, eta 0, lambda 1) at limits[a]"},
        "medians": {a: natural(a, v) for a, v in medians.items()},
        "boundary": {
            "x": plane[0],
            "y": plane[1],
            "slope": None if line is None else line[0],
            "intercept": None if line is None else line[1],
            "slope_ci95": slope_ci,
            "intercept_ci95": intercept_ci,
            "equation": f"{axis_label(plane[1])} = slope * {axis_label(plane[0])} + intercept "
                        f"({split.probability} = 0.5)",
            "positive_side": side,
            **({"stable_side": side} if label == "stable" else {}),
            "others_at_median": {a: shown(a, held[a]) for a in features if a not in plane},
            "bootstrap": {"requested": bootstrap, "used": used, "skipped": failed},
            "replicates": {"slope": [None if r is None else r[0] for r in replicates],
                           "intercept": [None if r is None else r[1] for r in replicates]},
        },
        "product_hypothesis": {
            "slope": -1.0,
            "product": product_name(plane),
            "consistent": consistent,
            "statement": _statement(line, slope_ci, consistent, plane, split.sets),
        },
        "cv": cv_report,
        "members": {"fitted": int(y.size), **counts, "excluded": dict(members.excluded)},
        "cells": _cells(fitted, positive, label),
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


def _statement(line, slope_ci, consistent, plane: tuple[str, str], sets: str = "stability") -> str:
    if line is None:
        return f"no slope: the fit gives {plane[1]} no weight (a vertical boundary)"
    if slope_ci is None:
        return f"slope {line[0]:.3f}; no interval (too few bootstrap refits succeeded)"
    verdict = "consistent with" if consistent else "not consistent with"
    return (f"slope {line[0]:.3f}, 95% interval [{slope_ci[0]:.3f}, {slope_ci[1]:.3f}]: {verdict} -1 "
            f"({sets} set by {product_name(plane)})")


def fit_boundary(db, study_name: str, *, model: str = "logistic", bootstrap: int = 200, folds: int = 5,
                 seed: int = 0, store: bool = True) -> BoundaryReport:
    """Fit the study's boundary in its plane (see the module's docstring), store it, and return the report.

    Raises BoundaryError for an unknown study, too few stable or unstable members, a single value of
    an axis of the plane, or bad arguments: never an error from inside scikit-learn."""
    members = load_members(db, study_name)
    payload = fit_members(members, model=model, bootstrap=bootstrap, folds=folds, seed=seed)
    return store_fit(db, members, payload) if store else BoundaryReport(study_name, model, payload)


def store_fit(db, members: Members, payload: dict) -> BoundaryReport:
    """Store a stability fit's payload (`fit_members(label="stable")`, possibly with more keys, as
    `sweeper.analysis.window` adds) in `sw_boundary_fits`; the report with its id."""
    from sweeper.db import BoundaryFit

    model = payload["model"]
    with db.session() as s:
        row = BoundaryFit(study_id=members.study_id, kind=model, payload=payload, code_version=code_version())
        s.add(row)
        s.flush()
        fit_id, created = row.id, row.created_at
    return BoundaryReport(members.study, model, payload, fit_id, created)


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
    - `payload` is a fit's payload (`latest_fit(db, study).payload`, or `BoundaryReport.payload`), of
      any model and plane; its own `features`, `transforms` and `limits` say how each axis enters
      (a format-1 payload: log10, clip's limit only);
    - `points` maps hyperparameter names (`AXES`: "lr", "plasticity", "ratio", "gamma", "clip",
      "eta", "beta_scale", "lambda") to scalars or arrays that broadcast together; clip may be inf (no
      clipping), eta 0 and lambda 1, each placed where the fit put it;
    - a feature of the fit that `points` does not give is held at the fitted study's median;
      names the fit does not use (an axis constant in the fitted study, or of another model) are ignored;
    - returns a float64 array of the broadcast shape (0-d for scalars); NaN where a value has no
      logarithm (e.g. lr <= 0);
    - a fit of the "remembers" split (a stored fit's `memory` payload) gives P(remembers | stable) the
      same way.
    """
    features = payload["features"]
    plane = payload["hyperplane"]
    limits = payload_limits(payload)
    unknown = set(points) - set(AXES)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(sorted(unknown))}; known: {', '.join(AXES)}")
    for a, scale in (payload.get("transforms") or {}).items():
        if scale != scale_of(a):
            raise ValueError(f"the fit puts {a} on the scale {scale!r}; this code knows {scale_of(a)!r}")
    arrays = [np.asarray(points[a], dtype=np.float64) if a in points
              else np.asarray(payload["medians"][a], dtype=np.float64) for a in features]
    arrays = np.broadcast_arrays(*arrays) if arrays else []
    z = np.full(arrays[0].shape if arrays else (), plane["intercept"], dtype=np.float64)
    for a, v in zip(features, arrays):
        z = z + plane["coef"][a] * to_coord(a, v, limits.get(a))
    from scipy.special import expit

    return expit(z)
