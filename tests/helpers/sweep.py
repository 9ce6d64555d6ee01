"""Helpers shared by the study tests under tests/sweep/ (in-process submits, `sweeper submit` processes, clusters).

The study files and the database audit are the fault drill's (`tests.helpers.studies`), so the tests and
the drill in docs/benchmarks.md check studies the same way; here only what the tests add to them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import sqlalchemy as sa

from tests.helpers.studies import audit, rows

RANGE_SPACE = """
[space.lr]
low = 1e-3
high = 1e-1
log = true
[space.plasticity]
low = 1e2
high = 1e4
log = true
"""


def assert_study_sound(url: str, name: str, *, configs: int, seeds: int) -> None:
    """The drill's audit finds the study COMPLETE with every configuration x seed exactly once, no pack
    left RUNNING or WAITING, every member with a final outcome, one finished Optuna trial per
    configuration in the state its members' outcomes call for, and no NULL or non-finite value."""
    got = audit(url, name)
    want = {"status": "COMPLETE", "configs": configs, "expected_members": configs * seeds,
            "members": configs * seeds, "lost": 0, "duplicated": 0, "unfinished_members": 0, "running_packs": 0,
            "optuna_trials": configs, "optuna_unfinished": 0, "optuna_mismatched": 0, "optuna_nonfinite_values": 0}
    assert {k: got[k] for k in want} == want, got


def wait_for(url: str, sql: str, timeout: float = 120, **params):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            got = rows(url, sql, **params)
        except sa.exc.OperationalError:
            got = []
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for: {sql}")


class Pause:
    """The packs' test pause point (`SWEEPER_TEST_PAUSE=DIR:N`, see `sweeper.sweep.pack.PausePoint`):
    every pack holds at its first report at or after batch N until told to go on, so a fault test
    kills a driver or a worker at a known point instead of after a sleep."""

    def __init__(self, directory, batch: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.batch = batch

    def env(self) -> dict[str, str]:
        return {**os.environ, "SWEEPER_TEST_PAUSE": f"{self.directory}:{self.batch}"}

    def wait(self, pack: int, timeout: float = 180) -> int:
        """Wait until pack `pack` holds; the pid of the worker holding it."""
        paused = self.directory / f"paused-{pack}"
        deadline = time.time() + timeout
        while not paused.exists():
            if time.time() > deadline:
                raise AssertionError(f"pack {pack} never reached batch {self.batch}")
            time.sleep(0.1)
        return int(paused.read_text())

    def go(self, *packs: int) -> None:
        """Let these packs go on (or never hold, if they have not reached the point yet)."""
        for pack in packs:
            (self.directory / f"go-{pack}").touch()
