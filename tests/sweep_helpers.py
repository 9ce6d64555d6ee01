"""Helpers shared by the study tests (tests/test_sweep.py, tests/test_cluster.py): tiny study files and
the consistency check every study must pass (each configuration x seed exactly once, nothing left
RUNNING, Optuna told the truth)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import sqlalchemy as sa

TINY = """
name = "{name}"
[task]
name = "key_recall"
[model]
depth = 1
width = {width}
[train]
updater = "dfa"
batch_size = 8
batches = {batches}
metrics_every = 10
[search]
kind = "{kind}"
{search}
[[objectives]]
metric = "eval_mem_acc"
{space}
[execution]
seeds = {seeds}
members_per_trial = {per_trial}
report_every = 20
eval_batches = 2
max_failures = {max_failures}
"""

GRID_SPACE = """
[space.lr]
values = [1e-2, 1e-1]
[space.plasticity]
values = [1e2, 1e3, 1e6]
"""

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


def write_study(directory: Path, name: str, *, kind="grid", search="", space=GRID_SPACE, seeds=2, per_trial=4,
                batches=40, width=16, max_failures=1) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(TINY.format(name=name, kind=kind, search=search, space=space, seeds=seeds,
                                per_trial=per_trial, batches=batches, width=width, max_failures=max_failures))
    return path


def rows(url: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def check_study_consistent(url: str, name: str, *, configs: int, seeds: int) -> None:
    """Every configuration x seed exactly once; nothing RUNNING; Optuna told the verdicts; no NaN values."""
    (study_id, status), = rows(url, "SELECT id, status FROM sw_studies WHERE name = :n", n=name)
    assert status == "COMPLETE"
    members = rows(url, "SELECT config_index, seed, outcome, optuna_trial_number FROM sw_members "
                        "WHERE study_id = :s", s=study_id)
    assert len(members) == configs * seeds
    assert len({(c, s) for c, s, _, _ in members}) == configs * seeds  # no duplicates
    assert {c for c, _, _, _ in members} == set(range(configs))  # none lost
    assert rows(url, "SELECT count(*) FROM sw_trials WHERE study_id = :s AND status NOT IN "
                     "('COMPLETE', 'FAILED', 'PRUNED')", s=study_id) == [(0,)]
    assert all(o in ("stable", "exploded", "stopped_early", "failed") for _, _, o, _ in members)
    # Optuna: one trial per configuration, all finished, state matching the members' outcomes.
    otrials = dict(rows(url, "SELECT t.number, t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
                             "WHERE s.study_name = :n", n=f"sweeper/{name}"))
    assert len(otrials) == configs
    by_number: dict[int, list[str]] = {}
    for _, _, outcome, number in members:
        by_number.setdefault(number, []).append(outcome)
    assert set(by_number) == set(otrials)
    for number, outcomes in by_number.items():
        if "stable" in outcomes:
            assert otrials[number] == "COMPLETE", (number, outcomes)
        elif all(o == "stopped_early" for o in outcomes):
            assert otrials[number] == "PRUNED"
        else:
            assert otrials[number] == "FAIL", (number, outcomes)
    values = rows(url, "SELECT v.value FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id "
                       "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :n", n=f"sweeper/{name}")
    assert all(v is not None and math.isfinite(v) for v, in values)


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
