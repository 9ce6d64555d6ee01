"""Stopping whole packs through Ray Tune.

The early-warning watcher stops single members inside the engine (their compute is freed at once).
A pack whose members have mostly exploded or been stopped still holds its Ray slot for the few
survivors; `[early_warning] pack_stop = f` ends such a pack: once at least a fraction `f` of its
members have exploded or been stopped early, Tune's `PackStopper` stops the trial and the survivors
are recorded as stopped early (a warning event with predictor "pack_stop"), so the slot goes to the
next pack.

Ordering. When a Tune Stopper ends a trial, Tune tells the searcher that the trial completed before
the trial's own code after `tune.report` runs (measured with Ray 2.60), so a pack that wrote its
results on the way out would race the driver that reads them. The rule is therefore a pure function
of the reported numbers, and the pack applies it to its report *before* sending it: when it holds,
the pack stops its survivors, writes everything to the database, and only then sends that report as
its last one. The Stopper then sees the same numbers, stops the trial on Tune's side, and the driver
finds the pack's results in the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PACK_STOP_PREDICTOR = "pack_stop"
"""The `predictor` of the warning events that record members stopped with their pack."""


def pack_stop_due(report: Mapping[str, Any], fraction: float | None) -> bool:
    """Whether a pack with these reported counts should be stopped whole.

    `report`: a pack's progress report (`members`, `exploded`, `stopped`, `running`). The rule holds
    when members are still running and at least `fraction` of all members exploded or were stopped.
    """
    if fraction is None:
        return False
    members = int(report.get("members") or 0)
    if members == 0 or int(report.get("running") or 0) == 0:
        return False
    flagged = int(report.get("exploded") or 0) + int(report.get("stopped") or 0)
    return flagged >= fraction * members


def make_pack_stopper(fraction: float):
    """A Ray Tune Stopper applying `pack_stop_due`; it remembers the trials it stopped."""
    from ray import tune

    class PackStopper(tune.Stopper):
        def __init__(self) -> None:
            self.fraction = fraction
            self.stopped: set[str] = set()

        def __call__(self, trial_id: str, result: dict) -> bool:
            if pack_stop_due(result, self.fraction):
                self.stopped.add(trial_id)
                return True
            return False

        def stop_all(self) -> bool:
            return False

    return PackStopper()
