"""One `sweeper submit` of a study on Ray Tune: `StudyRun` owns the lease, the Optuna study, the packs
and the Tune run; `sweeper.sweep.driver.submit` checks the input and drives it.

    with StudyRun.start(spec, path, db) as run:    # the study row created or taken over, the lease held
        run.execute(cluster, num_cpus, ...)        # Ray started (only if there is work), packs run by Tune
    run.result(seconds)

Tune hands the driver's decisions to `PackSearcher` (sweeper.sweep.search), which calls back
`make_pack`, `on_start` and `on_done`. How a pack ended is read from the database, never from Tune:
the pack writes its result there before its last report, and `on_done` tells Optuna what the
database holds, so Optuna and the database cannot disagree about a pack.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time

from ray import tune

from sweeper.db import StudyStatus, TrialStatus

from . import store
from .driver import SubmitResult
from .pack import hyper_columns

TUNE_STORAGE_ENV = "SWEEPER_TUNE_STORAGE"
TEMP_PREFIX = "sweeper-tune-"
_SCRATCH: set[str] = set()
"""The temporary Tune directories of this process's open runs (`abandon` removes them)."""


def abandon() -> None:
    """What a process that gives up waiting for Ray to stop still cleans before it exits: the temporary
    Tune directories of its runs. The study's state is recorded before Ray is stopped (`StudyRun.close`),
    and a later submit treats the lease of a dead driver as free."""
    for path in list(_SCRATCH):
        shutil.rmtree(path, ignore_errors=True)
        _SCRATCH.discard(path)


def plan_fixed_packs(spec) -> list[list[dict]]:
    """Grid and random studies: the points of every pack, fixed in advance (configuration index order)."""
    points = spec.points()
    k = spec.configs_per_trial
    return [[{"config_index": i + j, "point": p} for j, p in enumerate(points[i:i + k])]
            for i in range(0, len(points), k)]


