"""Early-warning predictors: a member's history up to a batch -> a score (higher = more likely to explode).

Every predictor has one job, `score_many(histories) -> (n,) scores`, and a default `threshold`: a
member whose score reaches it is alarmed. Scores are finite floats. `score_many` takes many members at
once so a learned model makes one call per batch, not one per member. Histories are by role
(`signals.py`), so every predictor reads every model family; `refusal(model)` says why a predictor
cannot score a model (None when it can), and OnlineWarner and `sweeper warn eval` refuse with it.

- `RatioRule` ("ratio_rule", the default): the paper's observation (sec. 4.3.1, Fig. 6) that the
  ephemeral/slow gradient-norm ratio grows from the start in runs that later explode. Score: how
  many decades the ratio has grown since the member's first full-metric batch (`direction = -1`
  reads the Fig. 6 caption instead: a shrinking ratio warns). On a fast-weight family it reads
  grad_fast / grad_rest (the role table of `signals.py`).
- `TransitionBound` ("transition_bound"): the delta rule's own stability bound (SCIENCE.md section 8,
  docs/families.md): the largest eta_t ||phi(k_t)||^2 seen so far, against 2. fwp with rule delta or
  gated_delta only.
- `LearnedPredictor`: a calibrated scikit-learn classifier over `features.py`, fitted on finished
  members by `sweeper.warn.fit` and stored in `sw_predictors`; its score is P(explodes).
- `LossZScore`, a baseline for `sweeper warn eval`: a spike of the loss above its recent mean. The
  other baselines (the explosion criterion itself, a median-stopping rule) are computed in
  `evaluate.py`: one is the ground truth's own flag, the other compares members with each other.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from sweeper.config import ConfigError
from sweeper.errors import SweeperError
from sweeper.jsonio import to_strict

from .features import (
    CHANCE_FEATURES,
    HYPER_FEATURES,
    LOG_CAP,
    TRANSITION_FEATURES,
    feature_matrix,
    log_ratio,
    median,
    safe_log10,
)
from .history import HistoryView
from .signals import HYPER_SIGNALS, TRANSITION, TRANSITION_RULES, ModelSignals

SCORE_CAP = 100.0
"""The score of a member whose loss, logits or gradient norms went non-finite (for the rules)."""
BUILTIN = ("ratio_rule", "transition_bound")
"""Predictor names that are not looked up in the database."""


class PredictorError(SweeperError, ValueError):
    """A predictor cannot be made or used: unknown name, bad parameters, a database without it."""

    field_default = "--predictor"


class Predictor:
    """Base class. Subclasses set `kind`, `name`, `threshold` and implement `score_many`."""

    kind: str = "predictor"
    name: str = "predictor"
    threshold: float = 0.5
    predictor_id: int | None = None
    """The row in sw_predictors, for stored predictors."""

    def score_many(self, histories: list[HistoryView]) -> np.ndarray:
        raise NotImplementedError

    def score(self, history: HistoryView) -> float:
        return float(self.score_many([history])[0])

    def refusal(self, model: ModelSignals) -> str | None:
        """Why this predictor cannot score members of `model` (None: it can)."""
        return None

    def signals(self, history: HistoryView) -> dict[str, float | None]:
        """What the predictor looked at, for the alarm's record (JSON-able; non-finite as None), by role
        (OnlineWarner renames them to the model's own metric names)."""
        f = history.full_rows()
        out = {"step": float(history.last_step)}
        for k in ("loss", "max_logit", "grad_ratio", "grad_eph", "grad_slow", "w_eph", "w_slow"):
            out[k] = float(f[k][-1] if len(f) else history[k][-1])
        if len(f) and not np.isnan(f[TRANSITION]).all():
            out[TRANSITION] = float(f[TRANSITION][-1])
        return to_strict(out, nonfinite=None)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "threshold": self.threshold, "predictor_id": self.predictor_id}


def _params(params: Mapping[str, Any], allowed: Mapping[str, tuple[type, Any]], kind: str) -> dict[str, Any]:
    """Check `early_warning.params` against {name: (type, default)}; unknown keys are refused by name."""
    out = {}
    for key in params:
        if key not in allowed:
            raise ConfigError(f"early_warning.params.{key}",
                              f"unknown parameter of {kind}; allowed: {', '.join(allowed) or 'none'}")
    for key, (typ, default) in allowed.items():
        value = params.get(key, default)
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or isinstance(value, bool) or (typ is float and not math.isfinite(value)):
            raise ConfigError(f"early_warning.params.{key}", f"got {value!r}; expected a finite {typ.__name__}")
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------
# The paper's rule


