"""Tiny study files written to disk, and audits of what a study left in the database.

Shared by the sweep tests and by `tools/drill.py`: write a study, run it, then count from the
database its members lost, duplicated or left RUNNING.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from sweeper.outcomes import Outcome

STUDY = """
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
metrics_every = {metrics_every}
[search]
kind = "{kind}"
{search}
[[objectives]]
metric = "eval_mem_acc"
{space}
[execution]
seeds = {seeds}
members_per_trial = {per_trial}
cpus = {cpus}
report_every = {report_every}
eval_batches = 2
max_failures = {max_failures}
"""
"""A tiny key-recall study (seconds of training per pack); the study tests write theirs with it too."""


def grid_space(lrs: Sequence[float]) -> str:
    """The `[space.*]` tables of a grid: these learning rates x plasticity 1e2, 1e3, 1e6."""
    return f"[space.lr]\nvalues = {list(lrs)}\n[space.plasticity]\nvalues = [1e2, 1e3, 1e6]\n"


def write_study(directory: Path, name: str, *, kind: str = "grid", search: str = "",
                space: str = grid_space([1e-2, 1e-1]), seeds: int = 2, per_trial: int = 4, batches: int = 40,
                width: int = 16, cpus: float = 1, max_failures: int = 1, metrics_every: int = 10,
                report_every: int = 20) -> Path:
    """`directory/name.toml`, a STUDY; by default 2 x 3 configurations x 2 seeds in 3 packs of 4 members.

    `search`: extra lines of `[search]` (e.g. the sampler and `configs` of an optuna study); `space`:
    its `[space.*]` tables.
    """
    path = directory / f"{name}.toml"
    path.write_text(STUDY.format(name=name, kind=kind, search=search, space=space, seeds=seeds,
                                 per_trial=per_trial, cpus=cpus, batches=batches, width=width,
                                 max_failures=max_failures, metrics_every=metrics_every,
                                 report_every=report_every))
    return path


def _lrs(n: int) -> list[float]:
    return [round(1e-2 * 1.5**i, 6) for i in range(n)]


def rows(url: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


FINAL_OUTCOMES = frozenset(o.value for o in Outcome) - {Outcome.RUNNING.value}


def _optuna_state(outcomes: list[str]) -> str:
    """What Optuna must have been told of a configuration whose members ended so: sweeper.sweep.verdict's
    rule, restated so that the audit checks the driver rather than repeating its code."""
    if Outcome.STABLE in outcomes:
        return "COMPLETE"
    return "PRUNED" if all(o == Outcome.STOPPED_EARLY for o in outcomes) else "FAIL"


def audit(url: str, name: str) -> dict:
    """Study `name` in the database at `url`, against what its spec asks; counted, not asserted.

    Members expected, recorded, lost, duplicated and without a final outcome; packs left RUNNING or
    WAITING; Optuna trials left unfinished, whose state is not what their members' outcomes call for
    (COMPLETE if any ended stable, PRUNED if all were stopped early, else FAIL; an Optuna trial without
    members, or members without an Optuna trial, count too), and objective values NULL or not finite.
    A sound finished study: status COMPLETE, members == expected_members, optuna_trials == configs and
    every count of trouble 0.
    """
    from sweeper.study import study_from_dict

    (study_id, status, planned, spec), = rows(
        url, "SELECT id, status, planned_trials, spec FROM sw_studies WHERE name = :n", n=name)
    spec = study_from_dict(json.loads(spec) if isinstance(spec, str) else spec)
    expected = {(i, seed) for i in range(spec.search.configs) for seed in spec.execution.seeds}
    members = rows(url, "SELECT config_index, seed, outcome, optuna_trial_number FROM sw_members "
                        "WHERE study_id = :s", s=study_id)
    pairs = [(c, seed) for c, seed, _, _ in members]
    packs = rows(url, "SELECT status, attempts FROM sw_trials WHERE study_id = :s", s=study_id)
    of_optuna = "JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = :n"
    optuna = dict(rows(url, f"SELECT t.number, t.state FROM trials t {of_optuna}", n=f"sweeper/{name}"))
    values = rows(url, f"SELECT v.value FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id {of_optuna}",
                  n=f"sweeper/{name}")
    outcomes: dict[int, list[str]] = {}
    for _, _, outcome, number in members:
        outcomes.setdefault(number, []).append(outcome)
    told = {number: _optuna_state(o) for number, o in outcomes.items()}
    return {
        "status": status,
        "packs": len(packs),
        "planned_packs": planned,
        "configs": spec.search.configs,
        "members": len(members),
        "expected_members": len(expected),
        "lost": len(expected - set(pairs)),
        "duplicated": len(pairs) - len(set(pairs)),
        "unfinished_members": sum(1 for _, _, o, _ in members if o not in FINAL_OUTCOMES),
        "complete_packs": sum(1 for s, _ in packs if s == "COMPLETE"),
        "running_packs": sum(1 for s, _ in packs if s in ("RUNNING", "WAITING")),
        "retried_packs": sum(1 for _, a in packs if a > 1),
        "optuna_trials": len(optuna),
        "optuna_unfinished": sum(1 for s in optuna.values() if s in ("RUNNING", "WAITING")),
        "optuna_mismatched": sum(1 for n in optuna.keys() | told.keys() if optuna.get(n) != told.get(n)),
        "optuna_nonfinite_values": sum(1 for v, in values if v is None or not math.isfinite(v)),
    }