class StudyRun:
    """One `submit` of a study: the lease on it, its Optuna study, its packs, and the Tune run.

    Use it as a context manager (`StudyRun.start(...)`): leaving it ends the lease (the study is
    COMPLETE, or INTERRUPTED with its in-flight packs back to WAITING), stops the Ray it started and
    removes the temporary Tune directory, however the block ends.
    """

    def __init__(self, spec, path: str, db, handle: store.StudyHandle, fixed: list[list[dict]] | None,
                 planned: int):
        self.spec, self.path, self.db, self.handle = spec, path, db, handle
        self.fixed = fixed
        """Grid and random: every pack's points, known in advance. None: proposed as packs start."""
        self.planned = planned
        self.tracker = _Tracker(planned)
        self.ostudy = None
        self.pending: list[dict] = []
        """Packs to run again first (in flight when an earlier driver stopped)."""
        self.next_number = 0
        self.budget = 0
        """Packs this call will start."""
        self.points: dict[int, list[dict]] = {}
        """Points of the packs handed to Tune, by pack number."""
        self.status = StudyStatus.INTERRUPTED
        self._beat = store.LeaseHeartbeat(db, handle.id)
        self._boundary = None
        self._ray_started = False
        self._scratch: str | None = None

    # -----------------------------------------------------------------------------------------------
    # Taking the study, and leaving it

    @classmethod
    def start(cls, spec, path: str, db, *, max_packs: int | None = None) -> StudyRun:
        """Create the study or take it over (raises LeaseHeld/SpecMismatch untouched), then settle what
        an earlier driver left: tell Optuna about packs that ended, collect those to run again."""
        from sweeper.provenance import code_version

        from .search import open_optuna, optuna_name

        fixed = plan_fixed_packs(spec) if spec.search.kind in ("grid", "random") else None
        planned = len(fixed) if fixed is not None else spec.n_trials()
        if spec.search.boundary_fit is not None:
            from .frontier import check_source

            check_source(db, spec)  # StudyError before the study row is written
        handle = store.open_study(db, name=spec.name, spec=spec.to_dict(), source=spec.source,
                                  code_version=code_version(), optuna_study_name=optuna_name(spec.name),
                                  planned_trials=planned)
        run = cls(spec, path, db, handle, fixed, planned)
        run._beat.start()
        try:
            run.ostudy = open_optuna(db.url.render_as_string(hide_password=False), spec)
            run._take_stock(max_packs)
        except BaseException:
            run.close(succeeded=False)
            raise
        return run

    def __enter__(self) -> StudyRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(succeeded=exc_type is None)

    def close(self, *, succeeded: bool) -> None:
        """End the lease first (so the study's state is recorded even if stopping Ray is interrupted),
        then stop Ray and remove the temporary Tune directory (after Ray: its workers write there)."""
        self._beat.stop()
        try:
            done = sum(1 for r in store.packs(self.db, self.handle.id) if r.status in store.FINAL)
            self.status = StudyStatus.COMPLETE if succeeded and done >= self.planned else StudyStatus.INTERRUPTED
            store.close_study(self.db, self.handle.id, self.status)
        finally:
            if self._ray_started:
                import ray

                ray.shutdown()
                self._ray_started = False
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                _SCRATCH.discard(self._scratch)
                self._scratch = None

    def _take_stock(self, max_packs: int | None) -> None:
        """Finished packs are settled (Optuna told what the database holds); unfinished ones are pending."""
        rows = store.packs(self.db, self.handle.id)
        for row in rows:
            if row.status in store.FINAL:
                self._settle(row, ran=False)
            else:
                self.pending.append({"pack": row.number, "points": row.points})
        numbers = [r.number for r in rows]
        self.next_number = max(numbers, default=-1) + 1
        self.budget = self.planned - sum(1 for n in numbers if n < self.planned) + len(self.pending)
        if max_packs is not None:
            self.budget = min(self.budget, max_packs)

    def result(self, seconds: float) -> SubmitResult:
        counts, members = store.study_counts(self.db, self.handle.id)
        t = self.tracker
        return SubmitResult(study=self.spec.name, status=self.status.value, resumed=self.handle.resumed,
                            planned=self.planned, ran=t.ran, counts=counts, members=members, seconds=seconds,
                            overhead=t.overhead(),
                            pack_stops=({"packs": t.pack_stops, "tune": t.tune_pack_stops}
                                        if self.spec.early_warning.pack_stop is not None else {}))

    # -----------------------------------------------------------------------------------------------
    # The Tune run

    def execute(self, cluster, num_cpus: int | None, *, tune_storage: str | None, progress: bool, out) -> None:
        """Start Ray (only if there is work) and run the packs this call owes through Ray Tune."""
        if self.budget <= 0:
            return
        from .local_ray import start_ray

        gpus = 1 if self.spec.execution.gpus > 0 and cluster is None else None
        self._ray_started = start_ray(cluster, num_cpus, gpus)
        self._fit(self._experiment_dir(tune_storage), progress, out)

    def _experiment_dir(self, given: str | None) -> str:
        """The user's directory, or a temporary one (removed by `close`) named after the study and this
        process, so that one left by a SIGKILLed driver can be told apart and removed here."""
        chosen = given or os.environ.get(TUNE_STORAGE_ENV)
        if chosen:
            return chosen
        _remove_orphans(tempfile.gettempdir())
        self._scratch = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{self.spec.name}-{os.getpid()}-")
        _SCRATCH.add(self._scratch)
        return self._scratch

    def _fit(self, experiment_dir: str, progress: bool, out) -> None:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own console table: we draw our own bar
        # Tune's SIGINT handler ends the run quietly and returns as if it were done (with a
        # `Tuner.restore` hint that does not apply here); Ctrl-C must reach `submit` as KeyboardInterrupt.
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        from .search import PackSearcher

        if self.spec.search.boundary_fit is not None:
            from .frontier import BoundaryFilter

            self._boundary = BoundaryFilter.open(self.db, self.spec, self.handle.id)
        stopper = None
        if self.spec.early_warning.enabled and self.spec.early_warning.pack_stop is not None:
            from .stopper import make_pack_stopper

            stopper = make_pack_stopper(self.spec.early_warning.pack_stop)
        bar = _Bar(self.tracker, self.planned, progress, out)
        tuner = tune.Tuner(
            self._trainable(),
            tune_config=tune.TuneConfig(
                search_alg=PackSearcher(self.pending, self.make_pack, self.next_number, self.on_start, self.on_done),
                num_samples=self.budget, max_concurrent_trials=self._concurrency(), reuse_actors=True,
                trial_dirname_creator=lambda t: f"pack_{t.config.get('pack')}_{t.trial_id}",
                trial_name_creator=lambda t: f"pack_{t.config.get('pack')}"),
            run_config=tune.RunConfig(
                name=self.spec.name, storage_path=experiment_dir, verbose=0, callbacks=[bar], stop=stopper,
                failure_config=tune.FailureConfig(max_failures=self.spec.execution.max_failures)),
        )
        try:
            tuner.fit()
        finally:
            bar.close()
            if stopper is not None:
                self.tracker.tune_pack_stops = len(stopper.stopped)

    def _trainable(self):
        """`train_pack` with what every pack needs, asking Ray for the study's CPUs and GPUs per pack."""
        from sweeper.provenance import code_version

        from .pack import PackJob, PausePoint, train_pack

        job = PackJob(source=self.spec.source, path=self.path,
                      storage_url=self.db.url.render_as_string(hide_password=False), study_id=self.handle.id,
                      version=code_version(), pause=PausePoint.from_env())
        execution = self.spec.execution
        return tune.with_resources(tune.with_parameters(train_pack, job=job),
                                   {"cpu": execution.cpus, "gpu": execution.gpus})

    def _concurrency(self) -> int:
        """Packs at once: as many as the cluster's CPUs hold."""
        import ray

        cpus = self.spec.execution.cpus
        return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus)) if cpus else 1

    # -----------------------------------------------------------------------------------------------
    # What the searcher asks of the driver

    def make_pack(self, number: int) -> dict | None:
        """Pack `number`: its points, each a new Optuna trial; None once the study has all its packs."""
        if number >= self.planned:
            return None
        if self.fixed is not None:
            points = self._enqueued([(p["config_index"], p["point"]) for p in self.fixed[number]])
        else:
            first = number * self.spec.configs_per_trial
            count = min(self.spec.configs_per_trial, self.spec.search.configs - first)
            if self.spec.search.kind == "frontier":
                points = self._enqueued(list(enumerate(self._frontier(number, count), start=first)))
            else:
                points = self._asked(first, count)
        return {"pack": number, "points": points}

    def _enqueued(self, chosen: list[tuple[int, dict]]) -> list[dict]:
        """Points chosen here (grid, random, frontier), each recorded as an Optuna trial."""
        from .search import ask_point

        points = []
        for config_index, point in chosen:
            onum, asked = ask_point(self.ostudy, self.spec, fixed=point)
            points.append({"config_index": config_index, "point": asked, "optuna": onum})
        return points

    def _frontier(self, number: int, count: int) -> list[dict]:
        import numpy as np

        from .frontier import propose

        return propose(self.db, self.spec, self.handle.id, count,
                       np.random.default_rng([self.spec.search.seed, number]))

    def _asked(self, first: int, count: int) -> list[dict]:
        """Points the study's Optuna sampler proposes, through the boundary filter when there is one."""
        from .search import ask_filtered, ask_point

        if self._boundary is not None:
            self._boundary.refresh(self.db)
        points = []
        for j in range(count):
            if self._boundary is None:
                onum, point = ask_point(self.ostudy, self.spec)
            else:
                onum, point = ask_filtered(self.ostudy, self.spec, self._boundary.predict, self._boundary.repair)
            points.append({"config_index": first + j, "point": point, "optuna": onum})
        return points

    def on_start(self, pack: dict, trial_id: str) -> None:
        store.put_waiting(self.db, self.handle.id, pack["pack"], pack["points"], trial_id)
        self.points[pack["pack"]] = pack["points"]

    def on_done(self, number: int, errored: bool) -> None:
        """A pack's Ray trial ended. Its row says how: a pack that wrote its result is COMPLETE whatever
        Tune thinks (it may have died after writing); one that did not is FAILED here."""
        row = store.pack(self.db, self.handle.id, number)
        if row.status != TrialStatus.COMPLETE:
            why = "the Ray trial failed after its retries" if errored else "the Ray trial ended without a result"
            store.fail_trial(self.db, self.handle.id, number, why, self._failed_members(number))
            row = store.pack(self.db, self.handle.id, number)  # fail_trial refuses a pack that finished
        self._settle(row, ran=True)

    def _failed_members(self, number: int) -> list[dict]:
        points = self.points.get(number, [])
        return [
            {"pack_index": i, "config_index": p["config_index"], "optuna_trial_number": p.get("optuna"),
             **hyper_columns(self.spec, h),
             "config": {"study": self.spec.name, "point": p["point"], "seed": h.seed}}
            for i, (p, h) in enumerate((p, h) for p in points for h in self.spec.hypers(p["point"]))
        ]

    def _settle(self, row: store.PackRow, *, ran: bool) -> None:
        """Tell Optuna what the database holds of a finished pack, and count it."""
        from .search import tell

        if row.status == TrialStatus.COMPLETE and row.result:
            for verdict in row.result.get("verdicts", []):
                if verdict.get("optuna") is not None:
                    tell(self.ostudy, verdict["optuna"], verdict)
        else:
            reason = row.error or f"pack {row.status.value}"
            for p in row.points:
                if p.get("optuna") is not None:
                    tell(self.ostudy, p["optuna"], {"state": "fail", "reason": reason})
        self.tracker.count(row, ran=ran)


