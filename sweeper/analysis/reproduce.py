"""Reproduce Table 1 of the paper: which model / updater / recurrence combinations learn memory.

`table1()` trains the ten configurations of the paper's Table 1 on key recall and on 3-symbol
reversal, several seeds each, and returns a JSON-able report; `format_table1()` prints it.

How a configuration maps to the engine:

- RNN: `ModelConfig(kind="rnn", depth=1)`, no ephemeral entries (ratio 0), Adam with the
  gradient's global norm clipped to 1 (a fair RNN baseline is Adam 1e-4 + clip 1; the
  quick budget uses lr 1e-3 so that it learns within its few hundred batches).
- Ephemeral: `ModelConfig(kind="ephemeral", depth=2)`, SGD, with one set of hyperparameters known
  to work with DFA on key recall in this engine (lr 1e-2, plasticity 1e3, ratio 0.1, gamma 0.7),
  used unchanged for every updater: the point of Table 1 is the comparison between updaters.
- Seeds are the members of one `Population` (one per task x configuration x recurrence setting);
  a seed means the same initial network in every configuration.
- Rows whose recurrence is "any" are run with both settings (budget `any_recurrence="both"`), or,
  to save time, only with the setting where the paper's claim is hardest to meet
  (`any_recurrence="hardest"`): recurrence on for RNN + DFA (rated Fail: recurrence is its only
  chance to remember), recurrence off for Ephemeral + per-step backprop (rated "explodes": the
  recurrent loop is an extra source of instability, so without it an explosion is least likely).

How a result is rated (printed with the table, `RULE`): with `margin` = 0.1 and the task's exact
no-memory baseline `b` on the memory positions, over the seeds that did not explode:

- explodes: explosion rate >= 0.5;
- good:     explosion rate < 0.5 and the lower end of the 95% t-interval of the mean evaluation
            memory accuracy is above b + margin;
- mixed:    neither, but at least one seed's evaluation memory accuracy is above b + margin;
- baseline: no seed above b + margin (the paper's "Poor" and "Fail").

The paper's rating holds when it maps to the same class: Good -> good, Poor / Fail -> baseline,
"Poor (explodes)" -> explodes, Mixed -> mixed.

A unit of the table is one task x configuration x recurrence setting (`Unit`, named by `Unit.key`,
e.g. `key_recall_eph-dfa-on`, `reversal_eph-backprop-any-off`); `units()` lists those a budget runs
and `select_units()` picks some of them by key or configuration id. `table1(only=...)` runs a
selection; `sweeper.sweep.tuned` searches the hyperparameters of each unit instead of sharing one set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from sweeper.config import ConfigError, Hyper, ModelConfig, RunConfig, TrainConfig
from sweeper.jsonio import to_strict
from sweeper.outcomes import Outcome

MARGIN = 0.1
EXPLODE_RATE = 0.5

RULE = (
    f"rule (b = no-memory baseline, margin = {MARGIN:g}, interval = 95% t-interval over non-exploded seeds):\n"
    f"  explodes: explosion rate >= {EXPLODE_RATE:g}\n"
    f"  good:     explosion rate < {EXPLODE_RATE:g} and interval low > b + margin\n"
    f"  mixed:    otherwise, if at least one seed's eval memory accuracy > b + margin\n"
    f"  baseline: no seed above b + margin (the paper's Poor / Fail)\n"
    f"  paper holds: Good->good, Poor/Fail->baseline, Poor (explodes)->explodes, Mixed->mixed"
)

# Table 1 of the paper. recurrence: True, False or "any".
CONFIGS: list[dict[str, Any]] = [
    {"id": "rnn-dfa-any", "model": "RNN", "updater": "dfa", "recurrence": "any", "paper": "Fail"},
    {"id": "rnn-backprop-on", "model": "RNN", "updater": "backprop", "recurrence": True, "paper": "Good"},
    {"id": "rnn-backprop-off", "model": "RNN", "updater": "backprop", "recurrence": False, "paper": "Poor"},
    {"id": "rnn-bptt-on", "model": "RNN", "updater": "bptt", "recurrence": True, "paper": "Good"},
    {"id": "rnn-bptt-off", "model": "RNN", "updater": "bptt", "recurrence": False, "paper": "Poor"},
    {"id": "eph-dfa-on", "model": "Ephemeral", "updater": "dfa", "recurrence": True, "paper": "Good"},
    {"id": "eph-dfa-off", "model": "Ephemeral", "updater": "dfa", "recurrence": False, "paper": "Good"},
    {"id": "eph-backprop-any", "model": "Ephemeral", "updater": "backprop", "recurrence": "any",
     "paper": "Poor (explodes)"},
    {"id": "eph-bptt-on", "model": "Ephemeral", "updater": "bptt", "recurrence": True, "paper": "Mixed"},
    {"id": "eph-bptt-off", "model": "Ephemeral", "updater": "bptt", "recurrence": False,
     "paper": "Fail (updates come too late to act as memory)"},
]

# For "any" rows under any_recurrence="hardest": the setting where the paper's claim is least likely.
HARDEST_ANY = {"rnn-dfa-any": True, "eph-backprop-any": False}

EXPECTED = {"Good": "good", "Poor": "baseline", "Fail": "baseline", "Poor (explodes)": "explodes",
            "Mixed": "mixed"}

TASKS: list[tuple[str, dict[str, Any]]] = [("key_recall", {}), ("reversal", {"n": 3})]

BUDGETS: dict[str, dict[str, Any]] = {
    # A few seconds; for tests only.
    "smoke": {"width": 8, "batch_size": 4, "batches": 3, "seeds": 2, "eval_batches": 1,
              "rnn_lr": 1e-3, "any_recurrence": "hardest"},
    # A shared 2-core CPU: measured 9 min 20 s (with another training job competing for the CPU).
    "quick": {"width": 128, "batch_size": 32, "batches": 1000, "seeds": 3, "eval_batches": 10,
              "rnn_lr": 1e-3, "any_recurrence": "both"},
    # A GPU: the paper's width, more batches and seeds.
    "full": {"width": 256, "batch_size": 32, "batches": 5000, "seeds": 10, "eval_batches": 20,
             "rnn_lr": 1e-4, "any_recurrence": "both"},
}

EPHEMERAL_HYPER = {"lr": 1e-2, "plasticity": 1e3, "ratio": 0.1, "gamma": 0.7}


def expected_category(paper: str) -> str:
    return EXPECTED[paper.split(" (updates")[0]]


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of a t-interval, clipped to [0, 1]; NaNs for no values, a point for one."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, mean, mean
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def categorize(mem_accs: list[float], explosion_rate: float, baseline: float) -> tuple[str, float, float, float]:
    """The class of one result (see RULE) and its (mean, low, high)."""
    mean, lo, hi = t_interval(mem_accs)
    if explosion_rate >= EXPLODE_RATE:
        return "explodes", mean, lo, hi
    if math.isfinite(lo) and lo > baseline + MARGIN:
        return "good", mean, lo, hi
    if any(v is not None and v > baseline + MARGIN for v in mem_accs):
        return "mixed", mean, lo, hi
    return "baseline", mean, lo, hi


@dataclass(frozen=True)
class Unit:
    """One task x configuration x recurrence setting: one population of seeds in `table1`."""

    task_index: int
    """Index into the table's task list."""
    task_name: str
    config: dict
    """An entry of `CONFIGS`."""
    recurrence: bool

    @property
    def key(self) -> str:
        """`TASK_ID`, with `-on` / `-off` appended for a row whose recurrence is "any"."""
        suffix = f"-{'on' if self.recurrence else 'off'}" if self.config["recurrence"] == "any" else ""
        return f"{self.task_name}_{self.config['id']}{suffix}"


