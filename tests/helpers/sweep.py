"""Helpers shared by the study tests (tests/test_sweep.py, tests/test_cluster.py, tests/test_ray_security.py).

The study files and the database audit are the fault drill's (`tests.helpers.studies`), so the tests and
the drill README.md reports check studies the same way; here only what the tests add to them."""

from __future__ import annotations

import time

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
