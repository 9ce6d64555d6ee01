"""The Ray Tune trainable: one Ray trial trains one pack of members in one engine call.

A pack is `configs_per_trial` configurations x the study's seeds, trained as one population (one
tensor program). The pack reports its progress to Tune every `report_every` batches, writes its
results to the trial database in one transaction at the end (see `sweeper.sweep.store`), and
hands the per-configuration verdicts back to the driver in its last report.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from .verdict import judge

REPORT_KEYS = ("batch", "alive", "running", "exploded", "stopped", "members", "loss", "mem_acc", "grad_ratio_max")


def _nanmean(values) -> float:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def code_version() -> str:
    """The package version, plus the git commit when the code runs from a checkout."""
    import subprocess

    import sweeper

    here = os.path.dirname(os.path.abspath(sweeper.__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{sweeper.__version__}+{rev}" if rev else sweeper.__version__


def train_pack(config: dict, *, source: str, path: str, storage_url: str, study_id: int, version: str) -> None:
    """The function Ray Tune runs for each trial. `config`: {"pack": number, "points": [...]}."""
    import torch
    from ray import tune

    from sweeper.db import open_db
    from sweeper.engine.population import Population
    from sweeper.outcomes import Outcome
    from sweeper.study import parse_study

    from . import store
    from .stopper import pack_stop_due

    spec = parse_study(source, path)
    torch.set_num_threads(max(1, int(spec.execution.cpus)))
    run = spec.run
    device = run.train.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device_desc = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    else:
        device_desc = device
    number, points = int(config["pack"]), config["points"]
    db = open_db(storage_url)
    try:
        context = tune.get_context()
        attempt, done = store.claim_trial(db, study_id, number, ray_trial_id=context.get_trial_id(),
                                          device=device_desc)
        if done is not None:  # finished by an earlier attempt that died before Ray heard of it
            tune.report({"done": 1, "result_json": json.dumps(done), **done.get("progress", {})})
            return
        started = time.time()
        hypers, owners = [], []
        for p in points:
            for h in spec.hypers(p["point"]):
                hypers.append(h)
                owners.append(p)
        pop = Population(run, hypers)
        history: list[list[dict[str, Any]]] = [[] for _ in hypers]
        warner, events, stop_step = _warner(spec, db, hypers), [], {}
        every = spec.execution.report_every
        pack_stop = spec.early_warning.pack_stop if warner is not None else None
        progress: dict[str, Any] = {}
        pack_stopped = False
        last_batch = run.train.batches - 1
        m = None
        for m in pop.run():
            names = ("loss", "acc", "mem_acc", "max_logit") if not m.full else store.METRIC_COLUMNS
            if m.full or m.exploded.any():
                for r, member in enumerate(m.member):
                    if m.full or m.exploded[r]:
                        history[int(member)].append(
                            {"step": m.step, **{k: float(getattr(m, k)[r]) for k in names}})
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
                    # and send the report last, with the results (see sweeper.sweep.stopper)
                    _stop_pack(pop, m.step, progress, pack_stop, events, stop_step)
                    pack_stopped = True
                    break
                tune.report(progress)
        if m is not None and not pack_stopped:
            progress = _progress(pop, m)
        train_s = time.time() - started
        evaluated = {}
        if pop.size and spec.execution.eval_batches:
            on = pop.evaluate(spec.execution.eval_batches)
            off = pop.evaluate(spec.execution.eval_batches, ephemeral=False)
            for row, member in enumerate(on["member"]):
                evaluated[int(member)] = (float(on["loss"][row]), float(on["acc"][row]),
                                          float(on["mem_acc"][row]), float(off["mem_acc"][row]))
        eval_s = time.time() - started - train_s
        baseline = run.task.no_memory_baseline()
        members, judged = [], {}
        for i, (h, s) in enumerate(zip(hypers, pop.summaries())):
            ev = evaluated.get(i, (None, None, None, None))
            row = {
                "pack_index": i, "config_index": owners[i]["config_index"],
                "optuna_trial_number": owners[i].get("optuna"),
                "lr": h.lr, "plasticity": h.plasticity, "ratio": h.ratio, "gamma": h.gamma, "clip": h.clip,
                "seed": h.seed, "config": member_config(spec, h),
                "outcome": s.outcome, "explode_step": s.explode_step, "steps_done": s.steps_done,
                "stop_step": stop_step.get(i),
                "final_loss": s.final.get("loss"), "final_acc": s.final.get("acc"),
                "mem_acc": s.final.get("mem_acc"), "baseline": baseline,
                "eval_loss": ev[0], "eval_acc": ev[1], "eval_mem_acc": ev[2], "eval_mem_acc_frozen": ev[3],
                "wall_time_s": train_s + eval_s, "device": device_desc, "code_version": version,
            }
            members.append(row)
            judged.setdefault(owners[i]["config_index"], (owners[i], []))[1].append(row)
        objectives = [(o.metric, o.direction) for o in spec.objectives]
        verdicts = [{"config_index": ci, "optuna": owner.get("optuna"), **judge(rows, objectives).as_dict()}
                    for ci, (owner, rows) in judged.items()]
        counts = {k: sum(1 for r in members if r["outcome"] == k) for k in ("stable", "exploded", "stopped_early")}
        result = {"verdicts": verdicts, "counts": counts, "progress": progress,
                  "timing": {"train_s": train_s, "eval_s": eval_s, "db_s": None}}
        t0 = time.time()
        result["warnings"] = {"alarms": len(events), "stopped": len(stop_step),
                              "shadow": sum(1 for e in events if e["action"] == "shadow"),
                              "pack_stopped": pack_stopped}
        store.finish_trial(db, study_id, number, attempt, members=members, history=history, result=result,
                           wall_time_s=train_s + eval_s, warnings=events)
        result["timing"]["db_s"] = time.time() - t0
        tune.report({**progress, "done": 1, "result_json": json.dumps(result)})
    finally:
        db.dispose()


def _warner(spec, db, hypers):
    """The study's early-warning watcher, or None when it is off."""
    if not spec.early_warning.enabled:
        return None
    from sweeper.warn import OnlineWarner, make_predictor

    return OnlineWarner(spec.early_warning, make_predictor(spec.early_warning, db), hypers=hypers)


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
    from sweeper.outcomes import Outcome

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


def member_config(spec, h) -> dict[str, Any]:
    """Everything needed to train this member again alone (`sweeper train` takes the same sections)."""
    hyper = {k: getattr(h, k) for k in ("lr", "plasticity", "ratio", "gamma", "clip", "seed")}
    if math.isinf(hyper["clip"]):
        hyper["clip"] = "inf"
    return {"study": spec.name, "task": dict(spec.task), "model": dict(spec.model), "train": dict(spec.train),
            "hyper": hyper}


def _progress(pop, m) -> dict[str, Any]:
    outcomes = [o.value for o in pop.outcome]
    ratio = [float(x) for x in m.grad_ratio if math.isfinite(float(x))] if m.full else []
    return {
        "batch": m.step + 1,
        "members": len(outcomes),
        "alive": pop.size,
        "running": outcomes.count("running"),
        "exploded": outcomes.count("exploded"),
        "stopped": outcomes.count("stopped_early"),
        "loss": _finite_or_none(_nanmean(m.loss)) if len(m.loss) else None,
        "mem_acc": _finite_or_none(_nanmean(m.mem_acc)) if len(m.mem_acc) else None,
        "grad_ratio_max": max(ratio) if ratio else None,
    }