class RatioRule(Predictor):
    """Decades of growth of the gradient-norm ratio since the first full-metric batch.

    params: `direction` (+1: growth warns, the paper's text; -1: shrinking warns, its Fig. 6 caption).
    The threshold default (0.3 decades, a doubling) was chosen on warn_keyrecall_fit_cpu and is
    evaluated on the held-out warn_keyrecall_cpu (README: early warning).
    """

    kind = "ratio_rule"
    name = "ratio_rule"
    DEFAULT_THRESHOLD = 0.3
    PARAMS = {"direction": (int, 1)}

    def __init__(self, threshold: float | None = None, params: Mapping[str, Any] | None = None):
        p = _params(params or {}, self.PARAMS, self.kind)
        if p["direction"] not in (1, -1):
            raise ConfigError("early_warning.params.direction", f"got {p['direction']!r}; expected 1 or -1")
        self.direction = p["direction"]
        self.threshold = self.DEFAULT_THRESHOLD if threshold is None else float(threshold)

    def score_many(self, histories: list[HistoryView]) -> np.ndarray:
        out = np.empty(len(histories))
        for i, h in enumerate(histories):
            f = h.full_rows()
            if not _finite(h, f):
                out[i] = SCORE_CAP
                continue
            r = log_ratio(f)
            out[i] = self.direction * (median(r[-3:]) - float(r[0]))
        return out

    def signals(self, history: HistoryView) -> dict[str, float | None]:
        s = super().signals(history)
        f = history.full_rows()
        s["grad_ratio_first"] = to_strict(float(f["grad_ratio"][0]) if len(f) else math.nan, nonfinite=None)
        return s

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "params": {"direction": self.direction}}


def _finite(h: HistoryView, f: HistoryView) -> bool:
    return bool(np.isfinite(h["loss"]).all() and np.isfinite(h["max_logit"]).all()
                and np.isfinite(f["grad_eph"]).all() and np.isfinite(f["grad_slow"]).all())


# ---------------------------------------------------------------------------------------------------
# The delta rule's bound


TRANSITION_APPLIES = f"model fwp with rule {' or '.join(TRANSITION_RULES)}"


class TransitionBound(Predictor):
    """The largest eta_t ||phi(k_t)||^2 (`transition_max`) over the member's full-metric batches so far.

    The delta rule's transition multiplies the fast state along phi(k_t) by
    lambda_t (1 - eta_t ||phi(k_t)||^2), and leaves it (times lambda_t) elsewhere: non-expansive while
    the product x_t = eta_t ||phi(k_t)||^2 stays in [0, 2] (docs/families.md; with a decay lambda_t < 1
    the limit is 1 + 1/lambda_t, so 2 is the bound that holds for every lambda). Threshold 2 by default.

    Running maximum, not the latest value: the warner alarms a member once, the first time its score
    reaches the threshold, so the two agree on every alarm raised from `min_step` on; they differ only
    on a crossing before `min_step` that has receded by then, which the maximum keeps (the slow net has
    shown it can program an expanding step, and nothing in the rule undoes that), and in the ranking of
    members (AUROC), where the maximum is the bound's own question: did any step leave the
    contractive range. Like every predictor it reads the full-metric batches (the rows the database
    keeps), so a crossing on a batch between two of them is seen only if it lasts until the next.
    A non-finite loss, logit or transition_max scores SCORE_CAP.
    """

    kind = name = "transition_bound"
    DEFAULT_THRESHOLD = 2.0
    PARAMS: dict[str, tuple[type, Any]] = {}

    def __init__(self, threshold: float | None = None, params: Mapping[str, Any] | None = None):
        _params(params or {}, self.PARAMS, self.kind)
        self.threshold = self.DEFAULT_THRESHOLD if threshold is None else float(threshold)

    def refusal(self, model: ModelSignals) -> str | None:
        if model.has_transition:
            return None
        return (f"predictor {self.name!r} watches the delta rule's transition (transition_max), which only "
                f"{TRANSITION_APPLIES} records; this study's model is {model.describe()}: use ratio_rule or a "
                "learned predictor")

    def score_many(self, histories: list[HistoryView]) -> np.ndarray:
        out = np.empty(len(histories))
        for i, h in enumerate(histories):
            f = h.full_rows()
            x = f[TRANSITION]
            if not (np.isfinite(h["loss"]).all() and np.isfinite(h["max_logit"]).all()):
                out[i] = SCORE_CAP
            elif len(x) and np.isnan(x).all():
                raise PredictorError(f"predictor {self.name!r}: member {h.member} has no transition_max recorded; "
                                     f"it applies to {TRANSITION_APPLIES} only")
            elif not np.isfinite(x).all():
                out[i] = SCORE_CAP
            else:
                out[i] = min(float(x.max()), SCORE_CAP) if len(x) else 0.0
        return out

    def signals(self, history: HistoryView) -> dict[str, float | None]:
        s = super().signals(history)
        f = history.full_rows()
        s["transition_max_peak"] = to_strict(float(np.max(f[TRANSITION])) if len(f) else math.nan, nonfinite=None)
        return s

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "params": {}, "applies_to": TRANSITION_APPLIES}


