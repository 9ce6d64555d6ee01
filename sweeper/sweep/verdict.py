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
against stability.

Memory. A configuration whose seeds ended stable without remembering (`sweeper.outcomes.judge_memory`:
evaluation memory accuracy not above what no memory reaches at the study's `memory_level`) is feasible
but useless. Optuna hears it in two ways, and only these:

- the user attribute `remembers_fraction` on its trial: the fraction of its seeds that ended stable
  and remember (0 for "stable, no memory", 1 when every seed remembers); not set when no seed was
  judged (a study without an evaluation). The reason (`sweeper_verdict`) says "k of n seeds remember";
- its objective values as they are. A memory objective (`eval_mem_acc`, `mem_acc`) of a configuration
  that does not remember is already at the no-memory baseline, so the samplers steer away from it
  without being told twice; an objective that does not measure memory (`explosion_rate`,
  `final_loss`, ...) does not steer them by memory at all: a study that wants the window puts
  `eval_mem_acc` among its objectives.

It is not a constraint: Optuna calls a trial with a positive constraint infeasible, and would then
treat "too weak to remember" like "exploded" (in `best_trial`, in the constrained samplers, in the
importance of the `instability` constraint), merging the two edges of the window that the analysis
(`sweeper.analysis.window`) must tell apart. Feasible means stable; useful is recorded beside it.

Pure functions, no Optuna import: the driver applies the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sweeper.outcomes import FINISHED, Outcome

CONSTRAINT = "instability"
REMEMBERS_ATTR = "remembers_fraction"
"""The Optuna user attribute of a configuration's fraction of seeds that ended stable and remember."""


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
    remembers_fraction: float | None = None
    """Fraction of the configuration's members that ended stable and remember; None when none was judged."""

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
    judged = [m for m in stable if m.get("remembers") is not None]
    remembering = sum(1 for m in judged if m["remembers"])
    remembers = remembering / n if judged else None
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
            return Verdict("fail", None, unstable, f"objective {metric} is {value} (not finite)", n, len(stable),
                           remembers)
        values.append(value)
    reason = "all seeds stable" if unstable == 0 else f"{n - len(stable)} of {n} seeds did not end stable"
    if judged:
        reason += f"; {remembering} of {n} seeds remember"
    return Verdict("complete", values, unstable, reason, n, len(stable), remembers)
