"""Which recorded signal of each model plays each role the early-warning predictors read.

The predictors, features and baselines are written once, over *roles*. A role is named after the
ephemeral model's metric that plays it (docs/engine.md), so the feature names of stored predictors
keep their meaning; for the fast-weight families (docs/families.md) the table below says which of
their own metrics fills it:

| role             | ephemeral, rnn   | fastweights, fwp       | what it is                                           |
|------------------|------------------|------------------------|------------------------------------------------------|
| `loss`, `acc`, `mem_acc`, `max_logit`, `w_slow` | same name | same name | the same quantity in every model         |
| `grad_eph`       | `grad_eph`       | `grad_fast`            | gradient norm of what writes the fast state          |
| `grad_slow`      | `grad_slow`      | `grad_rest`            | gradient norm of everything else                     |
| `grad_ratio`     | `grad_ratio`     | `grad_fast_ratio`      | the two above, divided                               |
| `grad_rms_ratio` | `grad_rms_ratio` | `grad_fast_rms_ratio`  | the same per entry                                   |
| `w_eph`          | `w_eph`          | `fast_norm`            | size of the fast state                               |
| `transition_max` | (none)           | `transition_max`       | delta rules only: the largest eta_t ||phi(k_t)||^2   |

The levels of these signals are in each model's own units (the ephemeral `grad_eph` is a per-
character RMS, the families' `grad_fast` the norm of the gradient the optimizer receives), so only
their changes compare across models: `features.PORTABLE_FEATURES`, which also read the loss against
the task's chance loss ln V (`chance_loss`, carried by `ModelSignals`) and the gradient ratio per entry.

Hyperparameter roles: `lr` and `clip` are every model's; `plasticity` is the rate at which the fast
state is written: the ephemeral model's plasticity, fastweights' `eta`, fwp's `beta_scale`;
`lambda` is the families' decay. Features read from them (`features.HYPER_FEATURES`) therefore mean
another quantity in each family, and a predictor that reads them scores only models whose plasticity
is the same field as in the models it was fitted on (`predictors.LearnedPredictor.refusal`).

Importing this module loads numpy and the engines' metric names only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweeper.engine.metrics import EVERY_STEP_NAMES, METRIC_NAMES

TRANSITION = "transition_max"
ROLES = (*METRIC_NAMES, TRANSITION)
"""Every role a history holds, in order."""
EVERY_STEP_ROLES = EVERY_STEP_NAMES
"""The roles every model records on every batch (the others on full-metric batches)."""

EPHEMERAL_SIGNALS: Mapping[str, str] = {name: name for name in METRIC_NAMES}
"""role -> metric of the ephemeral engine's StepMetrics (and the RNN baseline's)."""
FAMILY_SIGNALS: Mapping[str, str] = {
    "loss": "loss", "acc": "acc", "mem_acc": "mem_acc", "max_logit": "max_logit", "w_slow": "w_slow",
    "grad_eph": "grad_fast", "grad_slow": "grad_rest", "grad_ratio": "grad_fast_ratio",
    "grad_rms_ratio": "grad_fast_rms_ratio", "w_eph": "fast_norm", TRANSITION: "transition_max",
}  # fmt: skip
"""role -> metric of the fast-weight families' FamilyStepMetrics (and sw_member_metrics column)."""

SIGNALS: Mapping[str, Mapping[str, str]] = {
    "ephemeral": EPHEMERAL_SIGNALS, "rnn": EPHEMERAL_SIGNALS, "fastweights": FAMILY_SIGNALS, "fwp": FAMILY_SIGNALS,
}
"""model kind -> role -> the metric that fills it."""

HYPER_ROLES = ("lr", "plasticity", "ratio", "gamma", "lambda", "clip")
HYPER_SIGNALS: Mapping[str, Mapping[str, str]] = {
    "ephemeral": {"lr": "lr", "plasticity": "plasticity", "ratio": "ratio", "gamma": "gamma", "clip": "clip"},
    "rnn": {"lr": "lr", "plasticity": "plasticity", "ratio": "ratio", "gamma": "gamma", "clip": "clip"},
    "fastweights": {"lr": "lr", "plasticity": "eta", "lambda": "lam", "clip": "clip"},
    "fwp": {"lr": "lr", "plasticity": "beta_scale", "lambda": "lam", "clip": "clip"},
}
"""model kind -> hyperparameter role -> the member's field (FastWeightsHyper, FWPHyper, Hyper; the
sw_members column of the same name)."""

TRANSITION_RULES = ("delta", "gated_delta")
"""The fwp rules that record transition_max (NaN for every other model)."""


def chance_loss(task: Mapping[str, Any] | None) -> float | None:
    """ln V of a study's `[task]` table (name and parameters, as stored in `sw_studies.spec`): the loss of
    a uniform prediction over the task's V output classes, the level the scale-free loss features are
    read against. None when the table is missing or names no known task."""
    if not task or "name" not in task:
        return None
    from sweeper.config import ConfigError
    from sweeper.tasks import make_task

    try:
        t = make_task(task["name"], **{k: v for k, v in task.items() if k != "name"})
    except (ConfigError, TypeError):
        return None
    return math.log(len(t.vocab))