def _remove_orphans(directory: str) -> None:
    """Remove the temporary Tune directories of drivers of this host that died without cleaning up."""
    for entry in os.scandir(directory):
        match = _ORPHAN_RE.fullmatch(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not store.pid_alive(int(match["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)


_ORPHAN_RE = re.compile(re.escape(TEMP_PREFIX) + r".+-(?P<pid>\d+)-[a-z0-9_]+")


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
        self.trial_wall: list[float] = []
        self.train_s: list[float] = []
        self.db_s: list[float] = []

    def count(self, row: store.PackRow, *, ran: bool) -> None:
        """A finished pack, as the database holds it; `ran`: by this call."""
        from sweeper.outcomes import Outcome

        self.finished += 1
        self.ran += ran
        self.failed += row.status == TrialStatus.FAILED
        result = row.result or {}
        counts = result.get("counts", {})
        self.exploded += counts.get(Outcome.EXPLODED.value, 0)
        self.stopped += counts.get(Outcome.STOPPED_EARLY.value, 0)
        if ran and row.status == TrialStatus.COMPLETE:
            self.pack_stops += bool(result.get("warnings", {}).get("pack_stopped"))
            timing = result.get("timing", {})
            if timing.get("train_s") is not None:
                self.train_s.append(timing["train_s"] + (timing.get("eval_s") or 0))

    def overhead(self) -> dict[str, float]:
        if not self.train_s or not self.trial_wall:
            return {}
        train = sum(self.train_s)
        wall = sum(self.trial_wall)
        return {"train_s": train, "trial_wall_s": wall, "db_s": sum(self.db_s),
                "overhead_fraction": (wall - train) / train if train else math.nan}


class _Bar(tune.Callback):
    """The progress bar: packs done / planned, running, members exploded and stopped early, ETA. It
    also times the Ray trials and the packs' final database writes (their last report's `db_s`)."""

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
        if result.get("done"):
            if result.get("db_s") is not None:
                self.tracker.db_s.append(result["db_s"])
            return
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
