"""Fault and concurrency drill: measures what docs/benchmarks.md reports about sweeps surviving faults.

    python -m tools.drill [--storage sqlite|postgresql|both] [--json]

Runs real `sweeper submit` processes (each with its own local Ray) on tiny studies and counts, from
the database afterwards, configurations lost, duplicated and left RUNNING:

- concurrency: two studies submitted at once to one database, each running 8 packs at a time
  (0.25 CPU per pack), so 16 packs write to the database concurrently;
- worker kills: K packs' worker processes are SIGKILLed mid-pack; each must be retried;
- driver kill: the driver is SIGKILLed mid-study, `sweeper status` must call it gone at once, and the
  same command is run again.

Kills happen at a known point: every pack holds at batch 200 until let go (the packs' test pause
point, `tests.helpers.sweep.Pause`), so a kill never lands before a pack started or after it ended.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from tests.helpers.studies import _lrs, audit, grid_space, write_study
from tests.helpers.sweep import Pause

PAUSE_BATCH = 200


def _start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweeper", "submit", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=env)


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
    pause = Pause(work / "pause-workers", PAUSE_BATCH)
    pause.go(*range(kills, 12))  # packs 0..kills-1 hold; the rest run through
    proc = _start([str(path), "--storage", url, "--num-cpus", "2"], env=pause.env())
    killed = 0
    for number in range(kills):
        os.kill(pause.wait(number, timeout=600), signal.SIGKILL)
        killed += 1
        pause.go(number)  # its retry passes the point
    out = _finish(proc)
    result = audit(url, "workers")
    return {"killed": killed, "exit_code": proc.returncode, **result,
            "error": out[-500:] if proc.returncode else None}


def drill_driver_kill(url: str, work: Path) -> dict:
    path = write_study(work, "driver", space=grid_space(_lrs(4)), per_trial=2, batches=2500, width=64)
    pause = Pause(work / "pause-driver", PAUSE_BATCH)
    pause.go(0, 1)  # two packs finish; the third holds, and the driver is killed then
    proc = _start([str(path), "--storage", url, "--num-cpus", "2"], env=pause.env())
    pause.wait(2, timeout=600)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    started = time.time()
    status = subprocess.run([sys.executable, "-m", "sweeper", "status", "driver", "--storage", url],
                            capture_output=True, text=True, timeout=120)
    seen_gone = {"driver_gone_seen": "driver gone" in status.stdout, "status_s": round(time.time() - started, 1)}
    _finish(proc)
    before = audit(url, "driver")
    again = _start([str(path), "--storage", url, "--num-cpus", "2"])
    out = _finish(again)
    return {"packs_done_before_kill": before["complete_packs"], **seen_gone, "exit_code": again.returncode,
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
    parser = argparse.ArgumentParser(prog="python -m tools.drill", description=__doc__.split("\n\n")[0])
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