@dataclass(frozen=True)
class ModelSignals:
    """What a study's model records: its kind, and for fwp its rule (which decides `transition_max`);
    beside them the study task's chance loss, the scale its losses are read against."""

    kind: str
    """'ephemeral', 'rnn', 'fastweights' or 'fwp'."""
    rule: str | None = None
    """fwp's rule ('hebb', 'delta', 'gated_delta'); None for the other models."""
    chance_loss: float | None = field(default=None, compare=False)
    """ln V of the study's task (`chance_loss`); None when unknown. Not part of equality: two studies of
    one model record the same signals whatever their tasks."""

    def __post_init__(self):
        if self.kind not in SIGNALS:
            raise ValueError(f"model kind {self.kind!r}; expected one of {', '.join(SIGNALS)}")

    @classmethod
    def of_spec(cls, spec: Mapping[str, Any] | None) -> ModelSignals:
        """From a study's stored spec (`sw_studies.spec`: its `model` table; no kind = ephemeral)."""
        model = (spec or {}).get("model") or {}
        kind = model.get("kind", "ephemeral")
        chance = chance_loss((spec or {}).get("task"))
        if kind != "fwp":
            return cls(kind, chance_loss=chance)
        from sweeper.engine.families.config import FWPModel

        return cls(kind, model.get("rule", FWPModel.rule), chance)

    @classmethod
    def of_study(cls, spec) -> ModelSignals:
        """From a parsed StudySpec."""
        return cls(spec.kind, getattr(spec.run.model, "rule", None) if spec.kind == "fwp" else None,
                   math.log(len(spec.run.task.vocab)))

    @property
    def signals(self) -> Mapping[str, str]:
        return SIGNALS[self.kind]

    @property
    def has_transition(self) -> bool:
        return self.kind == "fwp" and self.rule in TRANSITION_RULES

    @property
    def roles(self) -> frozenset[str]:
        """The roles this model fills with a recorded value."""
        return frozenset(r for r in ROLES if r != TRANSITION or self.has_transition)

    def describe(self) -> str:
        return f"{self.kind} (rule {self.rule})" if self.rule else self.kind


@dataclass(frozen=True)
class RoleMetrics:
    """One batch's metrics by role: what OnlineWarner records (and what a replay from the database
    yields). Arrays are (n,), aligned with `member`; roles a model does not record are NaN."""

    step: int
    member: np.ndarray
    exploded: np.ndarray
    full: bool
    values: Mapping[str, np.ndarray]
    """role -> (n,) float64 (every role of ROLES)."""

    def __getitem__(self, role: str) -> np.ndarray:
        return self.values[role]


def as_roles(m, model: ModelSignals | None = None) -> RoleMetrics:
    """A batch's StepMetrics (ephemeral engine), FamilyStepMetrics (families) or RoleMetrics, by role.

    `model` names the mapping; without it, a batch with `fast_norm` is a family's. On a batch that is
    not full only EVERY_STEP_ROLES are kept (as the database keeps them); the rest are NaN.
    """
    if isinstance(m, RoleMetrics):
        return m
    signals = model.signals if model is not None else (FAMILY_SIGNALS if hasattr(m, "fast_norm") else EPHEMERAL_SIGNALS)
    n = len(m.member)
    keep = ROLES if m.full else EVERY_STEP_ROLES
    values = {}
    for role in ROLES:
        metric = signals.get(role)
        if role in keep and metric is not None and hasattr(m, metric):
            values[role] = np.asarray(getattr(m, metric), dtype=np.float64)
        else:
            values[role] = np.full(n, np.nan)
    return RoleMetrics(int(m.step), np.asarray(m.member), np.asarray(m.exploded, dtype=bool), bool(m.full), values)


def hyper_roles(h, kind: str | None = None) -> dict[str, float]:
    """A member's hyperparameters by role (HYPER_ROLES it has).

    `h`: a Mapping already by role (as `traces.load_traces` builds), or a Hyper / FastWeightsHyper /
    FWPHyper (its model from `kind`, else from its fields: `eta` is fastweights', `beta_scale` fwp's)."""
    if isinstance(h, Mapping):
        return {k: float(v) for k, v in h.items() if k in HYPER_ROLES and v is not None}
    if kind is None:
        kind = "fastweights" if hasattr(h, "eta") else "fwp" if hasattr(h, "beta_scale") else "ephemeral"
    return {role: float(getattr(h, field)) for role, field in HYPER_SIGNALS[kind].items()}


__all__ = ["EPHEMERAL_SIGNALS", "chance_loss", "EVERY_STEP_ROLES", "FAMILY_SIGNALS", "HYPER_ROLES", "HYPER_SIGNALS", "ROLES",
           "SIGNALS", "TRANSITION", "TRANSITION_RULES", "ModelSignals", "RoleMetrics", "as_roles", "hyper_roles"]
