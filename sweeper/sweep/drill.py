"""Fault and concurrency drill: measures what README.md reports about sweeps surviving faults.

    python -m sweeper.sweep.drill [--storage sqlite|postgresql|both] [--json]

Runs real `sweeper submit` processes (each with its own local Ray) on tiny studies and counts, from
the database afterwards, configurations lost, duplicated and left RUNNING:

- concurrency: two studies submitted at once to one database, each running 8 packs at a time
  (0.25 CPU per pack), so 16 packs write to the database concurrently;
- worker kills: K packs' worker processes are SIGKILLed mid-pack; each must be retried;
- driver kill: the driver is SIGKILLed mid-study and the same command is run again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
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
cpus = {cpus}
report_every = 20
eval_batches = 2
max_failures = {max_failures}
"""
"""A tiny key-recall study (seconds of training per pack); the study tests write theirs with it too."""


def grid_space(lrs: Sequence[float]) -> str:
    """The `[space.*]` tables of a grid: these learning rates x plasticity 1e2, 1e3, 1e6."""
    return f"[space.lr]\nvalues = {list(lrs)}\n[space.plasticity]\nvalues = [1e2, 1e3, 1e6]\n"


def write_study(directory: Path, name: str, *, kind: str = "grid", search: str = "",
                space: str = grid_space([1e-2, 1e-1]), seeds: int = 2, per_trial: int = 4, batches: int = 40,
                width: int = 16, cpus: float = 1, max_failures: int = 1) -> Path:
    """`directory/name.toml`, a STUDY; by default 2 x 3 configurations x 2 seeds in 3 packs of 4 members.

    `search`: extra lines of `[search]` (e.g. the sampler and `configs` of an optuna study); `space`:
    its `[space.*]` tables.
    """
    path = directory / f"{name}.toml"
    path.write_text(STUDY.format(name=name, kind=kind, search=search, space=space, seeds=seeds,
                                 per_trial=per_trial, cpus=cpus, batches=batches, width=width,
                                 max_failures=max_failures))
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
    if "stable" in outcomes:
        return "COMPLETE"
    return "PRUNED" if all(o == "stopped_early" for o in outcomes) else "FAIL"


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


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweeper", "submit", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    try:  # Ray processes the driver left behind (after a SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return out


def _wait(url: str, sql: str, timeout: float = 180) -> list[tuple]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            got = rows(url, sql)
        except sa.exc.OperationalError:
            got = []
        if got:
            return got
        time.sleep(0.2)
    raise TimeoutError(sql)


def drill_concurrency(url: str, work: Path) -> dict:
    names = [f"conc_{i}" for i in range(2)]
    paths = [write_study(work, n, space=grid_space(_lrs(8)), per_trial=2, batches=150, width=16,
                         cpus=0.25) for n in names]
    started = time.time()
    procs = [_start([str(p), "--storage", url]) for p in paths]
    outs = [_finish(p) for p in procs]
    seconds = time.time() - started
    audits = [audit(url, n) for n in names]
    return {"drivers": 2, "packs_at_once_per_driver": 8, "seconds": round(seconds, 1),
            "exit_codes": [p.returncode for p in procs], "studies": audits,
            "errors": [o[-500:] for p, o in zip(procs, outs) if p.returncode]}


def drill_worker_kills(url: str, work: Path, kills: int = 3) -> dict:
    path = write_study(work, "workers", space=grid_space(_lrs(4)), per_trial=2, batches=2500, width=64)
    proc = _start([str(path), "--storage", url, "--num-cpus", "2"])
    killed = set()
    deadline = time.time() + 600
    while len(killed) < kills and time.time() < deadline and proc.poll() is None:
        for number, pid in rows(url, "SELECT t.number, t.worker FROM sw_trials t JOIN sw_studies s "
                                     "ON s.id = t.study_id WHERE s.name = 'workers' AND t.status = 'RUNNING' "
                                     "AND t.attempts = 1 AND t.worker IS NOT NULL"):
            if number not in killed and len(killed) < kills:
                time.sleep(0.5)  # mid-pack, not at its first instruction
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.add(number)
                except ProcessLookupError:
                    pass
        time.sleep(0.2)
    out = _finish(proc)
    result = audit(url, "workers")
    return {"killed": len(killed), "exit_code": proc.returncode, **result,
            "error": out[-500:] if proc.returncode else None}


def drill_driver_kill(url: str, work: Path) -> dict:
    path = write_study(work, "driver", space=grid_space(_lrs(4)), per_trial=2, batches=2500, width=64)
    proc = _start([str(path), "--storage", url, "--num-cpus", "2"])
    of_study = "FROM sw_trials t JOIN sw_studies s ON s.id = t.study_id WHERE s.name = 'driver' AND t.status"
    _wait(url, f"SELECT 1 {of_study} = 'COMPLETE'")
    _wait(url, f"SELECT 1 {of_study} = 'RUNNING'")
    proc.send_signal(signal.SIGKILL)
    _finish(proc)
    before = audit(url, "driver")
    again = _start([str(path), "--storage", url, "--num-cpus", "2"])
    out = _finish(again)
    return {"packs_done_before_kill": before["complete_packs"], "exit_code": again.returncode,
            **audit(url, "driver"), "error": out[-500:] if again.returncode else None}


def _database(backend: str, work: Path):
    if backend == "sqlite":
        return f"sqlite:///{work / 'drill.sqlite3'}", lambda: None
    name = f"sweeper_drill_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeper.sweep.drill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.storage == "both" else [args.storage]
    report = {}
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="sweeper-drill-") as tmp:
            work = Path(tmp)
            url, drop = _database(backend, work)
            try:
                report[backend] = {"concurrency": drill_concurrency(url, work),
                                   "worker_kills": drill_worker_kills(url, work, args.kills),
                                   "driver_kill": drill_driver_kill(url, work)}
            finally:
                drop()
        if not args.json:
            print(backend, json.dumps(report[backend], indent=1), flush=True)
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
