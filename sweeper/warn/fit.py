"""`sweeper warn fit`: a calibrated classifier of "will explode" from a member's first batches.

Features (`features.py`, `--features`): `portable` by default (DEFAULT_FEATURES: scale-free, so a
predictor can score another task, width, updater, `metrics_every` or model family than the one it is
fitted on), `trajectory` (levels in the fitted model's own units as well), `growth`, `transition`
(the delta rule's transition_max; fwp delta rules only) and `hypers` (`--hypers`). Studies of every
model family can be fitted on (their signals read by role, `signals.py`); a fit is refused when a
study lacks a requested feature's signal (transition_max; a task sweeper knows, for the
loss-vs-chance features), or when `--hypers` would mix models whose plasticity role is another
quantity (plasticity, eta, beta_scale). The payload records the models fitted on (`model_kinds`,
`models`) and the feature set, which `sweeper warn eval` reports beside the model it evaluates on.

`fit_traces` does the work on traces and stores nothing (`sweeper warn transfer` uses it as it is);
`fit_predictor` reads the studies, calls it and stores the result in `sw_predictors`.

Examples: every finished (stable or exploded) member of the given studies contributes EXAMPLES_PER_MEMBER
truncation points, spread evenly over its full-metric batches t with min_step <= t <= steps (and
t <= explode_step: later the engine has stopped it); each is `features.py` of the history up to t,
labelled with the member's outcome. Every member weighs the same (points repeat when a member has
fewer batches), so members that explode early are not outweighed by long stable ones.

Model: scikit-learn's CalibratedClassifierCV (sigmoid) over a standardized logistic regression
("logreg") or histogram gradient boosting ("gb"); its folds split by member, never inside one.

Threshold: from out-of-fold replays. The members are split in FOLDS by member; each fold's model is
fitted on the others, and the held-out members are replayed through OnlineWarner (every batch, as in
the worker). The stored threshold is the lowest at which at most `max_false_stop` of those stable
members would have been alarmed. The payload records the members fitted on, so `sweeper warn eval`
leaves them out.

Cadences (`--cadences`, default 1): a predictor fitted with cadences 1,2,4 also learns from each
member as a study recording full metrics 2 and 4 times less often would have stored it
(`traces.thinned`), so that trend features read through fewer rows (a study with a larger
`metrics_every`) are in its examples; each cadence gives every member the same EXAMPLES_PER_MEMBER
points. The out-of-fold replays run at every cadence and the threshold is the highest of the
cadences' own thresholds, so each keeps at most `max_false_stop` false stops; the out-of-fold
summary is the rows' as recorded at that threshold, with each cadence's false stops beside it.

Carry-over (`carry.py`): the payload's `carry` block holds the fitted members' feature range and each
feature's AUROC alone at `min_step`, so that `sweeper warn eval` can say, on any study, how many of its
members lie outside what the predictor was fitted on and whether its precursors point the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.errors import SweeperError
from sweeper.outcomes import Outcome
from sweeper.provenance import code_version

from .carry import fitted_carry
from .features import (
    CHANCE_FEATURES,
    DEFAULT_FEATURES,
    HYPER_FEATURES,
    TRANSITION_FEATURES,
    FeatureSetError,
    feature_matrix,
    feature_names,
    feature_set_name,
)
from .online import OnlineWarner, Settings
from .predictors import BUILTIN, LearnedPredictor
from .signals import HYPER_SIGNALS, TRANSITION_RULES
from .traces import Trace, load_traces, replay_batches, thinned

MODELS = ("logreg", "gb")
EXAMPLES_PER_MEMBER = 20
MIN_PER_CLASS = 5
FOLDS = 5


class FitError(SweeperError, ValueError):
    """The data cannot support a fit (too few exploded or stable members, ...)."""

    field_default = "study"


def _model(kind: str, groups: np.ndarray, X: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        base = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    else:
        base = HistGradientBoostingClassifier(max_depth=3, max_iter=150, learning_rate=0.05, random_state=seed)
    n_splits = min(3, len(np.unique(groups)))
    cv = list(GroupKFold(n_splits=n_splits).split(X, y, groups))
    return CalibratedClassifierCV(base, method="sigmoid", cv=cv).fit(X, y)


def check_cadences(cadences) -> tuple[int, ...]:
    """The cadences as distinct integers in the order given, the first 1 (the rows as recorded, which the
    out-of-fold summary and scores are of); FitError naming --cadences."""
    try:
        out = tuple(dict.fromkeys(int(c) for c in cadences))
    except (TypeError, ValueError):
        out = ()
    if not out or out[0] != 1 or any(c < 1 or c > 100 for c in out):
        shown = ",".join(map(str, cadences)) if isinstance(cadences, (list, tuple)) else str(cadences)
        raise FitError("--cadences", f"got {shown}; expected integers from 1 to 100, the first 1 (the rows "
                                     "as recorded; k: every k-th of them), e.g. 1,2,4")
    return out


def examples(traces: list[Trace], features: tuple[str, ...], min_step: int, steps: int | None,
             cadences: tuple[int, ...] = (1,)):
    """(X, y, groups, used): the truncation-point examples, every cadence's (`thinned`) grouped by
    member; `used[k]` whether trace k gave any at the first cadence."""
    if cadences != (1,):
        parts = [examples([thinned(t, c) for t in traces], features, min_step, steps) for c in cadences]
        return (np.vstack([q[0] for q in parts]), np.concatenate([q[1] for q in parts]),
                np.concatenate([q[2] for q in parts]), parts[0][3])
    X, y, groups, used = [], [], [], []
    for k, t in enumerate(traces):
        v = t.history.view()
        last = t.explode_step if t.exploded else v.last_step
        if steps is not None:
            last = min(last, steps)
        ends = v.step[v.full & (v.step >= min_step) & (v.step <= last)]
        used.append(len(ends) > 0)
        if not len(ends):
            continue
        pick = ends[np.round(np.linspace(0, len(ends) - 1, EXAMPLES_PER_MEMBER)).astype(int)]
        X.append(feature_matrix([v.upto(int(s)) for s in pick], features))
        y.extend([t.exploded] * len(pick))
        groups.extend([k] * len(pick))
    if not X:
        return np.zeros((0, len(features))), np.zeros(0, bool), np.zeros(0, int), used
    return np.vstack(X), np.asarray(y, dtype=bool), np.asarray(groups), used


def _check_classes(traces: list[Trace], what: str) -> None:
    n_exp = sum(t.exploded for t in traces)
    n_stable = len(traces) - n_exp
    if n_exp < MIN_PER_CLASS or n_stable < MIN_PER_CLASS:
        raise FitError(f"{what}: {n_exp} exploded and {n_stable} stable members usable (run to the end of "
                       f"their budget, with a full-metric batch at or after min_step); a fit needs at least "
                       f"{MIN_PER_CLASS} of each: add a study that spans the stability boundary")


@dataclass(frozen=True)
class Fitted:
    """A predictor fitted on traces, before anything is stored (`fit_traces`)."""

    predictor: LearnedPredictor
    """Fitted on every usable member; its threshold from the out-of-fold replays; payload without ids."""
    traces: list[Trace]
    """The usable members it was fitted on."""
    oof_scores: list[list[tuple[int, float]]]
    """Per usable member, its (batch, score) out of fold: scored by the fold model not fitted on it, on
    every full-metric batch from min_step up to its explosion (as OnlineWarner scores it), at the first
    cadence."""
    oof: dict[str, Any]
    """threshold, auroc, recall, false_stop_rate, members: the out-of-fold summary."""
    skipped: int
    """Members left out: exploded before min_step (no batch to learn from)."""


def _oof(traces, features, kind, min_step, steps, max_false_stop, seed, cadences=(1,)):
    """Out-of-fold scores of every member -> (the threshold and what it would have done, the first
    cadence's scores)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    labels = np.array([t.exploded for t in traces])
    scores: dict[int, list[list[tuple[int, float]]]] = {c: [[] for _ in traces] for c in cadences}
    folds = StratifiedKFold(n_splits=min(FOLDS, int(labels.sum()), int((~labels).sum())), shuffle=True,
                            random_state=seed)
    for train_idx, test_idx in folds.split(np.zeros(len(traces)), labels):
        train = [traces[i] for i in train_idx]
        X, y, g, _ = examples(train, features, min_step, steps, cadences)
        if y.all() or not y.any():
            raise FitError("a cross-validation fold holds one class only; add members of both outcomes")
        model = LearnedPredictor(_model(kind, g, X, y, seed), features, 0.5, payload={"steps": steps})
        for c in cadences:
            test = [thinned(traces[i], c) for i in test_idx]
            warner = OnlineWarner(Settings(min_step, math.inf), model, hypers=[t.hyper for t in test],
                                  chance_loss=[t.chance_loss for t in test])  # never alarms: every score kept
            for m in replay_batches(test):
                warner.observe(m)
            for j, i in enumerate(test_idx):
                scores[c][i] = warner.scores.get(j, [])
    max_score = {c: np.array([max((v for _, v in sc), default=-np.inf) for sc in scores[c]]) for c in cadences}
    allowed = int(np.floor(max_false_stop * int((~labels).sum())))

    def threshold_of(m: np.ndarray) -> float:
        stable = np.sort(m[~labels])[::-1]
        t = 0.0 if allowed >= len(stable) else float(np.nextafter(max(stable[allowed], 0.0), np.inf))
        return min(t, 1.0)

    threshold = max(threshold_of(m) for m in max_score.values())
    first = max_score[cadences[0]]
    alarmed = first >= threshold
    finite = np.where(np.isfinite(first), first, -1.0)
    summary = {
        "threshold": threshold,
        "auroc": float(roc_auc_score(labels, finite)),
        "recall": float(alarmed[labels].mean()),
        "false_stop_rate": float(alarmed[~labels].mean()),
        "members": int(len(traces)),
    }
    if cadences != (1,):
        summary["cadences"] = list(cadences)
        summary["false_stop_rate_by_cadence"] = {str(c): float((m[~labels] >= threshold).mean())
                                                 for c, m in max_score.items()}
    return summary, scores[cadences[0]]


def _check_models(traces: list[Trace], features: tuple[str, ...]) -> None:
    """Every study must record what the features read; hyperparameter features must mean one quantity."""
    by_study = {t.study: t.model for t in traces}
    wanted = [f for f in features if f in TRANSITION_FEATURES]
    for study, m in by_study.items():
        if wanted and not m.has_transition:
            raise FitError("--features", f"{', '.join(wanted)} read transition_max, which only model fwp with rule "
                           f"{' or '.join(TRANSITION_RULES)} records; study {study!r} is {m.describe()}")
    chance = [f for f in features if f in CHANCE_FEATURES]
    for study, m in by_study.items():
        if chance and m.chance_loss is None:
            raise FitError("--features", f"{', '.join(chance)} read the loss against the task's chance loss ln V, "
                           f"and study {study!r} names no task sweeper knows: fit with --features growth")
    if any(f in HYPER_FEATURES for f in features):
        meaning = {f"{m.kind}: {HYPER_SIGNALS[m.kind]['plasticity']}" for m in by_study.values()}
        if len({HYPER_SIGNALS[m.kind]["plasticity"] for m in by_study.values()}) > 1:
            raise FitError("--hypers", f"the studies' models write their fast state at rates of different meaning "
                           f"({', '.join(sorted(meaning))}): log_plasticity would mix them; fit without --hypers")


def check_settings(model: str, steps: int | None, min_step: int, max_false_stop: float) -> None:
    """Refuse fit settings that cannot work (FitError naming the flag)."""
    if model not in MODELS:
        raise FitError("--model", f"got {model!r}; expected one of {', '.join(MODELS)}")
    if min_step < 0:
        raise FitError("--min-step", f"got {min_step}; expected a batch >= 0")
    if steps is not None and steps < min_step:
        raise FitError("--steps", f"{steps} is before --min-step {min_step}: no batch to learn from")
    if not 0 <= max_false_stop < 1:
        raise FitError("--max-false-stop", f"got {max_false_stop}; expected a fraction in [0, 1)")


def parse_features(features: str, hypers: bool = False) -> tuple[str, ...]:
    """The feature names of `--features` (and `--hypers`); FitError naming --features when unknown."""
    try:
        return feature_names(features + (",hypers" if hypers else ""))
    except FeatureSetError as e:
        raise FitError("--features", str(e)) from None


def fit_traces(traces: list[Trace], features: tuple[str, ...], *, what: str, steps: int | None = None,
               model: str = "logreg", min_step: int = 20, max_false_stop: float = 0.05, seed: int = 0,
               cadences=(1,)) -> Fitted:
    """Fit on these finished members (nothing is read from or written to a database).

    `what` names the members in refusals (e.g. "studies a, b"). Refused (FitError): a study lacking a
    feature's signal, hyperparameter features mixing quantities, a single value of lr or plasticity
    under --hypers, fewer than MIN_PER_CLASS usable members of either outcome."""
    check_settings(model, steps, min_step, max_false_stop)
    cadences = check_cadences(cadences)
    _check_models(traces, features)
    if "log_plasticity" in features:
        for axis in ("lr", "plasticity"):
            if len({t.hyper[axis] for t in traces}) < 2:
                raise FitError("--hypers", f"every member has the same {axis}; a hyperparameter feature needs "
                               "at least two values")
    _, _, _, used = examples(traces, features, min_step, steps)
    usable = [t for t, u in zip(traces, used) if u]
    _check_classes(usable, what)
    X, y, g, _ = examples(usable, features, min_step, steps, cadences)
    oof, scores = _oof(usable, features, model, min_step, steps, max_false_stop, seed, cadences)
    payload = {
        "format": 1,
        "features": list(features),
        "feature_set": feature_set_name(features),
        "model_kinds": sorted({t.model.kind for t in traces}),
        "models": sorted({t.model.describe() for t in traces}),
        "model": model,
        "steps": steps,
        "min_step": min_step,
        "threshold": oof["threshold"],
        "max_false_stop": max_false_stop,
        "cadences": list(cadences),
        "seed": seed,
        "train_studies": list(dict.fromkeys(t.study for t in traces)),
        "carry": fitted_carry(usable, features, min_step),
        "report": {
            "members": len(usable),
            Outcome.EXPLODED.value: int(sum(t.exploded for t in usable)),
            Outcome.STABLE.value: int(sum(not t.exploded for t in usable)),
            "skipped_exploded_before_min_step": len(traces) - len(usable),
            "examples": int(len(y)),
            "out_of_fold": oof,
        },
    }
    predictor = LearnedPredictor(_model(model, g, X, y, seed), features, oof["threshold"], name="learned",
                                 payload=payload)
    return Fitted(predictor, usable, scores, oof, len(traces) - len(usable))


def fit_predictor(db, studies: list[str], *, name: str, steps: int | None = None, model: str = "logreg",
                  min_step: int = 20, hypers: bool = False, features: str = DEFAULT_FEATURES,
                  max_false_stop: float = 0.05, seed: int = 0, replace: bool = False,
                  cadences=(1,)) -> dict[str, Any]:
    """Fit, choose the threshold, store in sw_predictors; return the stored row's id and payload.

    `features`: comma-separated feature sets (`features.FEATURE_SETS`); `hypers` adds "hypers"."""

    import sqlalchemy as sa

    from sweeper.db import Predictor as Row
    from sweeper.db import Study

    if name in BUILTIN or not name or name.isdigit():
        raise FitError("--name", f"{name!r} is taken by a built-in predictor or reads as an id; choose another")
    check_settings(model, steps, min_step, max_false_stop)
    cadences = check_cadences(cadences)
    with db.read_session() as s:
        exists = s.scalars(sa.select(Row.id).where(Row.name == name)).first()
    if exists is not None and not replace:
        raise FitError("--name", f"a predictor named {name!r} is stored already (id {exists}); choose another "
                       "name or pass --replace")
    names = parse_features(features, hypers)
    traces = [t for study in studies for t in load_traces(db, study)]
    fitted = fit_traces(traces, names, what=f"studies {', '.join(studies)}", steps=steps, model=model,
                        min_step=min_step, max_false_stop=max_false_stop, seed=seed, cadences=cadences)
    payload = {**fitted.predictor.payload, "train_studies": list(studies),
               "train_member_ids": [t.member_id for t in fitted.traces]}
    with db.read_session() as s:
        study_ids = {n: i for n, i in s.execute(sa.select(Study.name, Study.id).where(Study.name.in_(studies)))}
    with db.session() as s:
        if exists is not None:
            s.execute(sa.delete(Row).where(Row.name == name))
        row = Row(study_id=study_ids.get(studies[0]), kind="learned", name=name, payload=payload,
                  blob=fitted.predictor.dumps(), code_version=code_version())
        s.add(row)
        s.flush()
        pid = row.id
    return {"id": pid, "name": name, **payload}
