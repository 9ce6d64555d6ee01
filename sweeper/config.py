"""Typed, validated configuration of a training run.

A run is one task, one model, one training setup, and a list of members, each with its own
hyperparameters and seed. Everything is a frozen dataclass validated once, at construction: a bad
value raises `ConfigError` naming the field and the allowed range before any compute happens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sweeper.errors import SweeperError

MODEL_KINDS = ("ephemeral", "rnn")
ACTIVATIONS = ("relu", "tanh")
UPDATERS = ("dfa", "dfa_nod", "backprop", "bptt")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")


class ConfigError(SweeperError, ValueError):
    """A configuration value is out of range or inconsistent. `field` names it."""


def _is_number(value: Any) -> bool:
    # bool is an int subclass; `lr = true` in a TOML file must not become 1.0.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_real(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return `value` as a float if it is a real number in the given interval, else raise."""
    lo_br, hi_br = ("(" if low_open else "["), (")" if high_open else "]")
    allowed = f"a number in {lo_br}{low:g}, {high:g}{hi_br}"
    if not _is_number(value):
        raise ConfigError(name, f"got {value!r} ({type(value).__name__}); expected {allowed}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ConfigError(name, f"got {value}; expected {allowed}")
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        raise ConfigError(name, f"got {value:g}; expected {allowed}")
    return value


def check_int(name: str, value: Any, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(name, f"got {value!r} ({type(value).__name__}); expected an integer in [{low}, {high}]")
    if not low <= value <= high:
        raise ConfigError(name, f"got {value}; expected an integer in [{low}, {high}]")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(name, f"got {value!r}; expected one of {', '.join(choices)}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, f"got {value!r}; expected true or false")
    return value


@dataclass(frozen=True)
class Hyper:
    """One member's hyperparameters. These are the axes a sweep searches."""

    lr: float = 3e-4
    """Base learning rate of the slow weights (eta); > 0."""
    plasticity: float = 1e4
    """Learning-rate multiplier of the ephemeral entries (alpha); >= 1."""
    ratio: float = 0.1
    """Fraction of each hidden layer's entries that are ephemeral; in [0, 1]."""
    gamma: float = 0.7
    """Fraction of the ephemeral value kept after each update; in (0, 1]."""
    clip: float = math.inf
    """Weights are clamped to [-clip, clip] after every update; > 0, inf for none."""
    seed: int = 0
    """Draws the initial weights, the ephemeral mask, the feedback matrices and the data."""

    def __post_init__(self):
        object.__setattr__(self, "lr", check_real("lr", self.lr, low=0, high=1e3, low_open=True))
        object.__setattr__(self, "plasticity", check_real("plasticity", self.plasticity, low=1, high=1e9))
        object.__setattr__(self, "ratio", check_real("ratio", self.ratio, low=0, high=1))
        object.__setattr__(self, "gamma", check_real("gamma", self.gamma, low=0, high=1, low_open=True))
        object.__setattr__(self, "clip", check_real("clip", self.clip, low=0, low_open=True, allow_inf=True))
        check_int("seed", self.seed, low=0, high=2**62)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "ephemeral"
    """'ephemeral' (the paper's model) or 'rnn' (the vanilla RNN baseline)."""
    depth: int = 2
    """Number of hidden layers."""
    width: int = 256
    """Units per hidden layer (paper: 256)."""
    activation: str = "relu"
    recurrence: bool = False
    """Feed the previous character's last hidden state back as an extra input."""

    def __post_init__(self):
        check_choice("model.kind", self.kind, MODEL_KINDS)
        check_int("model.depth", self.depth, low=1, high=16)
        check_int("model.width", self.width, low=1, high=1 << 16)
        check_choice("model.activation", self.activation, ACTIVATIONS)
        check_bool("model.recurrence", self.recurrence)


@dataclass(frozen=True)
class TrainConfig:
    updater: str = "dfa"
    """'dfa', 'dfa_nod' (DFA without f'), 'backprop' (per step) or 'bptt'."""
    optimizer: str = "sgd"
    """'sgd' or 'adam'. The ephemeral model is defined with SGD only."""
    grad_clip: float | None = None
    """RNN only: clip the gradient's global norm to this value before the step."""
    batch_size: int = 32
    """Sequences per batch (B); each has its own ephemeral state."""
    batches: int = 1000
    """Training budget in batches (one slow-weight update each for the ephemeral model)."""
    reset_every: int = 1
    """Reset the ephemeral state every this many batches (1: at every sequence start)."""
    metrics_every: int = 10
    """Record the full metrics every this many batches (loss is watched every batch)."""
    explode_threshold: float = 2.0
    explode_window: int = 10
    explode_grace: int = 50
    explode_margin: float = 0.5
    """A loss above the threshold counts as an explosion only once it has also risen this many
    nats above its best windowed value: a run that never got below chance is not exploding."""
    stop_on_explosion: bool = True
    """Drop a member from the population once it explodes (its compute is freed)."""
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self):
        check_choice("train.updater", self.updater, UPDATERS)
        check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        if self.grad_clip is not None:
            object.__setattr__(
                self, "grad_clip", check_real("train.grad_clip", self.grad_clip, low=0, low_open=True)
            )
        check_int("train.batch_size", self.batch_size, low=1, high=1 << 20)
        check_int("train.batches", self.batches, low=1, high=1 << 40)
        check_int("train.reset_every", self.reset_every, low=1, high=1 << 40)
        check_int("train.metrics_every", self.metrics_every, low=1, high=1 << 40)
        object.__setattr__(
            self,
            "explode_threshold",
            check_real("train.explode_threshold", self.explode_threshold, low=0, low_open=True),
        )
        check_int("train.explode_window", self.explode_window, low=1, high=1 << 20)
        check_int("train.explode_grace", self.explode_grace, low=0, high=1 << 40)
        object.__setattr__(
            self, "explode_margin", check_real("train.explode_margin", self.explode_margin, low=0)
        )
        check_bool("train.stop_on_explosion", self.stop_on_explosion)
        check_choice("train.dtype", self.dtype, DTYPES)
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError("train.device", f"got {self.device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


@dataclass(frozen=True)
class RunConfig:
    """Everything shared by the members of one population."""

    task: Any
    """A task object from `sweeper.tasks.make_task`."""
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.model.kind == "ephemeral" and self.train.optimizer != "sgd":
            raise ConfigError(
                "train.optimizer", f"got {self.train.optimizer!r}; the ephemeral model trains with 'sgd' only"
            )
        if self.model.kind == "ephemeral" and self.train.grad_clip is not None:
            raise ConfigError(
                "train.grad_clip", "applies to the RNN baseline only (the paper finds it harmful for ephemeral weights)"
            )
        if self.model.kind == "rnn" and self.train.reset_every != 1:
            raise ConfigError("train.reset_every", "applies to the ephemeral model only")

    def check_hyper(self, hyper: Hyper, index: int | None = None) -> None:
        """Refuse member hyperparameters that make no sense for this model."""
        where = "" if index is None else f"members[{index}]."
        if self.model.kind == "rnn" and hyper.ratio != 0:
            raise ConfigError(f"{where}ratio", f"got {hyper.ratio:g}; the RNN baseline has no ephemeral entries (use 0)")


def from_mapping(cls, data: Mapping[str, Any], where: str):
    """Build dataclass `cls` from a mapping, refusing unknown keys by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"expected a table, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}.{key}" if where else key, f"unknown key; allowed: {', '.join(sorted(known))}")
    return cls(**data)