# ---------------------------------------------------------------------------------------------------
# Baselines


class LossZScore(Predictor):
    """A loss spike: the latest log10 loss, in standard deviations above the previous `window` rows'.

    Non-finite loss or logits score SCORE_CAP. Reads full-metric rows only, like the stored history.
    """

    kind = name = "loss_zscore"
    DEFAULT_THRESHOLD = 3.0
    MIN_STD = 0.01
    """Decades: a floor on the spread, so a flat loss with a tiny wobble is no spike."""

    def __init__(self, threshold: float | None = None, window: int = 20):
        self.threshold = self.DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.window = window

    def score_many(self, histories: list[HistoryView]) -> np.ndarray:
        out = np.zeros(len(histories))
        for i, h in enumerate(histories):
            f = h.full_rows()
            if not (np.isfinite(h["loss"]).all() and np.isfinite(h["max_logit"]).all()):
                out[i] = SCORE_CAP
            elif len(f) >= 3:
                y = safe_log10(f["loss"])
                past = y[-self.window - 1:-1]
                out[i] = (y[-1] - past.mean()) / max(float(past.std()), self.MIN_STD)
        return np.minimum(out, SCORE_CAP)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "params": {"window": self.window}}


# ---------------------------------------------------------------------------------------------------
# Learned


class LearnedPredictor(Predictor):
    """A fitted classifier over named features; score = its calibrated P(explodes)."""

    kind = "learned"

    def __init__(self, model, features: tuple[str, ...], threshold: float, *, name: str = "learned",
                 predictor_id: int | None = None, payload: dict | None = None):
        self.model = model
        self.features = tuple(features)
        self.threshold = float(threshold)
        self.name = name
        self.predictor_id = predictor_id
        self.payload = payload or {}
        self.horizon = self.payload.get("steps")
        """Fitted on batches <= this (None: the whole budget): later batches are not read."""

    @property
    def uses_hypers(self) -> bool:
        return any(n in HYPER_FEATURES for n in self.features)

    @property
    def fitted_kinds(self) -> tuple[str, ...] | None:
        """The model kinds of the members it was fitted on (None: not recorded)."""
        kinds = self.payload.get("model_kinds")
        return tuple(kinds) if kinds else None

    def refusal(self, model: ModelSignals) -> str | None:
        missing = [n for n in self.features if n in TRANSITION_FEATURES]
        if missing and not model.has_transition:
            return (f"predictor {self.name!r} reads {', '.join(missing)}, from transition_max, which only model "
                    f"fwp with rule {' or '.join(TRANSITION_RULES)} records; this study's model is "
                    f"{model.describe()}: fit one without the transition features (--features trajectory or "
                    "portable)")
        chance = [n for n in self.features if n in CHANCE_FEATURES]
        if chance and model.chance_loss is None:
            return (f"predictor {self.name!r} reads {', '.join(chance)}, the loss against the task's chance loss "
                    "ln V, and this study's task is not known (its stored spec names no task sweeper has)")
        if self.uses_hypers:
            # legacy rows (no model_kinds) were fitted on the ephemeral model: before the role mapping no
            # other model's members could be fitted
            fitted = self.fitted_kinds or ("ephemeral",)
            meaning = {HYPER_SIGNALS[k]["plasticity"] for k in fitted}
            if meaning != {HYPER_SIGNALS[model.kind]["plasticity"]}:
                names = [n for n in self.features if n in HYPER_FEATURES]
                return (f"predictor {self.name!r} reads {', '.join(names)}, fitted on {', '.join(fitted)} where "
                        f"plasticity is {', '.join(sorted(meaning))}; in {model.kind} it is "
                        f"{HYPER_SIGNALS[model.kind]['plasticity']}, another quantity: fit one without --hypers "
                        "to score another model")
        return None

    def score_many(self, histories: list[HistoryView]) -> np.ndarray:
        if not histories:
            return np.zeros(0)
        if self.horizon is not None:
            histories = [h.upto(self.horizon) for h in histories]
        X = feature_matrix(histories, self.features)
        return self.model.predict_proba(X)[:, 1].astype(np.float64)

    def signals(self, history: HistoryView) -> dict[str, float | None]:
        s = super().signals(history)
        X = feature_matrix([history], self.features)[0]
        s.update({f"f_{n}": float(v) for n, v in zip(self.features, X)})
        return s

    def describe(self) -> dict[str, Any]:
        keep = ("model", "steps", "min_step", "train_studies", "features", "feature_set", "model_kinds",
                "models")
        return {**super().describe(), **{k: self.payload[k] for k in keep if k in self.payload}}

    def dumps(self) -> bytes:
        return pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL)


