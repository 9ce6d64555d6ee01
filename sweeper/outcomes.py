"""What became of a member. One enum for the engine, the database, the classifier and the plots.

A stable member is also judged on whether it remembers (`judge_memory`): most stable members of a
hard task learn nothing at the memory positions, and only those that beat the no-memory baseline by
more than chance sit in the useful window between "too weak to remember" and "exploding". The
stored outcome stays one of `Outcome`; `memory_outcome` derives the label the user sees."""

import math
from dataclasses import dataclass
from enum import Enum


class Outcome(str, Enum):
    RUNNING = "running"
    STABLE = "stable"
    """Ran its whole budget without exploding."""
    EXPLODED = "exploded"
    """Loss or logits went non-finite, or the loss rose past the threshold (docs/engine.md)."""
    STOPPED_EARLY = "stopped_early"
    """Stopped by the early-warning stopper before the end of its budget."""
    FAILED = "failed"
    """The trial running it failed (an error, a killed worker) before it could finish."""


FINISHED = (Outcome.STABLE, Outcome.EXPLODED, Outcome.STOPPED_EARLY)
"""The outcomes of members that ran to an end: they count towards an explosion rate and a boundary fit
(a stopped-early member was predicted to explode). FAILED and RUNNING members are left out."""


# ---------------------------------------------------------------------------------------------------
# Memory: whether a stable member remembers


MEMORY_LEVEL = 0.95
"""The default confidence of the memory judgement (a study's `[execution] memory_level`)."""
MEMORY_LEVEL_RANGE = (0.5, 1.0)
"""memory_level must lie strictly between these."""

STABLE_MEMORY = "stable (memory)"
STABLE_NO_MEMORY = "stable (no memory)"
MEMORY_OUTCOMES = (Outcome.RUNNING.value, Outcome.STABLE.value, STABLE_NO_MEMORY, STABLE_MEMORY,
                   Outcome.EXPLODED.value, Outcome.STOPPED_EARLY.value, Outcome.FAILED.value)
"""Every value of `memory_outcome`: the stored outcome, with a judged stable member split in two
(`stable` alone: a stable member without a judgement, e.g. a study without an evaluation)."""


def memory_threshold(baseline: float, positions: int, level: float = MEMORY_LEVEL) -> float:
    """The highest evaluation memory accuracy that a member without memory reaches with probability at
    least `level`, when `positions` memory positions are scored.

    A member without memory scores at each memory position at most what the task's no-memory baseline
    scores there (the baseline is the best memoryless predictor's accuracy), so its number of correct
    positions is at most Binomial(positions, baseline). The threshold is that distribution's
    `level`-quantile k over `positions`: k / n, with P(K <= k) >= level. Exact (no normal
    approximation), so it holds at small n and near a baseline of 0 or 1 too.
    """
    lo, hi = MEMORY_LEVEL_RANGE
    if not lo < level < hi:
        raise ValueError(f"level: got {level!r}; expected a number in ({lo:g}, {hi:g})")
    if not 0.0 <= baseline <= 1.0:
        raise ValueError(f"baseline: got {baseline!r}; expected an accuracy in [0, 1]")
    if isinstance(positions, bool) or not isinstance(positions, int) or positions < 1:
        raise ValueError(f"positions: got {positions!r}; expected a positive integer")
    from scipy.stats import binom  # scipy only when a judgement is made: `import sweeper` stays light

    return float(binom.ppf(level, positions, baseline)) / positions


def beats_threshold(eval_mem_acc: float, threshold: float, positions: int) -> bool:
    """Whether an evaluation memory accuracy beats `threshold` (from `memory_threshold`): by at least one
    of the `positions` scored. Accuracies are counts over `positions`, so "more than the threshold" and
    "at least one position more" are the same; the comparison is made half a position above the
    threshold so that the rounding of an accuracy averaged over batches cannot tip it."""
    return eval_mem_acc * positions > threshold * positions + 0.5


@dataclass(frozen=True)
class MemoryJudgement:
    """Whether a member remembers, and what that was decided from (stored beside it in `sw_members`)."""

    remembers: bool | None
    """True: its evaluation memory accuracy beats what no memory reaches at the study's level; False: it
    does not; None: no judgement (not stable, no evaluation, or no baseline)."""
    threshold: float | None = None
    """The accuracy to beat (`memory_threshold`); None without a judgement."""
    positions: int | None = None
    """Memory positions the evaluation scored (n); None without a judgement."""


NO_JUDGEMENT = MemoryJudgement(None)


def judge_memory(outcome: Outcome | str, eval_mem_acc: float | None, baseline: float | None,
                 positions: int | None, level: float = MEMORY_LEVEL) -> MemoryJudgement:
    """The memory judgement of one member: only a stable member with an evaluation (a finite accuracy, a
    baseline and at least one memory position scored) is judged; every other gets NO_JUDGEMENT."""
    if Outcome(outcome) != Outcome.STABLE or positions is None or positions < 1:
        return NO_JUDGEMENT
    if eval_mem_acc is None or baseline is None or not (math.isfinite(eval_mem_acc) and math.isfinite(baseline)):
        return NO_JUDGEMENT
    threshold = memory_threshold(baseline, positions, level)
    return MemoryJudgement(beats_threshold(eval_mem_acc, threshold, positions), threshold, positions)


def memory_outcome(outcome: Outcome | str, remembers: bool | None) -> str:
    """What became of a member as the user sees it: `stable (memory)` or `stable (no memory)` for a
    judged stable member, else the stored outcome's value (`stable` for one without a judgement)."""
    outcome = Outcome(outcome)
    if outcome == Outcome.STABLE and remembers is not None:
        return STABLE_MEMORY if remembers else STABLE_NO_MEMORY
    return outcome.value
