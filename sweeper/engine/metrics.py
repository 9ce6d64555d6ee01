"""Typed per-step metrics, handed to callers as objects rather than written to logs."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

METRIC_NAMES = (
    "loss",
    "acc",
    "mem_acc",
    "grad_eph",
    "grad_slow",
    "grad_ratio",
    "grad_rms_ratio",
    "w_eph",
    "w_slow",
    "max_logit",
)
"""The per-step metrics, in order: the one list the engine, the database, the stores and the views use."""
EVERY_STEP_NAMES = ("loss", "acc", "mem_acc", "max_logit")
"""The metrics set on every batch; the others only on full-metric batches (`metrics_every`)."""


@dataclass(frozen=True)
class StepMetrics:
    """Metrics of one batch for the members still running. Arrays are (n,), aligned with `member`."""

    step: int
    """Batch index (0-based) these metrics describe."""
    member: np.ndarray
    """Index of each row's member in the population as it was created."""
    loss: np.ndarray
    acc: np.ndarray
    mem_acc: np.ndarray
    grad_eph: np.ndarray
    grad_slow: np.ndarray
    grad_ratio: np.ndarray
    grad_rms_ratio: np.ndarray
    w_eph: np.ndarray
    w_slow: np.ndarray
    max_logit: np.ndarray
    exploded: np.ndarray
    """True for members that exploded at this step (first time)."""
    full: bool
    """False on batches between `metrics_every` samples: then only EVERY_STEP_NAMES are set."""

    def for_member(self, member: int) -> dict[str, float]:
        row = int(np.flatnonzero(self.member == member)[0])
        return {name: float(getattr(self, name)[row]) for name in METRIC_NAMES}

    def rows(self):
        """One dict per member: {'member', 'step', metric...}."""
        for r, m in enumerate(self.member):
            d = {"member": int(m), "step": self.step}
            d.update({name: float(getattr(self, name)[r]) for name in METRIC_NAMES})
            yield d


@dataclass
class MemberSummary:
    """How one member ended."""

    member: int
    outcome: str
    explode_step: int | None
    """Detection: the batch at which the explosion criterion decided (None: it never did)."""
    explode_onset: int | None
    """Onset: the first batch of the excursion the criterion confirmed (`docs/engine.md`); <= explode_step."""
    steps_done: int
    final: dict[str, float]
    """The metrics of batch `final_step`: the explosion (detection) batch of an exploded member, else the
    last full-metrics batch. On an explosion batch that is not a full-metrics one, the metrics computed
    only on full batches are NaN."""
    final_step: int | None = None
    """The batch `final` is from (None before any)."""

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
