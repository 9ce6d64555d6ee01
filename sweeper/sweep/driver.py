"""`sweeper submit`: run a study on Ray Tune, with Optuna choosing configurations, into the database.

    result = submit("studies/quickstart.toml")                       # local Ray, SQLite file
    result = submit(path, storage="postgresql://...", address="auto")  # an existing cluster

Order of work, so that bad input changes nothing: the study file, the flags (--num-cpus, --address:
a cluster must answer) and the storage URL are checked first; then the database is migrated and the
study row created or taken over (`StudyRun.start`); only then does Ray start (`StudyRun.execute`).
Resuming is the same call: packs that finished are kept, packs that were in flight when a driver
died run again under the same numbers and Optuna trials, and the study goes on until it has all
its packs.

The run itself is `sweeper.sweep.run.StudyRun`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

# Light at import (no Ray, no torch, no SQLAlchemy): a refused flag is answered in a second or two.


@dataclass(frozen=True)
class SubmitResult:
    study: str
    status: str
    resumed: bool
    planned: int
    ran: int
    """Packs run by this call."""
    counts: dict[str, int] = field(default_factory=dict)
    """Packs by final status, over the whole study."""
    members: dict[str, int] = field(default_factory=dict)
    """Members by outcome, over the whole study."""
    seconds: float = 0.0
    overhead: dict[str, float] = field(default_factory=dict)
    pack_stops: dict[str, int] = field(default_factory=dict)
    """With `early_warning.pack_stop`: packs stopped whole by this call ("packs", from their results)
    and trials Tune's PackStopper ended ("tune"); the two agree unless a pack wrote no result."""


def submit(path: str, *, storage: str | None = None, address: str | None = None,
           num_cpus: int | str | None = None, progress: bool = True, max_packs: int | None = None,
           out=sys.stderr, tune_storage: str | None = None) -> SubmitResult:
    """Run (or resume) the study in `path`. `max_packs` caps the packs this call starts (for tests).

    `tune_storage`: Ray Tune's experiment directory (default $SWEEPER_TUNE_STORAGE, else a temporary
    directory on this machine, removed when the call ends). On a cluster of several hosts it must be
    shared storage that every node can write (NFS path or s3://...): Ray Tune refuses to run a trial
    on a node that cannot see it. KeyboardInterrupt (Ctrl-C) leaves the study INTERRUPTED and is
    raised again: the same call resumes it.
    """
    from .local_ray import FlagError, check_address, check_num_cpus

    started = time.time()
    cpus = check_num_cpus(num_cpus)  # FlagError: nothing touched yet
    if cpus is not None and address:
        raise FlagError("--num-cpus", "sets the CPUs of the private local Ray; with --address the cluster's "
                                      "own CPUs are used, so leave it out")
    cluster = check_address(address)  # a cluster that answers now, or none
    from sweeper.study import load_study

    spec = load_study(path)  # StudyError: nothing touched yet
    db = _open_database(storage)
    try:
        from .run import StudyRun

        with StudyRun.start(spec, str(path), db, max_packs=max_packs) as run:
            run.execute(cluster, cpus, tune_storage=tune_storage, progress=progress, out=out)
        return run.result(time.time() - started)
    finally:
        db.dispose()


def _open_database(storage: str | None):
    """Validate the URL (nothing touched yet), then migrate and open the database."""
    from sweeper.db import StorageError, default_url, open_db, parse_url, upgrade

    try:
        url = parse_url(storage or default_url())
        upgrade(url)
        return open_db(url)
    except StorageError as exc:
        raise StorageError(f"storage (--storage or $SWEEPER_DB): {exc}") from None


def format_result(r: SubmitResult) -> str:
    from .store import FINAL

    finished = sum(r.counts.get(s.value, 0) for s in FINAL)
    lines = [f"study {r.study}: {r.status}{' (resumed)' if r.resumed else ''}; "
             f"{finished}/{r.planned} trials finished, {r.ran} run now, in {r.seconds:.1f} s"]
    if r.counts:
        lines.append("  trials:  " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(r.counts.items())))
    if r.members:
        lines.append("  members: " + ", ".join(f"{k} {v}" for k, v in sorted(r.members.items())))
    if r.pack_stops:
        lines.append(f"  packs stopped whole (early_warning.pack_stop): {r.pack_stops['packs']} "
                     f"(Tune's PackStopper ended {r.pack_stops['tune']} trials)")
    if r.overhead:
        o = r.overhead
        lines.append(f"  time: training {o['train_s']:.1f} s in {o['trial_wall_s']:.1f} s of Ray trials "
                     f"(Ray + database overhead {100 * o['overhead_fraction']:.1f}% of training; "
                     f"database writes {o['db_s']:.2f} s)")
    return "\n".join(lines)
