"""The Ray Tune trainable: one Ray trial trains one pack of members in one engine call.

A pack is `configs_per_trial` configurations x the study's seeds, trained as one population (one
tensor program). It reads top to bottom as

    claim -> _train -> _evaluate -> _member_rows -> _pack_result -> store.finish_trial -> last report

A study of a fast-weight family (docs/families.md) trains its pack as a `FamilyPopulation`, evaluates
it with the fast state running and held at 0 (the `eval_mem_acc_frozen` column), and writes the
families' per-batch metrics (fast_norm, grad_fast, ...). Its early-warning watcher reads the same
batches through the role table of `sweeper.warn.signals` (grad_fast in the ephemeral gradient's
role, fast_norm in w_eph's, ...).

It reports progress to Tune every `report_every` batches and writes everything it found (members,
their sampled metrics, warning events, per-configuration verdicts) to the trial database in one
transaction at its end. Tune carries progress and a done flag only: the database is the one record
of how a pack ended, and the driver reads it from there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweeper.engine.families.metrics import FAMILY_METRIC_NAMES
from sweeper.engine.metrics import EVERY_STEP_NAMES, METRIC_NAMES
from sweeper.outcomes import FINISHED, Outcome

from .verdict import judge

PAUSE_ENV = "SWEEPER_TEST_PAUSE"


@dataclass(frozen=True)
class PausePoint:
    """For fault tests: hold every pack at a batch until told to go on. `SWEEPER_TEST_PAUSE=DIR:N`.

    At its first report at or after batch N a pack writes `DIR/paused-<pack>` (holding the worker's
    pid) and waits until `DIR/go-<pack>` exists, so a test kills a driver or a worker at a known
    point rather than after a sleep. The driver reads the variable and hands it to its packs (so it
    reaches workers of a Ray started earlier); without it nothing is held and the cost is one `is
    None` per report.
    """

    directory: str
    batch: int
    timeout_s: float = 600.0

    @classmethod
    def from_env(cls) -> PausePoint | None:
        text = os.environ.get(PAUSE_ENV)
        if not text:
            return None
        directory, _, batch = text.rpartition(":")
        return cls(directory, int(batch))

    def hold(self, pack: int) -> None:
        paused = os.path.join(self.directory, f"paused-{pack}")
        with open(paused + ".part", "w") as f:
            f.write(str(os.getpid()))
        os.replace(paused + ".part", paused)  # whole or absent: a test reads the pid as soon as it appears
        go = os.path.join(self.directory, f"go-{pack}")
        deadline = time.monotonic() + self.timeout_s
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass(frozen=True)
class PackJob:
    """What every pack of a study is handed besides its own points (Tune's `with_parameters`)."""

    source: str
    """The study file's text, parsed again on the worker (the file need not exist there)."""
    path: str
    storage_url: str
    study_id: int
    version: str
    """`sweeper.provenance.code_version()` of the driver, stored on every member."""
    pause: PausePoint | None = None


@dataclass(frozen=True)
class Trained:
    """A pack after its training loop."""

    pop: Any
    """The `Population`: its members' summaries, and the survivors to evaluate."""
    hypers: list
    owners: list[dict]
    """Per member: the point (config_index, point, optuna) it belongs to."""
    history: list[list[dict[str, Any]]]
    """Per member: its sampled per-step metrics."""
    events: list[dict[str, Any]]
    """Early-warning events (alarms, and members stopped with their pack)."""
    stop_step: dict[int, int]
    progress: dict[str, Any]
    """The last progress, as reported (or, after a pack stop, as about to be reported)."""
    pack_stopped: bool
    seconds: float


def train_pack(config: dict, *, job: PackJob) -> None:
    """The function Ray Tune runs for each trial. `config`: {"pack": number, "points": [...]}."""
    import torch
    from ray import tune

    from sweeper.db import open_db
    from sweeper.study import parse_study

    from . import store

    spec = parse_study(job.source, job.path)
    torch.set_num_threads(max(1, int(spec.execution.cpus)))
    device = _device(spec.run.train.device)
    number = int(config["pack"])
    db = open_db(job.storage_url)
    try:
        attempt, done = store.claim_trial(db, job.study_id, number, ray_trial_id=tune.get_context().get_trial_id(),
                                          device=device)
        if done is not None:  # finished by an earlier attempt that died before Ray heard of it
            tune.report({**done.get("progress", {}), "done": 1})
            return
        trained = _train(spec, db, number, config["points"], job.pause, tune.report)
        evaluated, eval_s = _evaluate(spec, trained.pop)
        wall = trained.seconds + eval_s
        members = _member_rows(spec, trained, evaluated, wall_time_s=wall, device=device, version=job.version)
        result = _pack_result(spec, trained, members, eval_s)
        t0 = time.time()
        store.finish_trial(db, job.study_id, number, attempt, members=members, history=trained.history,
                           result=result, wall_time_s=wall, warnings=trained.events)
        # Written first, reported second: when Tune (or its PackStopper) ends the trial on this
        # report, the driver already finds the pack's result in the database.
        tune.report({**trained.progress, "done": 1, "db_s": time.time() - t0})
    finally:
        db.dispose()


def _device(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


# ---------------------------------------------------------------------------------------------------
# Train


def _train(spec, db, number: int, points: list[dict], pause: PausePoint | None,
           report: Callable[[dict], None]) -> Trained:
    """Train the pack's members as one population; report progress; stop members and packs that warn."""
    from .stopper import pack_stop_due

    started = time.time()
    owners = [p for p in points for _ in spec.hypers(p["point"])]
    hypers = [h for p in points for h in spec.hypers(p["point"])]
    if spec.is_family:
        from sweeper.engine.families.population import FamilyPopulation

        pop = FamilyPopulation(spec.run, hypers)
    else:
        from sweeper.engine.population import Population

        pop = Population(spec.run, hypers)
    history: list[list[dict[str, Any]]] = [[] for _ in hypers]
    warner, events, stop_step = _warner(spec, db, hypers), [], {}
    pack_stop = spec.early_warning.pack_stop if warner is not None else None
    every, last_batch = spec.execution.report_every, spec.run.train.batches - 1
    progress: dict[str, Any] = {}
    pack_stopped = held = False
    m = None
    for m in pop.run():
        _record(history, m)
        if warner is not None:
            stops = _alarms(spec, warner, m, owners, hypers, events, stop_step)
            if stops:
                pop.drop(stops, Outcome.STOPPED_EARLY)  # the engine frees their compute at once
        if pop.size == 0:
            break  # nothing left to train: results are written before Tune hears of the end
        if (m.step + 1) % every == 0 or m.step == last_batch:
            progress = _progress(pop, m)
            if m.step < last_batch and pack_stop_due(progress, pack_stop):
                # Tune's PackStopper will stop this trial on this very report: stop the survivors
                # and send the report last, after the results are written (see sweeper.sweep.stopper)
                _stop_pack(pop, m.step, progress, pack_stop, events, stop_step)
                pack_stopped = True
                break
            report(progress)
            if pause is not None and not held and m.step + 1 >= pause.batch:
                pause.hold(number)
                held = True
    if m is not None and not pack_stopped:
        progress = _progress(pop, m)
    return Trained(pop=pop, hypers=hypers, owners=owners, history=history, events=events, stop_step=stop_step,
                   progress=progress, pack_stopped=pack_stopped, seconds=time.time() - started)


def _record(history: list[list[dict[str, Any]]], m) -> None:
    """Keep this batch's metrics: every member's on a full batch, an exploding member's always."""
    if not (m.full or m.exploded.any()):
        return
    if hasattr(m, "fast_norm"):  # a fast-weight family's batch: every metric on every batch
        names = FAMILY_METRIC_NAMES
    else:
        names = METRIC_NAMES if m.full else EVERY_STEP_NAMES
    for r, member in enumerate(m.member):
        if m.full or m.exploded[r]:
            history[int(member)].append({"step": m.step, **{k: float(getattr(m, k)[r]) for k in names}})


def _warner(spec, db, hypers):
    """The study's early-warning watcher, or None when it is off. It takes the pack's batches as the
    engine yields them (StepMetrics, or a family's FamilyStepMetrics), mapped by the study's model."""
    if not spec.early_warning.enabled:
        return None
    from sweeper.warn import ModelSignals, OnlineWarner, make_predictor

    return OnlineWarner(spec.early_warning, make_predictor(spec.early_warning, db), hypers=hypers,
                        model=ModelSignals.of_study(spec))


def _alarms(spec, warner, m, owners, hypers, events, stop_step) -> list[int]:
    """Record this batch's alarms as warning events; return the members to stop (not the shadows)."""
    from sweeper.warn import is_shadow

    stops = []
    for alarm in warner.observe(m):
        i = alarm.member
        shadow = is_shadow(f"{spec.name}/{owners[i]['config_index']}/{hypers[i].seed}",
                           spec.early_warning.shadow_fraction)
        events.append({"pack_index": i, "step": alarm.step, "score": float(alarm.score),
                       "predictor": warner.predictor.name, "predictor_id": warner.predictor.predictor_id,
                       "signals": alarm.signals, "action": "shadow" if shadow else "stopped"})
        if not shadow:
            stops.append(i)
            stop_step[i] = alarm.step
    return stops


def _stop_pack(pop, step, progress, fraction, events, stop_step) -> None:
    """Stop every member still running, each with a warning event from the pack rule."""
    from .stopper import PACK_STOP_PREDICTOR

    survivors = [m for m in pop.alive if pop.outcome[m] == Outcome.RUNNING]
    flagged = progress["exploded"] + progress["stopped"]
    for i in survivors:
        events.append({"pack_index": i, "step": step, "score": flagged / progress["members"],
                       "predictor": PACK_STOP_PREDICTOR, "predictor_id": None,
                       "signals": {"exploded": progress["exploded"], "stopped": progress["stopped"],
                                   "members": progress["members"], "pack_stop": fraction},
                       "action": "stopped"})
        stop_step[i] = step
    pop.drop(survivors, Outcome.STOPPED_EARLY)


def _progress(pop, m) -> dict[str, Any]:
    outcomes = list(pop.outcome)
    grad_ratio = getattr(m, "grad_ratio", None)  # the ephemeral engine's; the families have grad_fast_ratio
    ratio = [float(x) for x in grad_ratio if math.isfinite(float(x))] if m.full and grad_ratio is not None else []
    return {
        "batch": m.step + 1,
        "members": len(outcomes),
        "alive": pop.size,
        "running": outcomes.count(Outcome.RUNNING),
        "exploded": outcomes.count(Outcome.EXPLODED),
        "stopped": outcomes.count(Outcome.STOPPED_EARLY),
        "loss": _finite_or_none(_nanmean(m.loss)) if len(m.loss) else None,
        "mem_acc": _finite_or_none(_nanmean(m.mem_acc)) if len(m.mem_acc) else None,
        "grad_ratio_max": max(ratio) if ratio else None,
    }


# ---------------------------------------------------------------------------------------------------
# Evaluate, and the rows to write


def _evaluate(spec, pop) -> tuple[dict[int, tuple[float, float, float, float]], float]:
    """Survivors' held-out (loss, acc, mem_acc, mem_acc with the ephemeral weights frozen); seconds."""
    started = time.time()
    evaluated = {}
    if pop.size and spec.execution.eval_batches:
        on = pop.evaluate(spec.execution.eval_batches)
        if spec.is_family:  # the fast state held at 0: what the slow weights do alone
            off = pop.evaluate(spec.execution.eval_batches, fast=False)
        else:
            off = pop.evaluate(spec.execution.eval_batches, ephemeral=False)
        for row, member in enumerate(on["member"]):
            evaluated[int(member)] = (float(on["loss"][row]), float(on["acc"][row]),
                                      float(on["mem_acc"][row]), float(off["mem_acc"][row]))
    return evaluated, time.time() - started


def _member_rows(spec, trained: Trained, evaluated, *, wall_time_s: float, device: str,
                 version: str) -> list[dict[str, Any]]:
    """One `sw_members` row per member, with the config that trains it again alone and, for a stable
    member with an evaluation, whether it remembers (`sweeper.outcomes.judge_memory`)."""
    from sweeper.outcomes import judge_memory
    from sweeper.study.memory import study_memory_positions

    baseline = spec.run.task.no_memory_baseline()
    positions = study_memory_positions(spec) if evaluated else {}
    rows = []
    for i, (h, s) in enumerate(zip(trained.hypers, trained.pop.summaries())):
        ev = evaluated.get(i, (None, None, None, None))
        owner = trained.owners[i]
        memory = judge_memory(s.outcome, ev[2], baseline, positions.get(h.seed), spec.execution.memory_level)
        rows.append({
            "pack_index": i, "config_index": owner["config_index"], "optuna_trial_number": owner.get("optuna"),
            **hyper_columns(spec, h), "config": member_config(spec, h),
            "outcome": s.outcome, "explode_step": s.explode_step, "explode_onset": s.explode_onset,
            "steps_done": s.steps_done, "stop_step": trained.stop_step.get(i), "final_step": s.final_step,
            "final_loss": s.final.get("loss"), "final_acc": s.final.get("acc"),
            "mem_acc": s.final.get("mem_acc"), "baseline": baseline,
            "eval_loss": ev[0], "eval_acc": ev[1], "eval_mem_acc": ev[2], "eval_mem_acc_frozen": ev[3],
            "remembers": memory.remembers, "memory_threshold": memory.threshold,
            "eval_mem_positions": memory.positions,
            "wall_time_s": wall_time_s, "device": device, "code_version": version,
        })
    return rows


def _pack_result(spec, trained: Trained, members: list[dict[str, Any]], eval_s: float) -> dict[str, Any]:
    """The trial's `result`: per-configuration verdicts (what Optuna is told), counts, timing, warnings."""
    judged: dict[int, tuple[dict, list[dict]]] = {}
    for owner, row in zip(trained.owners, members):
        judged.setdefault(owner["config_index"], (owner, []))[1].append(row)
    objectives = [(o.metric, o.direction) for o in spec.objectives]
    verdicts = [{"config_index": ci, "optuna": owner.get("optuna"), **judge(rows, objectives).as_dict()}
                for ci, (owner, rows) in judged.items()]
    return {
        "verdicts": verdicts,
        "counts": {o.value: sum(1 for r in members if r["outcome"] == o) for o in FINISHED},
        "progress": trained.progress,
        "timing": {"train_s": trained.seconds, "eval_s": eval_s},
        "warnings": {"alarms": len(trained.events), "stopped": len(trained.stop_step),
                     "shadow": sum(1 for e in trained.events if e["action"] == "shadow"),
                     "pack_stopped": trained.pack_stopped},
    }


HYPER_COLUMNS = ("model_kind", "lr", "plasticity", "ratio", "gamma", "clip", "eta", "beta_scale", "lam", "seed")
"""The `sw_members` columns of a member's model and hyperparameters (NULL where its model has none)."""


def hyper_columns(spec, h) -> dict[str, Any]:
    """A member's model kind and hyperparameters as `sw_members` columns: a Hyper fills plasticity, ratio
    and gamma; a FastWeightsHyper eta and lam; an FWPHyper beta_scale and lam."""
    row = {name: getattr(h, name, None) for name in HYPER_COLUMNS if name != "model_kind"}
    return {"model_kind": spec.kind, **row}


def member_config(spec, h) -> dict[str, Any]:
    """Everything needed to train this member again alone (`sweeper train` takes the same sections; a
    family member's hyperparameters by axis name, as its run file's [members])."""
    if spec.is_family:
        names = ("lr", "eta" if spec.kind == "fastweights" else "beta_scale", "lam", "clip", "seed")
        hyper = {("lambda" if k == "lam" else k): getattr(h, k) for k in names}
    else:
        hyper = {k: getattr(h, k) for k in ("lr", "plasticity", "ratio", "gamma", "clip", "seed")}
    if math.isinf(hyper["clip"]):
        hyper["clip"] = "inf"
    return {"study": spec.name, "task": dict(spec.task), "model": dict(spec.model), "train": dict(spec.train),
            "hyper": hyper}


def _nanmean(values) -> float:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