def units(settings: Mapping[str, Any], task_names: Sequence[str]) -> list[Unit]:
    """The units a budget runs, task by task in `CONFIGS` order ("any" rows: off, then on, or the
    hardest setting alone, by `settings["any_recurrence"]`)."""
    out = []
    for ti, name in enumerate(task_names):
        for config in CONFIGS:
            if config["recurrence"] != "any":
                recs = [config["recurrence"]]
            elif settings["any_recurrence"] == "both":
                recs = [False, True]
            else:
                recs = [HARDEST_ANY[config["id"]]]
            out.extend(Unit(ti, name, config, r) for r in recs)
    return out


def select_units(all_units: Sequence[Unit], only: Sequence[str] | None, field: str = "--rows") -> list[Unit]:
    """The units named in `only`, each by its key or by its configuration's id (every task and
    recurrence setting of it); all of them for None. An unknown name is refused naming `field`."""
    if only is None:
        return list(all_units)
    wanted = [w.strip() for w in only if w.strip()]
    if not wanted:
        raise ConfigError(field, "empty; name units (e.g. key_recall_eph-dfa-on) or configuration ids (e.g. eph-dfa-on)")
    names = {u.key for u in all_units} | {u.config["id"] for u in all_units}
    for w in wanted:
        if w not in names:
            raise ConfigError(field, f"unknown {w!r}; expected a configuration id ({', '.join(c['id'] for c in CONFIGS)}) "
                              f"or a unit of this budget ({', '.join(u.key for u in all_units)})")
    return [u for u in all_units if u.key in wanted or u.config["id"] in wanted]