# ---------------------------------------------------------------------------------------------------
# Making one from a study's [early_warning]


BUILTIN_CLASSES: dict[str, type[Predictor]] = {"ratio_rule": RatioRule, "transition_bound": TransitionBound}


def make_predictor(early_warning, db=None) -> Predictor:
    """The predictor an EarlyWarningSpec names: a built-in one (BUILTIN) by name, else the stored one
    (needs db).

    `early_warning.threshold`, when set, replaces the predictor's own threshold.
    """
    name = early_warning.predictor
    if name in BUILTIN_CLASSES:
        return BUILTIN_CLASSES[name](early_warning.threshold, early_warning.params)
    if db is None:
        raise PredictorError(f"early_warning.predictor: {name!r} is a stored predictor; loading it needs the "
                             "trial database (make_predictor(spec, db))")
    if early_warning.params:
        raise ConfigError("early_warning.params", f"stored predictor {name!r} takes no params (its settings are "
                          "fixed when it is fitted); remove them")
    p = load_predictor(db, name)
    if early_warning.threshold is not None:
        p.threshold = float(early_warning.threshold)
    return p


def load_predictor(db, name_or_id: str | int) -> Predictor:
    """A predictor by name (a built-in one, or a stored name: the newest of that name) or stored id."""
    import sqlalchemy as sa

    from sweeper.db import Predictor as Row

    if name_or_id in BUILTIN_CLASSES:
        return BUILTIN_CLASSES[name_or_id]()
    with db.read_session() as s:
        if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and name_or_id.isdigit()):
            row = s.get(Row, int(name_or_id))
        else:
            row = s.scalars(sa.select(Row).where(Row.name == name_or_id).order_by(Row.id.desc()).limit(1)).first()
        if row is None:
            with db.read_session() as s2:
                known = sorted({n for n in s2.scalars(sa.select(Row.name)) if n})
            raise PredictorError(f"no predictor {name_or_id!r} in the database; known: "
                                 f"{', '.join(BUILTIN + tuple(known))}")
        if row.kind != "learned" or row.blob is None:
            raise PredictorError(f"predictor {name_or_id!r} is of kind {row.kind!r} without a model; "
                                 "expected one fitted by `sweeper warn fit`")
        payload = dict(row.payload or {})
        model = pickle.loads(row.blob)  # our own rows, written by sweeper.warn.fit
        return LearnedPredictor(model, tuple(payload["features"]), payload["threshold"], name=row.name or str(row.id),
                                predictor_id=row.id, payload=payload)


__all__ = ["BUILTIN", "LOG_CAP", "SCORE_CAP", "LearnedPredictor", "LossZScore", "Predictor",
           "PredictorError", "RatioRule", "TransitionBound", "load_predictor", "make_predictor"]
