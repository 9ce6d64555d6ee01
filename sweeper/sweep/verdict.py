"""What Optuna is told about one configuration, from the members that trained it (one per seed).

Optuna must hear the truth: a configuration whose runs exploded is infeasible or failed, one
whose runs were stopped early is pruned, and NaN or infinity never becomes a value. The rule, per
configuration (its seeds trained side by side in one pack):

- no member ended stable:
  - FAIL if any exploded or failed (there is no value to report), else
  - PRUNED (all were stopped early by the early-warning predictor);
- some member ended stable: COMPLETE, with each objective averaged over the stable members, and the
  constraint `instability` = fraction of seeds that exploded or were stopped. Optuna counts a trial
  feasible only when the constraint is <= 0, so a configuration that exploded on any seed is never
  the study's best, while the samplers still learn where it lies;
- any objective value that is not finite: FAIL.

The objective `explosion_rate` is that same fraction, for multi-objective studies that trade memory
against stability. Pure functions, no Optuna import: the driver applies the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sweeper.outcomes import FINISHED, Outcome

CONSTRAINT = "instability"


@dataclass(frozen=True)
class Verdict:
    state: str
    """'complete', 'fail' or 'pruned'."""
    values: list[float] | None
    """One per objective, when complete."""
    instability: float
    """Fraction of the configuration's members that exploded or were stopped early."""
    reason: str
    n_members: int
    n_stable: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(members: Sequence[Mapping[str, Any]], objectives: Sequence[tuple[str, str]]) -> Verdict:
    """The verdict for one configuration. `members`: dicts with `outcome` and the summary metrics."""
    n = len(members)
    if n == 0:
        return Verdict("fail", None, math.nan, "no members", 0, 0)
    counts = {k: sum(1 for m in members if m["outcome"] == k) for k in FINISHED}
    stable = [m for m in members if m["outcome"] == Outcome.STABLE]
    unstable = (counts[Outcome.EXPLODED] + counts[Outcome.STOPPED_EARLY]) / n
    if not stable:
        if counts[Outcome.EXPLODED] or any(m["outcome"] == Outcome.FAILED for m in members):
            why = f"{counts[Outcome.EXPLODED]} of {n} seeds exploded" if counts[Outcome.EXPLODED] else "every seed failed"
            return Verdict("fail", None, unstable, why, n, 0)
        return Verdict("pruned", None, unstable, f"all {n} seeds stopped early", n, 0)
    values = []
    for metric, _direction in objectives:
        if metric == "explosion_rate":
            values.append(unstable)
            continue
        got = [m.get(metric) for m in stable]
        got = [float(v) for v in got if v is not None]
        value = sum(got) / len(got) if got else math.nan
        if not math.isfinite(value):
            return Verdict("fail", None, unstable, f"objective {metric} is {value} (not finite)", n, len(stable))
        values.append(value)
    reason = "all seeds stable" if unstable == 0 else f"{n - len(stable)} of {n} seeds did not end stable"
    return Verdict("complete", values, unstable, reason, n, len(stable))
