"""What became of a member. One enum for the engine, the database, the classifier and the plots."""

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
