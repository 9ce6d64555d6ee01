"""`sweeper submit`: run a study on Ray Tune, with Optuna choosing configurations, into the database.

    result = submit("studies/quickstart.toml")                       # local Ray, SQLite file
    result = submit(path, storage="postgresql://...", address="auto")  # an existing cluster

Order of work, so that bad input changes nothing: the study file and the storage URL are validated
first; then the database is migrated and the study row created (or taken over to resume); only
then does Ray start. Resuming is the same call: packs that finished are kept, packs that were in
flight when a driver died run again under the same numbers and Optuna trials, and the study goes on
until it has all its packs.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from sweeper.db import StudyStatus, TrialStatus

HEARTBEAT_S = 5.0


@dataclass
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


def _configs(spec) -> int:
    return spec.search.configs


def plan_fixed_packs(spec) -> list[list[dict]]:
    """Grid and random studies: the points of every pack, fixed in advance (configuration index order)."""
    points = spec.points()
    k = spec.configs_per_trial
    return [[{"config_index": i + j, "point": p} for j, p in enumerate(points[i:i + k])]
            for i in range(0, len(points), k)]


def submit(path: str, *, storage: str | None = None, address: str | None = None, num_cpus: int | None = None,
           progress: bool = True, max_packs: int | None = None, out=sys.stderr,
           tune_storage: str | None = None) -> SubmitResult:
    """Run (or resume) the study in `path`. `max_packs` caps the packs this call starts (for tests).

    `tune_storage`: Ray Tune's experiment directory (default $SWEEPER_TUNE_STORAGE, else a temporary
    directory on this machine). On a cluster of several hosts it must be shared storage that every
    node can write (NFS path or s3://...): Ray Tune refuses to run a trial on a node that cannot see it.
    """
    from sweeper.db import StorageError, default_url, open_db, parse_url, upgrade
    from sweeper.study import load_study

    from . import store
    from .pack import code_version

    started = time.time()
    spec = load_study(path)  # StudyError: nothing touched yet
    try:
        url = parse_url(storage or default_url())  # nothing touched yet
    except StorageError as exc:
        raise StorageError(f"storage (--storage or $SWEEPER_DB): {exc}") from None
    url_text = url.render_as_string(hide_password=False)
    try:
        upgrade(url)
        db = open_db(url)
    except StorageError as exc:
        raise StorageError(f"storage (--storage or $SWEEPER_DB): {exc}") from None
    fixed = plan_fixed_packs(spec) if spec.search.kind in ("grid", "random") else None
    if spec.search.boundary_fit is not None:
        from sweeper.sweep.frontier import check_source  # StudyError before anything is written

        check_source(db, spec)
    planned = len(fixed) if fixed is not None else spec.n_trials()
    from .search import open_optuna, optuna_name

    handle = store.open_study(db, name=spec.name, spec=spec.to_dict(), source=spec.source,
                              code_version=code_version(), optuna_study_name=optuna_name(spec.name),
                              planned_trials=planned)
    status = StudyStatus.INTERRUPTED
    ray_started = False
    beat = _Heartbeat(db, handle.id)
    beat.start()
    tracker = _Tracker(planned)
    try:
        ostudy = open_optuna(url_text, spec)
        pending = _reconcile(db, handle.id, ostudy, spec, tracker)
        existing = {r.number for r in store.packs(db, handle.id)}
        next_number = max(existing, default=-1) + 1
        budget = planned - len([n for n in existing if n < planned]) + len(pending)
        if max_packs is not None:
            budget = min(budget, max_packs)
        if budget > 0:
            from .local_ray import start_ray

            ray_started = start_ray(address, num_cpus, 1 if spec.execution.gpus > 0 and not address else None)
            _run_tune(spec, path, url_text, db, handle, ostudy, pending, next_number, planned, fixed,
                      budget, tracker, progress, out, tune_storage=tune_storage)
        rows = store.packs(db, handle.id)
        done = [r for r in rows if r.status in store.FINAL]
        if len(done) >= planned:
            status = StudyStatus.COMPLETE
    finally:
        beat.stop()
        store.close_study(db, handle.id, status)
        if ray_started:
            import ray

            ray.shutdown()
    counts, members = _study_counts(db, handle.id)
    db.dispose()
    return SubmitResult(study=spec.name, status=status.value, resumed=handle.resumed, planned=planned,
                        ran=tracker.ran, counts=counts, members=members, seconds=time.time() - started,
                        overhead=tracker.overhead(),
                        pack_stops=({"packs": tracker.pack_stops, "tune": tracker.tune_pack_stops}
                                    if spec.early_warning.pack_stop is not None else {}))


def _reconcile(db, study_id, ostudy, spec, tracker) -> list[dict]:
    """Finish what a dead driver left: tell Optuna about packs that ended, collect those that did not."""
    from . import store
    from .search import tell

    pending = []
    for row in store.packs(db, study_id):
        if row.status == TrialStatus.COMPLETE and row.result:
            for v in row.result.get("verdicts", []):
                if v.get("optuna") is not None:
                    tell(ostudy, v["optuna"], v)
            tracker.count_final(row.result)
        elif row.status in store.FINAL:
            for p in row.points:
                if p.get("optuna") is not None:
                    tell(ostudy, p["optuna"], {"state": "fail", "reason": f"pack {row.status.value}"})
            tracker.finished += 1
        else:
            pending.append({"pack": row.number, "points": row.points})
    return pending


def _run_tune(spec, path, url_text, db, handle, ostudy, pending, next_number, planned, fixed, budget,
              tracker, progress, out, tune_storage=None) -> None:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own console table: we draw our own bar
    import ray
    from ray import tune

    from . import store
    from .pack import code_version, train_pack
    from .search import PackSearcher, ask_point, ask_filtered, tell

    # The frontier proposer and the boundary filter live in sweeper.analysis (they fit the stability
    # boundary on the finished members); imported lazily, only by the studies that use them.
    boundary_filter = None
    if spec.search.boundary_fit is not None:
        from sweeper.sweep.frontier import BoundaryFilter

        boundary_filter = BoundaryFilter.open(db, spec, handle.id)

    def make_pack(number: int):
        if number >= planned:
            return None
        if fixed is not None:
            points = []
            for p in fixed[number]:
                onum, point = ask_point(ostudy, spec, fixed=p["point"])
                points.append({**p, "point": point, "optuna": onum})
            return {"pack": number, "points": points}
        k = spec.configs_per_trial
        first = number * k
        count = min(k, spec.search.configs - first)
        points = []
        if spec.search.kind == "frontier":
            import numpy as np

            from sweeper.sweep.frontier import propose

            proposed = propose(db, spec, handle.id, count, np.random.default_rng([spec.search.seed, number]))
            for j, p in enumerate(proposed):
                onum, point = ask_point(ostudy, spec, fixed=p)
                points.append({"config_index": first + j, "point": point, "optuna": onum})
            return {"pack": number, "points": points}
        if boundary_filter is not None:
            boundary_filter.refresh(db)
        for j in range(count):
            if boundary_filter is None:
                onum, point = ask_point(ostudy, spec)
            else:
                onum, point = ask_filtered(ostudy, spec, boundary_filter.predict, boundary_filter.repair)
            points.append({"config_index": first + j, "point": point, "optuna": onum})
        return {"pack": number, "points": points}

    def on_start(pack, trial_id):
        store.put_waiting(db, handle.id, pack["pack"], pack["points"], trial_id)
        tracker.points[pack["pack"]] = pack["points"]

    def on_done(number: int, result: dict | None, error: bool):
        import json

        points = tracker.points.get(number, [])
        if not error and result and result.get("result_json"):
            outcome = json.loads(result["result_json"])
            for v in outcome.get("verdicts", []):
                if v.get("optuna") is not None:
                    tell(ostudy, v["optuna"], v)
            tracker.count_final(outcome, ran=True)
            return
        why = "the Ray trial failed after its retries" if error else "the Ray trial ended without a result"
        failed_members = [
            {"pack_index": i, "config_index": p["config_index"], "optuna_trial_number": p.get("optuna"),
             "seed": h.seed, "lr": h.lr, "plasticity": h.plasticity, "ratio": h.ratio, "gamma": h.gamma,
             "clip": h.clip, "config": {"study": spec.name, "point": p["point"], "seed": h.seed}}
            for i, (p, h) in enumerate((p, h) for p in points for h in spec.hypers(p["point"]))
        ]
        store.fail_trial(db, handle.id, number, why, failed_members)
        for p in points:
            if p.get("optuna") is not None:
                tell(ostudy, p["optuna"], {"state": "fail", "reason": why})
        tracker.failed += 1
        tracker.finished += 1
        tracker.ran += 1

    searcher = PackSearcher(pending, make_pack, next_number, on_start, on_done)
    cpus = spec.execution.cpus
    total_cpus = ray.cluster_resources().get("CPU", 1)
    concurrency = max(1, int(total_cpus // cpus)) if cpus else 1
    trainable = tune.with_resources(
        tune.with_parameters(train_pack, source=spec.source, path=str(path), storage_url=url_text,
                             study_id=handle.id, version=code_version()),
        {"cpu": cpus, "gpu": spec.execution.gpus})
    tune_dir = tune_storage or os.environ.get("SWEEPER_TUNE_STORAGE") or tempfile.mkdtemp(prefix="sweeper-tune-")
    bar = _Bar(tracker, planned, progress, out)
    stopper = None
    if spec.early_warning.enabled and spec.early_warning.pack_stop is not None:
        from .stopper import make_pack_stopper

        stopper = make_pack_stopper(spec.early_warning.pack_stop)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget, max_concurrent_trials=concurrency,
                                    reuse_actors=True,
                                    trial_dirname_creator=lambda t: f"pack_{t.config.get('pack')}_{t.trial_id}",
                                    trial_name_creator=lambda t: f"pack_{t.config.get('pack')}"),
        run_config=tune.RunConfig(name=spec.name, storage_path=tune_dir, verbose=0, callbacks=[bar], stop=stopper,
                                  failure_config=tune.FailureConfig(max_failures=spec.execution.max_failures)),
    )
    try:
        tuner.fit()
    finally:
        bar.close()
        if stopper is not None:
            tracker.tune_pack_stops = len(stopper.stopped)


class _Tracker:
    """Counts for the progress bar and the final report."""

    def __init__(self, planned: int):
        self.planned = planned
        self.finished = 0
        self.failed = 0
        self.ran = 0
        self.exploded = 0
        self.stopped = 0
        self.pack_stops = 0
        """Packs whose survivors were stopped by the pack rule (counted from the packs' results)."""
        self.tune_pack_stops = 0
        """Trials Tune's PackStopper stopped (counted by the stopper)."""
        self.running: dict[str, dict] = {}
        self.points: dict[int, list] = {}
        self.trial_wall: list[float] = []
        self.train_s: list[float] = []
        self.db_s: list[float] = []

    def count_final(self, outcome: dict, ran: bool = False) -> None:
        self.finished += 1
        counts = outcome.get("counts", {})
        self.exploded += counts.get("exploded", 0)
        self.stopped += counts.get("stopped_early", 0)
        if ran:
            self.pack_stops += bool(outcome.get("warnings", {}).get("pack_stopped"))
            self.ran += 1
            timing = outcome.get("timing", {})
            if timing.get("train_s") is not None:
                self.train_s.append(timing["train_s"] + (timing.get("eval_s") or 0))
            if timing.get("db_s") is not None:
                self.db_s.append(timing["db_s"])

    def overhead(self) -> dict[str, float]:
        if not self.train_s or not self.trial_wall:
            return {}
        train = sum(self.train_s)
        wall = sum(self.trial_wall)
        return {"train_s": train, "trial_wall_s": wall, "db_s": sum(self.db_s),
                "overhead_fraction": (wall - train) / train if train else math.nan}


def _tune_callback_base():
    from ray import tune

    return tune.Callback


class _Bar(_tune_callback_base()):
    """The progress bar: packs done / planned, running, members exploded and stopped early, ETA."""

    def __init__(self, tracker: _Tracker, planned: int, enabled: bool, out):
        self.tracker = tracker
        self.bar = None
        self._started: dict[str, float] = {}
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=planned, initial=tracker.finished, unit="trial", desc="study",
                            dynamic_ncols=True, file=out, mininterval=0.5)
            self._refresh()

    def __getstate__(self):  # Tune pickles its callbacks with the experiment; the bar stays here
        return {"bar": None, "tracker": _Tracker(self.tracker.planned), "_started": {}}

    def _refresh(self) -> None:
        if self.bar is None:
            return
        live = self.tracker.running.values()
        self.bar.n = self.tracker.finished
        self.bar.set_postfix(running=len(self.tracker.running),
                             exploded=self.tracker.exploded + sum(r.get("exploded", 0) for r in live),
                             stopped=self.tracker.stopped + sum(r.get("stopped", 0) for r in live),
                             failed=self.tracker.failed, refresh=False)
        self.bar.update(0)  # redraws at most every mininterval

    def on_trial_start(self, iteration, trials, trial, **info):
        self._started[trial.trial_id] = time.time()
        self.tracker.running[trial.trial_id] = {}
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not result.get("done"):
            self.tracker.running[trial.trial_id] = {k: result.get(k, 0) for k in ("exploded", "stopped")}
            self._refresh()

    def _ended(self, trial) -> None:
        self.tracker.running.pop(trial.trial_id, None)
        start = self._started.pop(trial.trial_id, None)
        if start is not None:
            self.tracker.trial_wall.append(time.time() - start)
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._started[trial.trial_id] = time.time()

    def close(self) -> None:
        if self.bar is not None:
            self._refresh()
            self.bar.close()
            self.bar = None


class _Heartbeat:
    """Refreshes the driver's lease on the study every few seconds, from a daemon thread."""

    def __init__(self, db, study_id: int):
        self.db, self.study_id = db, study_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        from . import store

        while not self._stop.wait(HEARTBEAT_S):
            try:
                store.heartbeat(self.db, self.study_id)
            except Exception:  # a missed beat is harmless; the next one retries
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _study_counts(db, study_id: int) -> tuple[dict[str, int], dict[str, int]]:
    import sqlalchemy as sa

    from sweeper.db import Member, Trial

    with db.read_session() as s:
        packs = dict(s.execute(sa.select(Trial.status, sa.func.count()).where(Trial.study_id == study_id)
                               .group_by(Trial.status)).all())
        members = dict(s.execute(sa.select(Member.outcome, sa.func.count()).where(Member.study_id == study_id)
                                 .group_by(Member.outcome)).all())
    return ({str(getattr(k, "value", k)): v for k, v in packs.items()},
            {str(getattr(k, "value", k)): v for k, v in members.items()})


def format_result(r: SubmitResult) -> str:
    lines = [f"study {r.study}: {r.status}{' (resumed)' if r.resumed else ''}; "
             f"{sum(r.counts.get(k, 0) for k in ('COMPLETE', 'FAILED', 'PRUNED'))}/{r.planned} trials finished, "
             f"{r.ran} run now, in {r.seconds:.1f} s",
             "  trials:  " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(r.counts.items())),
             "  members: " + ", ".join(f"{k} {v}" for k, v in sorted(r.members.items()))]
    if r.pack_stops:
        lines.append(f"  packs stopped whole (early_warning.pack_stop): {r.pack_stops['packs']} "
                     f"(Tune's PackStopper ended {r.pack_stops['tune']} trials)")
    if r.overhead:
        o = r.overhead
        lines.append(f"  time: training {o['train_s']:.1f} s in {o['trial_wall_s']:.1f} s of Ray trials "
                     f"(Ray + database overhead {100 * o['overhead_fraction']:.1f}% of training; "
                     f"database writes {o['db_s']:.2f} s)")
    return "\n".join(lines)
