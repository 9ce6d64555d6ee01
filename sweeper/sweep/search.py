"""Optuna picks the configurations; a Ray Tune Searcher hands them to Tune as packs.

Why not Ray's OptunaSearch: it hard-codes a no-op pruner, tells Optuna COMPLETE with the last
value for trials a stopper ended, asks one configuration per Ray trial, and keeps its state in a
pickle beside the experiment. Here one Optuna trial is one configuration (its seeds are members of
the same pack), a Ray trial carries `configs_per_trial` of them, and Optuna hears the verdicts of
`sweeper.sweep.verdict`: COMPLETE (with an `instability` constraint), FAIL or PRUNED.

Every kind of search goes through Optuna, so every study can be opened with `optuna-dashboard`:
- grid and random: the points are fixed in advance (`StudySpec.points()`) and enqueued, so the
  Optuna trial records exactly the configuration that ran;
- optuna: the study's sampler (TPE, GP, CMA-ES, NSGA-II) proposes each point when a pack starts.

The Optuna storage is the trial database itself (Optuna's tables beside sweeper's `sw_` tables). The
searcher runs in the driver only (ask/tell), so Optuna has one writer.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from .verdict import CONSTRAINT, REMEMBERS_ATTR


def optuna_name(study_name: str) -> str:
    return f"sweeper/{study_name}"


def _sampler(spec):
    import optuna

    seed = spec.search.seed
    if spec.search.kind != "optuna":
        return optuna.samplers.RandomSampler(seed=seed)  # never consulted: every point is enqueued
    kind = spec.search.sampler or "tpe"
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise ValueError(f"unknown sampler {kind!r}")


_PG_LOCK_KEY = 0x5357454551  # serializes Optuna's table creation between drivers sharing a database


@contextlib.contextmanager
def _creation_lock(storage_url: str):
    """Optuna creates its tables (and PostgreSQL enum types) without a lock: two drivers starting at
    once on a fresh database collide. Hold a cross-process lock while the storage is set up."""
    import sqlalchemy as sa

    url = sa.make_url(storage_url)
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                    conn.commit()
        finally:
            engine.dispose()
    elif url.database and url.database != ":memory:":
        import fcntl

        with open(f"{url.database}.optuna-lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        yield


def open_optuna(storage_url: str, spec):
    """The study's Optuna study, created on first use, in the trial database."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs: dict[str, Any] = {}
    if storage_url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    with _creation_lock(storage_url):
        storage = optuna.storages.RDBStorage(storage_url, **kwargs)
        return optuna.create_study(storage=storage, study_name=optuna_name(spec.name), load_if_exists=True,
                                   directions=[o.direction for o in spec.objectives], sampler=_sampler(spec))


def _suggest(trial, spec) -> dict[str, float]:
    point = {}
    for axis in spec.space:
        if axis.values is not None:
            point[axis.name] = float(trial.suggest_categorical(axis.name, list(axis.values)))
        else:
            point[axis.name] = float(trial.suggest_float(axis.name, axis.low, axis.high, log=axis.log))
    return point


def ask_point(ostudy, spec, fixed: dict[str, float] | None = None) -> tuple[int, dict[str, float]]:
    """A new Optuna trial: (its number, the configuration). `fixed` enqueues a given point."""
    if fixed is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ostudy.enqueue_trial(fixed, skip_if_exists=False)
    trial = ostudy.ask()
    return trial.number, _suggest(trial, spec)


def ask_filtered(ostudy, spec, predict: Callable[[dict[str, float]], float | None],
                 repair: Callable[[dict[str, float]], dict[str, float] | None] | None = None,
                 ) -> tuple[int, dict[str, float]]:
    """`ask_point`, skipping proposals predicted to explode (`[search] boundary_fit`).

    A proposal with predict(point) < search.min_p_stable is not trained: its Optuna trial is told
    FAIL with the reason "skipped: predicted to explode (P(stable)=...)". After search.max_skips
    skips in a row, the most stable proposal seen, moved onto the stable side by `repair` when it can
    be, is enqueued (a new Optuna trial recording exactly what is trained) and trained."""
    threshold, best = spec.search.min_p_stable, None
    for _ in range(spec.search.max_skips):
        number, point = ask_point(ostudy, spec)
        p = predict(point)
        if p is None or p >= threshold:
            return number, point
        tell(ostudy, number, {"state": "fail",
                              "reason": f"skipped: predicted to explode (P(stable)={p:.3g} < {threshold:g})"})
        if best is None or p > best[0]:
            best = (p, point)
    if best is None:
        return ask_point(ostudy, spec)
    moved = repair(best[1]) if repair is not None else None
    return ask_point(ostudy, spec, fixed=moved or best[1])


def tell(ostudy, number: int, verdict: dict) -> None:
    """Tell Optuna one configuration's verdict; a no-op when that trial is already finished."""
    import optuna
    from optuna.trial import TrialState

    storage = ostudy._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(ostudy._study_id, number)
    if storage.get_trial(trial_id).state.is_finished():
        return
    trial = optuna.trial.Trial(ostudy, trial_id)
    trial.set_user_attr("sweeper_verdict", verdict.get("reason", ""))
    if verdict.get(REMEMBERS_ATTR) is not None:  # feasible is stable; useful (it remembers) is told here
        trial.set_user_attr(REMEMBERS_ATTR, float(verdict[REMEMBERS_ATTR]))
    state = verdict["state"]
    if state == "complete":
        instability = verdict.get("instability")
        if instability is not None and math.isfinite(instability):
            trial.set_constraint(CONSTRAINT, float(instability))
        ostudy.tell(number, verdict["values"] if len(verdict["values"]) > 1 else verdict["values"][0])
    elif state == "pruned":
        ostudy.tell(number, state=TrialState.PRUNED)
    else:
        ostudy.tell(number, state=TrialState.FAIL)


class Pack(dict):
    """{"pack": number, "points": [{"config_index", "point", "optuna"}]}: a Tune trial's config."""


class PackSearcher(Searcher):
    """Hands Tune one pack per trial; tells the driver when a pack's Ray trial ends.

    `pending`: packs to run first (interrupted ones on a resume, in order). `make_pack(number)`: a
    fresh pack, or None when the study has all it needs. `on_start(pack, trial_id)` and
    `on_done(number, errored)`: the driver's bookkeeping. Tune's results carry progress only: how a
    pack ended is read from the database, its one record.
    """

    def __init__(self, pending: list[Pack], make_pack: Callable[[int], Pack | None], next_number: int,
                 on_start: Callable[[Pack, str], None], on_done: Callable[[int, bool], None]):
        super().__init__(metric=None, mode=None)
        self._pending = deque(pending)
        self._make_pack = make_pack
        self._next = next_number
        self._on_start, self._on_done = on_start, on_done
        self._live: dict[str, int] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    # The study's state lives in the database, not in Tune's experiment folder: Tune pickles its
    # searcher with the experiment, so the live handles (database, Optuna study) are left out, and
    # resuming goes through `submit` again, never `Tuner.restore`.
    def __getstate__(self):
        return {"_live": dict(self._live)}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        return None

    def suggest(self, trial_id: str):
        if self._pending:
            pack = self._pending.popleft()
        else:
            pack = self._make_pack(self._next)
            if pack is None:
                return Searcher.FINISHED
            self._next += 1
        self._on_start(pack, trial_id)
        self._live[trial_id] = pack["pack"]
        return dict(pack)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number = self._live.pop(trial_id, None)
        if number is not None:
            self._on_done(number, error)
