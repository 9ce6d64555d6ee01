"""Names of the per-batch metrics of the fast-weight families (docs/families.md, "Metrics").

`loss`, `acc`, `mem_acc`, `max_logit` and `w_slow` mean what they mean for the ephemeral model
(`sweeper.engine.metrics.METRIC_NAMES`). The others describe the fast state and are new:

- `fast_norm`: root mean square over the batch's sequences of the Frobenius norm of the fast state
  at the end of the sequence (all layers together).
- `grad_fast`, `grad_rest`: norm of the batch gradient (before clipping) restricted to the
  parameters that write the fast state, resp. to all the others.
- `grad_fast_ratio` = grad_fast / grad_rest; `grad_fast_rms_ratio` divides each norm by the square
  root of its entry count first.
- `transition_max`: delta rules only (NaN otherwise): the largest eta_t ||phi(k_t)||^2 of the batch.
"""

from __future__ import annotations

FAMILY_METRIC_NAMES = (
    "loss",
    "acc",
    "mem_acc",
    "max_logit",
    "w_slow",
    "fast_norm",
    "grad_fast",
    "grad_rest",
    "grad_fast_ratio",
    "grad_fast_rms_ratio",
    "transition_max",
)
"""The per-batch metrics of both families, in order."""

__all__ = ["FAMILY_METRIC_NAMES"]
