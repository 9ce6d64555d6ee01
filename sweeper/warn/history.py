"""A member's metric history as the early-warning predictors see it: the batches recorded so far.

The engine computes every metric only on full-metric batches (every `train.metrics_every`, and the
last); the database keeps exactly those rows plus the row of the batch where the member exploded.
A `History` holds the same rows, online (appended from `StepMetrics`) and offline (read back from
`sw_member_metrics`), so a predictor sees the same numbers in the worker and in `sweeper warn eval`.

Rows are by role (`signals.ROLES`): each model's metrics are mapped onto the roles once, where they
enter (`signals.as_roles` online, `traces.load_traces` offline), so every predictor reads every
model the same way. Roles a model does not record (transition_max outside the delta rules) are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .signals import ROLES

_START = 32


@dataclass(frozen=True)
class HistoryView:
    """Rows 0..n-1 of a member's history: arrays (n,) over the recorded batches, oldest first."""

    member: int
    step: np.ndarray
    """Batch index of each row."""
    full: np.ndarray
    """True where every metric was computed; False for a loss-only row (the explosion batch)."""
    exploded: np.ndarray
    """True on the row of the batch where the explosion criterion fired."""
    metrics: dict[str, np.ndarray]
    """ROLES -> (n,) float64; NaN where a metric was not computed (loss-only rows) or is not recorded."""
    hyper: dict[str, float] | None = None
    """The member's hyperparameters by role (lr, plasticity, ...: `signals.hyper_roles`), for predictors
    that use them."""
    chance_loss: float | None = None
    """ln V of the member's task (`signals.chance_loss`), for the features that read the loss against it."""

    def __len__(self) -> int:
        return len(self.step)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]

    @property
    def last_step(self) -> int:
        return int(self.step[-1])

    def full_rows(self) -> HistoryView:
        """Only the full-metric rows."""
        keep = self.full
        return HistoryView(self.member, self.step[keep], self.full[keep], self.exploded[keep],
                           {k: v[keep] for k, v in self.metrics.items()}, self.hyper, self.chance_loss)

    def upto(self, step: int) -> HistoryView:
        """The rows of batches <= step."""
        n = int(np.searchsorted(self.step, step, side="right"))
        return HistoryView(self.member, self.step[:n], self.full[:n], self.exploded[:n],
                           {k: v[:n] for k, v in self.metrics.items()}, self.hyper, self.chance_loss)


class History:
    """A growing history (amortized O(1) appends; `view()` is a slice, not a copy)."""

    def __init__(self, member: int, hyper: dict[str, float] | None = None, chance_loss: float | None = None):
        self.member = member
        self.hyper = hyper
        self.chance_loss = chance_loss
        self._n = 0
        self._step = np.zeros(_START, dtype=np.int64)
        self._full = np.zeros(_START, dtype=bool)
        self._exploded = np.zeros(_START, dtype=bool)
        self._metrics = {k: np.full(_START, np.nan) for k in ROLES}

    def __len__(self) -> int:
        return self._n

    def append(self, step: int, full: bool, exploded: bool, values: dict[str, float]) -> None:
        """Add the row of batch `step` (after every earlier one); `values` by role, missing ones NaN."""
        if self._n and step <= self._step[self._n - 1]:
            raise ValueError(f"member {self.member}: step {step} after step {self._step[self._n - 1]}; "
                             "rows must come in increasing batch order")
        if self._n == len(self._step):
            grow = len(self._step)
            self._step = np.concatenate([self._step, np.zeros(grow, dtype=np.int64)])
            self._full = np.concatenate([self._full, np.zeros(grow, dtype=bool)])
            self._exploded = np.concatenate([self._exploded, np.zeros(grow, dtype=bool)])
            self._metrics = {k: np.concatenate([v, np.full(grow, np.nan)]) for k, v in self._metrics.items()}
        i = self._n
        self._step[i], self._full[i], self._exploded[i] = step, full, exploded
        for k, v in self._metrics.items():
            x = values.get(k)
            v[i] = np.nan if x is None else float(x)
        self._n += 1

    def view(self) -> HistoryView:
        n = self._n
        return HistoryView(self.member, self._step[:n], self._full[:n], self._exploded[:n],
                           {k: v[:n] for k, v in self._metrics.items()}, self.hyper, self.chance_loss)