def row_head(unit: Unit, task) -> dict:
    """What a report row says of its unit's table row: task, configuration, the paper's rating."""
    config = unit.config
    return {"task": task.name, "task_params": task.params(), "baseline": float(task.no_memory_baseline()),
            "id": config["id"], "model": config["model"], "updater": config["updater"],
            "recurrence": "any" if config["recurrence"] == "any" else ("on" if config["recurrence"] else "off"),
            "paper": config["paper"], "expected": expected_category(config["paper"])}


def run_config(config: dict, recurrence: bool, task, settings: dict, seeds: list[int], device: str) -> RunConfig:
    """The RunConfig and members of one Table 1 configuration."""
    s = settings
    train = TrainConfig(updater=config["updater"], batch_size=s["batch_size"], batches=s["batches"],
                        stop_on_explosion=True, device=device,
                        metrics_every=max(1, min(10, s["batches"])))
    if config["model"] == "RNN":
        model = ModelConfig(kind="rnn", depth=1, width=s["width"], recurrence=recurrence)
        train = replace(train, optimizer="adam", grad_clip=1.0)
        members = [Hyper(lr=s["rnn_lr"], ratio=0.0, seed=k) for k in seeds]
    else:
        model = ModelConfig(kind="ephemeral", depth=2, width=s["width"], recurrence=recurrence)
        members = [Hyper(**EPHEMERAL_HYPER, seed=k) for k in seeds]
    return RunConfig(task=task, model=model, train=train), members


def _finite(x) -> float | None:
    """`x` as a float, or None where it is NaN or infinite (the report's strict-JSON "no value")."""
    return to_strict(float(x), nonfinite=None)


def run_variant(run: RunConfig, members: list[Hyper], eval_batches: int, baseline: float) -> dict:
    """Train one population (the seeds), evaluate its survivors, rate it."""
    from sweeper.engine.population import Population

    start = time.perf_counter()
    pop = Population(run, members)
    for _ in pop.run():
        pass
    on = off = None
    if pop.size and eval_batches:
        on = pop.evaluate(eval_batches, ephemeral=True)
        if run.model.kind == "ephemeral":
            off = pop.evaluate(eval_batches, ephemeral=False)
    per_seed = []
    for s in pop.summaries():
        row = {"seed": members[s.member].seed, "outcome": s.outcome, "explode_step": s.explode_step,
               "steps_done": s.steps_done, "train_mem_acc": _finite(s.final.get("mem_acc", math.nan)),
               "mem_acc": None, "mem_acc_no_eph": None, "acc": None, "loss": None}
        if on is not None and s.member in on["member"]:
            i = int(np.nonzero(on["member"] == s.member)[0][0])
            row.update(mem_acc=_finite(on["mem_acc"][i]), acc=_finite(on["acc"][i]), loss=_finite(on["loss"][i]))
            if off is not None:
                row["mem_acc_no_eph"] = _finite(off["mem_acc"][i])
        per_seed.append(row)
    exploded = sum(r["outcome"] == Outcome.EXPLODED for r in per_seed)
    rate = exploded / len(per_seed)
    accs = [r["mem_acc"] for r in per_seed if r["mem_acc"] is not None]
    category, mean, lo, hi = categorize(accs, rate, baseline)
    no_eph = t_interval([r["mem_acc_no_eph"] for r in per_seed if r["mem_acc_no_eph"] is not None])[0]
    return {
        "recurrence": run.model.recurrence,
        "config": {"task": {"name": run.task.name, **run.task.params()}, "model": asdict(run.model),
                   "train": asdict(run.train), "members": [asdict(h) for h in members]},
        "per_seed": per_seed,
        "n_evaluated": len(accs),
        "mem_acc_mean": _finite(mean), "ci_low": _finite(lo), "ci_high": _finite(hi),
        "mem_acc_no_eph_mean": _finite(no_eph),
        "explosion_rate": rate,
        "category": category,
        "seconds": time.perf_counter() - start,
    }


