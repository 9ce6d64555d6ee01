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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeper.study import StudySpec

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
    memory: dict[str, int] = field(default_factory=dict)
    """Members by `memory_outcome` (stable ones split by their memory judgement: "stable (memory)",
    "stable (no memory)", "stable" without one), over the whole study; empty when not counted."""
    seconds: float = 0.0
    overhead: dict[str, float] = field(default_factory=dict)
    pack_stops: dict[str, int] = field(default_factory=dict)
    """With `early_warning.pack_stop`: packs stopped whole by this call ("packs", from their results)
    and trials Tune's PackStopper ended ("tune"); the two agree unless a pack wrote no result."""


def submit(path: str | StudySpec, *, storage: str | None = None, address: str | None = None,
           num_cpus: int | str | None = None, progress: bool = True, max_packs: int | None = None,
           out=sys.stderr, tune_storage: str | None = None) -> SubmitResult:
    """Run (or resume) the study in `path`. `max_packs` caps the packs this call starts (for tests).

    `path` is a study file, or a `StudySpec` built in Python (`sweeper.study.study_from_dict`) whose
    `source` is the study's TOML text: the workers parse that text again.

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
    from sweeper.study import StudyError, StudySpec, load_study

    if isinstance(path, StudySpec):
        spec, where = path, path.path or f"<{path.name}>"
        if not spec.source.strip():
            raise StudyError("source", "empty; a study built in Python needs its TOML text (the workers parse it)",
                             where)
    else:
        spec, where = load_study(path), str(path)  # StudyError: nothing touched yet
    db = _open_database(storage)
    try:
        from .run import StudyRun

        with StudyRun.start(spec, where, db, max_packs=max_packs) as run:
            run.execute(cluster, cpus, tune_storage=tune_storage, progress=progress, out=out)
        result = run.result(time.time() - started)
        from sweeper.db.queries import study_progress

        return replace(result, memory=study_progress(db, spec.name)[0]["memory_outcomes"])
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
    from sweeper.outcomes import STABLE_MEMORY, STABLE_NO_MEMORY

    from .store import FINAL

    finished = sum(r.counts.get(s.value, 0) for s in FINAL)
    lines = [f"study {r.study}: {r.status}{' (resumed)' if r.resumed else ''}; "
             f"{finished}/{r.planned} trials finished, {r.ran} run now, in {r.seconds:.1f} s"]
    if r.counts:
        lines.append("  trials:  " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(r.counts.items())))
    if r.memory and any(r.memory.get(k) for k in (STABLE_MEMORY, STABLE_NO_MEMORY)):
        # stable members counted once, by their memory judgement; "stable" alone: without one
        shown = {(f"{k} (not judged)" if k == "stable" else k): v for k, v in r.memory.items() if v}
        lines.append("  members: " + ", ".join(f"{k} {v}" for k, v in sorted(shown.items())))
    elif r.members:
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
