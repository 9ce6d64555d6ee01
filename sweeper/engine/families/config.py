"""Validated configuration of the fast-weight families (docs/families.md).

A family run is one task, one model (`FastWeightsModel` or `FWPModel`), one `TrainConfig` (batch
size, optimizer, dtype, budget, explosion rule) and members with their own hyperparameters
(`FastWeightsHyper` or `FWPHyper`). Every value is checked at construction: a bad one raises
`ConfigError` naming the field and the allowed range.

The study axis `lambda` is the field `lam` of both hyperparameter classes (`lambda` is a Python
keyword); errors about it name `lambda`. `from_axes` builds a hyperparameter object from
axis names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ...config import ConfigError, TrainConfig, check_bool, check_choice, check_int, check_real

FAMILIES = ("fastweights", "fwp")
FW_ACTIVATIONS = ("relu", "tanh")
FWP_RULES = ("hebb", "delta", "gated_delta")
FWP_PHIS = ("identity", "elu1", "silu_l2")
FWP_PSIS = ("sigmoid", "2sigmoid")
FWP_DECAYS = ("none", "constant", "learned")


def _check_lr(value: Any) -> float:
    return check_real("lr", value, low=0, high=1e3, low_open=True)


def _check_lambda(value: Any) -> float:
    return check_real("lambda", value, low=0, high=1, low_open=True)


def _check_clip(value: Any) -> float:
    return check_real("clip", value, low=0, low_open=True, allow_inf=True)


def _from_axes(cls, data: Mapping[str, Any]):
    """Build `cls` from study-axis names (`lambda` for the field `lam`), refusing unknown keys."""
    if not isinstance(data, Mapping):
        raise ConfigError("hyper", f"expected a table, got {type(data).__name__}")
    names = {("lambda" if f.name == "lam" else f.name): f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(key, f"unknown hyperparameter of {cls.__name__}; allowed: {', '.join(sorted(names))}")
        kwargs[names[key]] = value
    return cls(**kwargs)


# ------------------------------------------------------------------------------------------------
# fastweights (Ba et al. 2016)


@dataclass(frozen=True)
class FastWeightsModel:
    """The fast-weight RNN of Ba et al. (2016)."""

    family = "fastweights"

    hidden: int = 50
    """H, units of the hidden state h (the paper's associative retrieval: 20, 50, 100); >= 2."""
    inner_steps: int = 1
    """S, iterations of the inner loop per character (the paper: 1); >= 1."""
    layer_norm: bool = True
    """Layer normalization inside the inner loop, with a learned gain and bias (the paper: on)."""
    activation: str = "relu"
    """f: 'relu' (the paper) or 'tanh'."""
    identity_scale: float = 0.05
    """The slow recurrent matrix starts at identity_scale * I; in [0, 10]."""

    def __post_init__(self):
        check_int("model.hidden", self.hidden, low=2, high=1 << 16)
        check_int("model.inner_steps", self.inner_steps, low=1, high=64)
        check_bool("model.layer_norm", self.layer_norm)
        check_choice("model.activation", self.activation, FW_ACTIVATIONS)
        object.__setattr__(
            self, "identity_scale", check_real("model.identity_scale", self.identity_scale, low=0, high=10)
        )


@dataclass(frozen=True)
class FastWeightsHyper:
    """One fastweights member's hyperparameters (the axes a sweep searches)."""

    lr: float = 1e-3
    """Learning rate of the slow weights; in (0, 1000]."""
    eta: float = 0.5
    """Fast learning rate: A(t) = lambda A(t-1) + eta h(t) h(t)^T (the paper: 0.5); in [0, 1e6]."""
    lam: float = 0.95
    """Study axis `lambda`: the fraction of A kept per character (the paper: 0.95); in (0, 1]."""
    clip: float = math.inf
    """Gradient-norm clip: the global norm of the batch gradient is clipped to this; inf for none."""
    seed: int = 0
    """Draws the initial weights and the data."""

    def __post_init__(self):
        object.__setattr__(self, "lr", _check_lr(self.lr))
        object.__setattr__(self, "eta", check_real("eta", self.eta, low=0, high=1e6))
        object.__setattr__(self, "lam", _check_lambda(self.lam))
        object.__setattr__(self, "clip", _check_clip(self.clip))
        check_int("seed", self.seed, low=0, high=2**62)

    @classmethod
    def from_axes(cls, data: Mapping[str, Any]) -> FastWeightsHyper:
        """From study-axis names: lr, eta, lambda, clip, seed."""
        return _from_axes(cls, data)


# ------------------------------------------------------------------------------------------------
# fwp (fast weight programmers)


@dataclass(frozen=True)
class FWPModel:
    """A stack of fast-weight-programmer layers (one head each) on a token embedding."""

    family = "fwp"

    d_model: int = 32
    """Width of the embedding and of the residual stream; >= 1."""
    d_key: int = 16
    """d_k: size of queries and keys; the fast matrix is d_value x d_key; >= 1."""
    d_value: int = 16
    """d_v: size of values; >= 1."""
    layers: int = 1
    """Number of FWP layers, each with its own fast matrix; in [1, 16]."""
    rule: str = "delta"
    """'hebb' (linear attention, with decay when `decay` is not 'none'), 'delta' (DeltaNet, no decay)
    or 'gated_delta' (gated DeltaNet: decay 'constant' or 'learned')."""
    phi: str = "silu_l2"
    """Feature map of queries and keys: 'identity', 'elu1' (ELU + 1) or 'silu_l2' (SiLU, then L2
    normalization)."""
    psi: str = "sigmoid"
    """eta_t = beta_scale * psi(beta_t): 'sigmoid' or '2sigmoid' (2 x sigmoid). Unused by 'hebb'."""
    decay: str = "none"
    """lambda_t: 'none' (1), 'constant' (the member's lambda) or 'learned' (sigmoid(w_l^T u_t + b_l),
    b_l starting at logit(lambda))."""

    def __post_init__(self):
        check_int("model.d_model", self.d_model, low=1, high=1 << 16)
        check_int("model.d_key", self.d_key, low=1, high=1 << 16)
        check_int("model.d_value", self.d_value, low=1, high=1 << 16)
        check_int("model.layers", self.layers, low=1, high=16)
        check_choice("model.rule", self.rule, FWP_RULES)
        check_choice("model.phi", self.phi, FWP_PHIS)
        check_choice("model.psi", self.psi, FWP_PSIS)
        check_choice("model.decay", self.decay, FWP_DECAYS)
        if self.rule == "delta" and self.decay != "none":
            raise ConfigError(
                "model.decay", f"got {self.decay!r}; rule 'delta' has no decay (use rule 'gated_delta' for a decayed delta rule)"
            )
        if self.rule == "gated_delta" and self.decay == "none":
            raise ConfigError(
                "model.decay", "got 'none'; rule 'gated_delta' needs decay 'constant' or 'learned' (without decay it is 'delta')"
            )


@dataclass(frozen=True)
class FWPHyper:
    """One fwp member's hyperparameters (the axes a sweep searches)."""

    lr: float = 1e-3
    """Learning rate of the slow weights; in (0, 1000]."""
    beta_scale: float = 1.0
    """eta_t = beta_scale * psi(beta_t): the fast learning rate's scale; in (0, 1e6]. Unused by 'hebb'."""
    lam: float = 1.0
    """Study axis `lambda`: the decay; in (0, 1]. Must be 1 with decay 'none', < 1 with 'learned'
    (the learned decay starts at lambda)."""
    clip: float = math.inf
    """Gradient-norm clip: the global norm of the batch gradient is clipped to this; inf for none."""
    seed: int = 0
    """Draws the initial weights and the data."""

    def __post_init__(self):
        object.__setattr__(self, "lr", _check_lr(self.lr))
        object.__setattr__(self, "beta_scale", check_real("beta_scale", self.beta_scale, low=0, high=1e6, low_open=True))
        object.__setattr__(self, "lam", _check_lambda(self.lam))
        object.__setattr__(self, "clip", _check_clip(self.clip))
        check_int("seed", self.seed, low=0, high=2**62)

    @classmethod
    def from_axes(cls, data: Mapping[str, Any]) -> FWPHyper:
        """From study-axis names: lr, beta_scale, lambda, clip, seed."""
        return _from_axes(cls, data)


# ------------------------------------------------------------------------------------------------
# A run of either family


@dataclass(frozen=True)
class FamilyRun:
    """Everything shared by the members of one fast-weight-family population.

    `train` is the engine's `TrainConfig`; the families use its batch_size, batches, optimizer
    ('sgd' or 'adam'), dtype, device, metrics_every and explosion settings. They train by BPTT
    only (`updater` must be 'bptt'), reset the fast state at every sequence (`reset_every` 1) and
    clip gradients per member (`grad_clip` must be unset; the member's `clip` is used).
    """

    task: Any
    """A task object from `sweeper.tasks.make_task`."""
    model: FastWeightsModel | FWPModel = field(default_factory=FastWeightsModel)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(updater="bptt"))

    def __post_init__(self):
        if not isinstance(self.model, (FastWeightsModel, FWPModel)):
            raise ConfigError("model", f"got {type(self.model).__name__}; expected FastWeightsModel or FWPModel")
        if not isinstance(self.train, TrainConfig):
            raise ConfigError("train", f"got {type(self.train).__name__}; expected TrainConfig")
        if self.train.updater != "bptt":
            raise ConfigError("train.updater", f"got {self.train.updater!r}; the fast-weight families train by 'bptt' only")
        if self.train.grad_clip is not None:
            raise ConfigError("train.grad_clip", "the fast-weight families clip per member: set the member's clip instead")
        if self.train.reset_every != 1:
            raise ConfigError("train.reset_every", f"got {self.train.reset_every}; the fast state is reset at every sequence (1)")

    @property
    def family(self) -> str:
        return self.model.family

    def check_hyper(self, hyper: Any, index: int | None = None) -> None:
        """Refuse member hyperparameters of the wrong family or that make no sense for this model."""
        where = "" if index is None else f"members[{index}]."
        expected = FastWeightsHyper if isinstance(self.model, FastWeightsModel) else FWPHyper
        if not isinstance(hyper, expected):
            raise ConfigError(
                f"{where}hyper".rstrip("."), f"got {type(hyper).__name__}; model {self.family} takes {expected.__name__}"
            )
        if isinstance(self.model, FWPModel):
            if self.model.decay == "none" and hyper.lam != 1:
                raise ConfigError(
                    f"{where}lambda", f"got {hyper.lam:g}; decay 'none' fixes lambda = 1 (use decay 'constant' or 'learned')"
                )
            if self.model.decay == "learned" and hyper.lam == 1:
                raise ConfigError(
                    f"{where}lambda", "got 1; the learned decay starts at lambda through logit(lambda), so lambda must be < 1"
                )


__all__ = [
    "FAMILIES",
    "FW_ACTIVATIONS",
    "FWP_RULES",
    "FWP_PHIS",
    "FWP_PSIS",
    "FWP_DECAYS",
    "FastWeightsModel",
    "FastWeightsHyper",
    "FWPModel",
    "FWPHyper",
    "FamilyRun",
]