def budget_settings(budget: str, seeds: int | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """The settings of a row of `BUDGETS`, with `seeds` and `overrides` applied, validated."""
    if budget not in BUDGETS:
        raise ConfigError("budget", f"got {budget!r}; expected one of {', '.join(BUDGETS)}")
    settings = dict(BUDGETS[budget])
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise ConfigError(f"budget.{key}", f"unknown setting; allowed: {', '.join(sorted(settings))}")
        settings[key] = value
    if seeds is not None:
        settings["seeds"] = seeds
    if not isinstance(settings["seeds"], int) or isinstance(settings["seeds"], bool) or settings["seeds"] < 1:
        raise ConfigError("seeds", f"got {settings['seeds']!r}; expected an integer >= 1")
    if settings["any_recurrence"] not in ("both", "hardest"):
        raise ConfigError("budget.any_recurrence", f"got {settings['any_recurrence']!r}; expected both or hardest")
    return settings


def table1(budget: str = "quick", seeds: int | None = None, device: str = "cpu", progress: bool = False,
           overrides: Mapping[str, Any] | None = None, tasks: list[tuple[str, dict]] | None = None,
           only: Sequence[str] | None = None) -> dict:
    """Run Table 1 (ten configurations x key recall and 3-symbol reversal) and return a JSON-able report.

    `budget` names a row of `BUDGETS`; `seeds` overrides its number of seeds; `overrides` any of its
    other settings (width, batch_size, batches, eval_batches, rnn_lr, any_recurrence); `only` runs
    just the units it names (`select_units`).
    """
    from sweeper.tasks import make_task

    settings = budget_settings(budget, seeds, overrides)
    seed_list = list(range(settings["seeds"]))
    tasks = TASKS if tasks is None else tasks
    task_objs = [make_task(name, **params) for name, params in tasks]
    jobs = select_units(units(settings, [t.name for t in task_objs]), only)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="config", desc="table1", dynamic_ncols=True)
    start = time.perf_counter()
    rows: dict[tuple[int, str], dict] = {}
    for unit in jobs:
        task, config, rec = task_objs[unit.task_index], unit.config, unit.recurrence
        baseline = float(task.no_memory_baseline())
        if bar is not None:
            bar.set_postfix_str(f"{task.name} {config['id']} rec={'on' if rec else 'off'}")
        run, members = run_config(config, rec, task, settings, seed_list, device)
        variant = run_variant(run, members, settings["eval_batches"], baseline)
        row = rows.setdefault((unit.task_index, config["id"]), {**row_head(unit, task), "variants": []})
        row["variants"].append(variant)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    out_rows = []
    for row in rows.values():
        row["holds"] = all(v["category"] == row["expected"] for v in row["variants"])
        out_rows.append(row)
    return {
        "table": "table1",
        "budget": budget,
        "settings": settings,
        "seeds": seed_list,
        "device": device,
        "ephemeral_hyper": dict(EPHEMERAL_HYPER),
        "rule": RULE,
        "margin": MARGIN,
        "tasks": [{"name": t.name, **t.params(), "baseline": float(t.no_memory_baseline())} for t in task_objs],
        "rows": out_rows,
        "seconds": time.perf_counter() - start,
    }


def _fmt(x, spec=".2f") -> str:
    return "  -  " if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def format_table1(report: dict) -> str:
    """One line per task x configuration (x recurrence setting for the "any" rows)."""
    s = report["settings"]
    lines = [
        f"Table 1 reproduction, budget {report['budget']}: width {s['width']}, batch {s['batch_size']}, "
        f"{s['batches']} batches, {len(report['seeds'])} seeds {report['seeds']}, eval {s['eval_batches']} batches, "
        f"device {report['device']}",
        f"RNN: depth 1, Adam lr {s['rnn_lr']:g}, grad clip 1.  Ephemeral: depth 2, SGD, "
        + ", ".join(f"{k} {v:g}" for k, v in report["ephemeral_hyper"].items()) + " (every updater).",
        "'any' recurrence rows: "
        + ("both settings" if s["any_recurrence"] == "both"
           else "hardest setting only (RNN+DFA: on; Ephemeral+backprop: off)") + ".",
        "",
        f"{'task':<11} {'model':<9} {'updater':<8} {'rec':<7} {'mem_acc':>7} {'95% interval':>13} {'no_eph':>6} "
        f"{'base':>5} {'expl':>5}  {'ours':<9} {'paper':<16} holds",
    ]
    for row in report["rows"]:
        for v in row["variants"]:
            rec = ("on" if v["recurrence"] else "off")
            rec = f"any:{rec}" if row["recurrence"] == "any" else rec
            interval = f"[{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}]"
            paper = row["paper"].split(" (updates")[0]
            holds = "yes" if v["category"] == row["expected"] else "NO"
            lines.append(
                f"{row['task']:<11} {row['model']:<9} {row['updater']:<8} {rec:<7} {_fmt(v['mem_acc_mean']):>7} "
                f"{interval:>13} {_fmt(v['mem_acc_no_eph_mean']):>6} {row['baseline']:>5.3f} "
                f"{v['explosion_rate']:>5.2f}  {v['category']:<9} {paper:<16} {holds}"
            )
    n_hold = sum(r["holds"] for r in report["rows"])
    lines += [
        "",
        "mem_acc: evaluation memory accuracy (fresh sequences, slow weights frozen, ephemeral dynamics on), mean "
        "over non-exploded seeds; no_eph: the same with ephemeral entries held at 0; expl: explosion rate.",
        RULE,
        f"paper's rating holds for {n_hold} of {len(report['rows'])} task x configuration rows; "
        f"wall time {report['seconds']:.0f} s",
    ]
    return "\n".join(lines)
