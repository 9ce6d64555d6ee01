"""Table 1 with hyperparameters searched per unit: `sweeper reproduce table1 --budget tuned`.

The quick budget (`sweeper.analysis.reproduce`) trains every unit of Table 1 (task x configuration x
recurrence setting) with one shared set of hyperparameters, so a unit can miss the paper's rating
because that set is wrong for it rather than because the method fails. Here every unit gets

1. its own search: a `random` study built with `study_from_dict` and run by `submit` into the trial
   database, named `<prefix>_<unit>` (`table1_tuned_key_recall_eph-dfa-on`), objective eval_mem_acc
   (maximize), `search_seeds` seeds per configuration; every trial can be read back with `sweeper
   trials table1_tuned_key_recall_eph-dfa-on`. Model, training and evaluation are the quick budget's
   for that unit (`reproduce.run_config`: width, batch size, batches, evaluation batches, explosion
   rule); only the searched hyperparameters differ.
2. a retraining of its best configuration (`choose_best`, `TIE_RULE`) on `seeds` fresh seeds (from
   `RETRAIN_SEED0`, never used by a search), in this process with `reproduce.run_variant`, rated by
   the quick budget's rule (`reproduce.categorize`). It runs without Ray: a submit costs 5-11 s of
   Ray Tune overhead (measured on a busy 2-core CPU), about as much as training the 5 seeds.

The search spaces (`SPACES`) bracket the quick budget's values on both sides:

- Ephemeral: lr log-uniform in [1e-3, 1e-1] (quick: 1e-2), plasticity log-uniform in [1e2, 1e4]
  (quick: 1e3), weight clip one of 0.1, 1, 10, inf (quick: inf, no clip); ratio 0.1 and gamma 0.7
  fixed.
- RNN: Adam's lr log-uniform in [1e-4, 1e-2] (quick: 1e-3) and the weight clip from the same list
  (the engine clamps the RNN's weights after every Adam step too). The gradient-norm clip stays 1:
  it is `TrainConfig.grad_clip`, one value for a whole population (a pack trains all its members in
  one engine call), while a study's axes are `Hyper`'s fields, which vary per member, so it cannot be
  an axis of the search.

The search is `random`, not `optuna`: with a handful of configurations per unit TPE would not leave
its random start-up phase (10 trials), and random points are fixed in advance by the search seed, so
a rerun proposes the same ones and a unit's packs run side by side without waiting on each other.

Resuming: a unit whose search study is COMPLETE in the database is not searched again (an interrupted
one is resumed by `submit`); the retrainings run again (same seeds, same result) and so does the quick
side unless it is read from a file. A study's spec is fixed by the search settings (`--configs`,
`--search-seeds`), so a rerun with other ones into the same database is refused before anything
trains (`store.SpecMismatch`, as `submit` refuses a different study under the same name): give it
another `--storage`. `--seeds` changes only the retraining and may differ between runs.

The quick budget runs side by side in the same command (`reproduce.table1` on the same units), or is
read from a report it wrote (`quick_report`: the JSON of `sweeper reproduce table1 --budget quick
--json`, or of a tuned run, whose `quick` part is used).

What runs in this process (the quick side, the retrainings) trains with one torch thread, as each
pack does: on a CPU shared with other jobs two threads are far slower (a 5-seed retraining took 8
minutes with two threads at load 12, 29 s with one), and one thread keeps the time predictable.

Time of the default budget on a 2-core CPU (`--num-cpus 2`), extrapolated from units measured while
other jobs kept the machine at load 7-14, in CPU seconds of one torch thread (a busy machine inflates
them rather than shrinks them). Per unit: the quick side's 3 seeds 3.1-9.3 s (4 units); a search
pack of 24 members 16.3-55.2 s (3 units; RNN + per-step backprop on key recall the slowest), the
unit's two packs running side by side; a submit's Ray Tune overhead 5-11 s; the 5-seed retraining
4.4-11.9 s (4 units); starting Ray once, 10 s. That is about 57 s per unit (35 + 8 + 8 + 6) and 87 s
if every unit were the slowest measured: about 23 minutes for the 24 units, 35 at most, within the
60 allowed. End to end, two units (key_recall_eph-dfa-on, reversal_rnn-bptt-on) with their quick
side took 195 s of wall time at load 9-12. The whole tuned table has not been run on this machine.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

from sweeper.analysis.reproduce import (
    BUDGETS,
    EPHEMERAL_HYPER,
    RULE,
    TASKS,
    Unit,
    budget_settings,
    row_head,
    run_config,
    run_variant,
    select_units,
    units,
)
from sweeper.config import ConfigError, check_int
from sweeper.outcomes import Outcome
from sweeper.study.toml import build_study

# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class TunedBudget:
    """How big the per-unit searches and retrainings are."""

    base: str
    """The `reproduce.BUDGETS` row whose width, batch size, batches, evaluation batches and "any"
    recurrence settings every study uses, and which the quick side of the report runs."""
    prefix: str
    """A unit's search study is named `<prefix>_<unit key>`."""
    configs: int
    """Configurations searched per unit."""
    search_seeds: int
    """Seeds per searched configuration (0, 1, ...)."""
    seeds: int
    """Fresh seeds the best configuration is retrained on (`RETRAIN_SEED0`, ...)."""
    packs: int
    """Ray trials a unit's search is split into (they run side by side, one CPU each)."""
    rows: tuple[str, ...] | None = None
    """The units run by default (`reproduce.select_units` names); None: every unit of the base budget."""
    search_seed: int = 0
    """Seeds the random draws of every unit's search."""


TUNED_BUDGETS: dict[str, TunedBudget] = {
    # The quick budget's 24 units and training, each searched over 24 configurations x 2 seeds (2 packs
    # of 24 members), the best retrained on 5 fresh seeds: about 23 minutes on 2 cores (module docstring).
    "tuned": TunedBudget(base="quick", prefix="table1_tuned", configs=24, search_seeds=2, seeds=5, packs=2),
    # For tests: two units (one ephemeral, one RNN) of the smoke budget, 2 configurations each.
    "smoke": TunedBudget(base="smoke", prefix="table1_tuned_smoke", configs=2, search_seeds=1, seeds=2, packs=1,
                         rows=("key_recall_rnn-bptt-on", "key_recall_eph-dfa-off")),
}

RETRAIN_SEED0 = 1000
"""The retraining's first seed; a search uses seeds 0 .. search_seeds - 1 (at most `MAX_SEARCH_SEEDS`)."""
MAX_SEARCH_SEEDS = 100
MIN_SEEDS = {"tuned": 5, "smoke": 2}
"""Fewest retraining seeds allowed: the tuned rating rests on at least 5."""

CLIPS = (0.1, 1.0, 10.0, math.inf)
"""Weight clip values searched (inf: no clip, the quick budget's)."""
SPACES: dict[str, dict[str, dict]] = {
    "Ephemeral": {"lr": {"low": 1e-3, "high": 1e-1, "log": True},
                  "plasticity": {"low": 1e2, "high": 1e4, "log": True},
                  "clip": {"values": list(CLIPS)}},
    "RNN": {"lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "clip": {"values": list(CLIPS)}},
}
"""The searched axes of each model of Table 1 (study `[space]` tables)."""

TIE_RULE = (
    "best configuration: among those whose every search seed ended stable, the highest mean evaluation "
    "memory accuracy; ties go to the higher worst seed, then to the configuration drawn first (lowest "
    "config_index). If none ended stable on every seed: the fewest seeds exploded (or failed), then the "
    "same order."
)


# ---------------------------------------------------------------------------------------------------
# Choosing the best configuration (pure)


@dataclass(frozen=True)
class Candidate:
    """One searched configuration, summarized from its members (one per seed)."""

    config_index: int
    point: dict[str, float]
    """Its values of the searched axes."""
    seeds: int
    stable: int
    exploded: int
    mean: float | None
    """Mean evaluation memory accuracy over its stable seeds (None: no stable seed with a value)."""
    worst: float | None

    @property
    def clean(self) -> bool:
        """Every seed ended stable with an evaluation."""
        return self.stable == self.seeds and self.mean is not None


def candidates(members: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> list[Candidate]:
    """Group member rows (`sweeper.db.member_rows`: config_index, outcome, eval_mem_acc and the axes)
    by configuration, in config_index order."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for m in members:
        groups.setdefault(int(m["config_index"]), []).append(m)
    out = []
    for index in sorted(groups):
        rows = groups[index]
        stable = [m for m in rows if m["outcome"] == Outcome.STABLE]
        values = [float(m["eval_mem_acc"]) for m in stable
                  if m.get("eval_mem_acc") is not None and math.isfinite(float(m["eval_mem_acc"]))]
        out.append(Candidate(
            config_index=index, point={a: float(rows[0][a]) for a in axes}, seeds=len(rows), stable=len(stable),
            exploded=sum(1 for m in rows if m["outcome"] == Outcome.EXPLODED),
            mean=sum(values) / len(values) if values else None, worst=min(values) if values else None))
    return out


def choose_best(cands: Sequence[Candidate]) -> Candidate | None:
    """The configuration to retrain, by `TIE_RULE`; None when there is none."""
    if not cands:
        return None
    clean = [c for c in cands if c.clean]
    if clean:
        return max(clean, key=lambda c: (c.mean, c.worst, -c.config_index))
    low = -math.inf
    return min(cands, key=lambda c: (c.seeds - c.stable, -(c.mean if c.mean is not None else low),
                                     -(c.worst if c.worst is not None else low), c.config_index))


# ---------------------------------------------------------------------------------------------------
# The studies


def study_dict(unit: Unit, task, settings: Mapping[str, Any], *, name: str, description: str,
               search: dict, space: dict, seeds: list[int], configs_per_pack: int) -> dict:
    """A study of one unit: the quick budget's task, model and training, this search and space."""
    run, _ = run_config(unit.config, unit.recurrence, task, dict(settings), [0], "cpu")
    if unit.config["model"] == "RNN":
        fixed = {"ratio": 0.0}
    else:
        fixed = {k: v for k, v in EPHEMERAL_HYPER.items() if k not in space}
    return {
        "name": name, "description": description,
        "task": {"name": task.name, **task.params()},
        "model": asdict(run.model),
        "train": {k: v for k, v in asdict(run.train).items() if v is not None},
        "search": search,
        "objectives": [{"metric": "eval_mem_acc", "direction": "maximize"}],
        "space": space, "fixed": fixed,
        "execution": {"seeds": seeds, "members_per_trial": configs_per_pack * len(seeds), "cpus": 1,
                      "eval_batches": settings["eval_batches"], "max_failures": 1},
        "early_warning": {"enabled": False},
    }


def search_study(unit: Unit, task, settings: Mapping[str, Any], budget: TunedBudget):
    space = SPACES[unit.config["model"]]
    return build_study(study_dict(
        unit, task, settings, name=f"{budget.prefix}_{unit.key}",
        description=f"Table 1 {unit.key}: search of {', '.join(space)} (sweeper reproduce table1 --budget tuned)",
        search={"kind": "random", "configs": budget.configs, "seed": budget.search_seed}, space=space,
        seeds=list(range(budget.search_seeds)), configs_per_pack=math.ceil(budget.configs / budget.packs)))


def retrain_members(spec, point: Mapping[str, float], seeds: Sequence[int]) -> list:
    """The retraining's members: the search's fixed values and `point`, one per fresh seed."""
    from sweeper.config import Hyper

    members = [Hyper(**spec.fixed, **point, seed=k) for k in seeds]
    for h in members:
        spec.run.check_hyper(h)
    return members


# ---------------------------------------------------------------------------------------------------
# The quick side


def quick_variants(report: Mapping[str, Any], chosen: Sequence[Unit], base: str, where: str) -> dict[str, dict]:
    """Unit key -> the variant of a Table 1 report (`reproduce.table1`) for it; refuses (naming
    `where`) a report of another budget or settings, or one without a chosen unit."""
    if report.get("table") != "table1" or not isinstance(report.get("rows"), list):
        raise ConfigError(where, "not a Table 1 report (expected the JSON of `sweeper reproduce table1 --json`)")
    if report.get("budget") != base:
        raise ConfigError(where, f"a report of budget {report.get('budget')!r}; expected {base!r}, the budget "
                                 "the tuned studies train with")
    settings = report.get("settings", {})
    for key in ("width", "batch_size", "batches", "eval_batches", "rnn_lr"):
        if settings.get(key) != BUDGETS[base][key]:
            raise ConfigError(where, f"its {key} is {settings.get(key)!r}; the {base} budget's is {BUDGETS[base][key]!r}")
    found = {}
    for row in report["rows"]:
        for v in row.get("variants", []):
            found[(row.get("task"), row.get("id"), v.get("recurrence"))] = v
    out = {}
    for u in chosen:
        v = found.get((u.task_name, u.config["id"], u.recurrence))
        if v is None:
            raise ConfigError(where, f"has no result for {u.key}; run the quick budget on it, or leave the flag out")
        out[u.key] = v
    return out


def read_quick_report(path: str) -> dict:
    """The Table 1 report in the JSON file at `path`: `sweeper reproduce table1 --json`'s, or the
    `quick` part of a tuned report's. ConfigError naming --quick-report if it cannot be read."""
    from sweeper import jsonio

    try:
        with open(path, encoding="utf-8") as f:
            report = jsonio.from_strict(json.load(f))
    except OSError as e:
        raise ConfigError("--quick-report", f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError("--quick-report", f"{path} is not JSON: {e}") from None
    if not isinstance(report, dict):
        raise ConfigError("--quick-report", f"{path} holds a JSON {type(report).__name__}, not a Table 1 report")
    if report.get("budget") == "tuned" and isinstance(report.get("quick"), dict):
        return report["quick"]
    return report


# ---------------------------------------------------------------------------------------------------
# The run


@dataclass
class _Ray:
    """Starts Ray once, before the first study with work, for every submit of the table (a submit
    finds it running and leaves it so); stops it at the end if it was started here."""

    cluster: Any
    num_cpus: int | None
    started: bool = False
    ready: bool = False

    def ensure(self) -> None:
        if not self.ready:
            from .local_ray import start_ray

            self.started = start_ray(self.cluster, self.num_cpus, None)
            self.ready = True

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def tuned_settings(smoke: bool, configs: int | None, search_seeds: int | None, seeds: int | None) -> TunedBudget:
    """The budget with the flags' overrides, validated (ConfigError naming the flag)."""
    name = "smoke" if smoke else "tuned"
    budget = TUNED_BUDGETS[name]
    if configs is not None:
        budget = replace(budget, configs=check_int("--configs", configs, low=1, high=10_000))
    if search_seeds is not None:
        budget = replace(budget, search_seeds=check_int("--search-seeds", search_seeds, low=1, high=MAX_SEARCH_SEEDS))
    if seeds is not None:
        budget = replace(budget, seeds=check_int("--seeds", seeds, low=MIN_SEEDS[name], high=1000))
    return budget


def table1_tuned(*, smoke: bool = False, configs: int | None = None, search_seeds: int | None = None,
                 seeds: int | None = None, only: Sequence[str] | None = None, storage: str | None = None,
                 address: str | None = None, num_cpus: int | str | None = None, quick_report: str | None = None,
                 progress: bool = False, out=sys.stderr) -> dict:
    """Search every unit's hyperparameters, retrain each best configuration, and return the JSON-able
    report beside the quick budget's. Every flag is checked before anything is trained or written."""
    from sweeper.db import StorageError, parse_url
    from sweeper.db.engine import safe_url
    from sweeper.tasks import make_task

    from .local_ray import FlagError, check_address, check_num_cpus, private_ray_env

    budget = tuned_settings(smoke, configs, search_seeds, seeds)
    cpus = check_num_cpus(num_cpus)
    if cpus is not None and address:
        raise FlagError("--num-cpus", "sets the CPUs of the private local Ray; with --address the cluster's "
                                      "own CPUs are used, so leave it out")
    cluster = check_address(address)
    try:
        from sweeper.db import default_url

        url = parse_url(storage or default_url())
    except StorageError as exc:
        raise StorageError(f"storage (--storage or $SWEEPER_DB): {exc}") from None
    settings = budget_settings(budget.base)
    tasks = [make_task(name, **params) for name, params in TASKS]
    chosen = select_units(units(settings, [t.name for t in tasks]), only if only is not None else budget.rows,
                          field="--rows")
    quick_data = read_quick_report(quick_report) if quick_report is not None else None
    quick = quick_variants(quick_data, chosen, budget.base, "--quick-report") if quick_data is not None else None
    specs = {u.key: search_study(u, tasks[u.task_index], settings, budget) for u in chosen}  # StudyError: nothing run

    if cluster is None:
        private_ray_env()  # loopback only; before anything imports ray
    from .driver import _open_database

    started = time.perf_counter()
    db = _open_database(storage)
    ray_ = _Ray(cluster, cpus)
    try:
        _check_stored(db, list(specs.values()))
        with _one_torch_thread():
            if quick_data is None:
                from sweeper.analysis.reproduce import table1

                quick_data = table1(budget=budget.base, progress=progress, only=[u.key for u in chosen])
                quick = quick_variants(quick_data, chosen, budget.base, "quick")
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=2 * len(chosen), unit="study", desc="table1 tuned", dynamic_ncols=True, file=out)
            rows = [_unit_row(unit, tasks[unit.task_index], settings, budget, specs[unit.key], quick[unit.key], db,
                              storage, ray_, bar) for unit in chosen]
            if bar is not None:
                bar.close()
    finally:
        ray_.close()
        db.dispose()
    return {
        "table": "table1", "budget": "tuned", "smoke": smoke, "base_budget": budget.base,
        "settings": {**settings, "configs": budget.configs, "search_seeds": budget.search_seeds,
                     "seeds": budget.seeds, "packs": budget.packs, "search": "random", "search_seed": budget.search_seed,
                     "retrain_seeds": list(range(RETRAIN_SEED0, RETRAIN_SEED0 + budget.seeds))},
        "spaces": {model: {a: ({"values": [v if math.isfinite(v) else "inf" for v in s["values"]]}
                               if "values" in s else dict(s)) for a, s in space.items()}
                   for model, space in SPACES.items()},
        "fixed": {"Ephemeral": {k: v for k, v in EPHEMERAL_HYPER.items() if k not in SPACES["Ephemeral"]},
                  "RNN": {"ratio": 0.0, "optimizer": "adam", "grad_clip": 1.0}},
        "storage": safe_url(url),
        "quick_source": quick_report if quick_report is not None else "run here",
        "quick": quick_data,
        "rule": RULE, "tie_rule": TIE_RULE,
        "rows": rows,
        "totals": totals(rows),
        "seconds": time.perf_counter() - started,
    }


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Train in this process with one torch thread (see the module docstring), then restore the count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stored(db, names: Sequence[str]) -> dict[str, tuple[str, dict]]:
    """Study name -> (status, spec) of those of `names` the database holds."""
    import sqlalchemy as sa

    from sweeper.db.models import Study

    with db.read_session() as s:
        found = s.execute(sa.select(Study.name, Study.status, Study.spec).where(Study.name.in_(list(names)))).all()
    return {name: (status.value, spec) for name, status, spec in found}


def _check_stored(db, specs: Sequence) -> None:
    """Refuse, before anything trains, a unit whose study the database holds with another spec (other
    search settings), as `submit` would when it reached that unit."""
    from .store import SpecMismatch

    stored = _stored(db, [spec.name for spec in specs])
    for spec in specs:
        if spec.name in stored and stored[spec.name][1] != spec.to_dict():
            raise SpecMismatch(f"{spec.name!r} is in this database with other search settings (--configs, "
                               "--search-seeds, or another code version's study format); rerun with the settings "
                               "it was made with, or give another --storage")


def _run_study(spec, db, storage: str | None, ray_: _Ray) -> dict:
    """Submit `spec` unless it is COMPLETE in the database already; what happened."""
    status = _stored(db, [spec.name]).get(spec.name, (None, None))[0]
    if status == "COMPLETE":
        return {"study": spec.name, "status": status, "ran": 0, "seconds": 0.0, "skipped": True}
    ray_.ensure()
    from .driver import submit

    result = submit(spec, storage=storage, progress=False)
    return {"study": spec.name, "status": result.status, "ran": result.ran, "seconds": result.seconds,
            "skipped": False}


def _unit_row(unit: Unit, task, settings, budget: TunedBudget, spec, quick: Mapping[str, Any], db,
              storage: str | None, ray_: _Ray, bar) -> dict:
    from sweeper.db import member_rows

    row = {**row_head(unit, task), "key": unit.key, "recurrence_setting": "on" if unit.recurrence else "off"}
    row["quick"] = {k: quick.get(k) for k in ("category", "mem_acc_mean", "ci_low", "ci_high", "explosion_rate")}
    row["quick"]["holds"] = quick.get("category") == row["expected"]

    def step(phase: str) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{unit.key}: {phase}")

    step("search")
    search = _run_study(spec, db, storage, ray_)
    if bar is not None:
        bar.update(1)
    axes = [a.name for a in spec.space]
    cands = candidates(member_rows(db, spec.name), axes) if search["status"] == "COMPLETE" else []
    best = choose_best(cands)
    clean = [c for c in cands if c.clean]
    stable_values = [c.mean for c in cands if c.mean is not None]
    search.update({
        "configs": len(cands), "clean_configs": len(clean),
        "exploded_configs": sum(1 for c in cands if c.exploded), "members": sum(c.seeds for c in cands),
        "exploded_members": sum(c.exploded for c in cands),
        "best_mem_acc": max((c.mean for c in clean), default=None),
        "best_mem_acc_any": max(stable_values, default=None),
    })
    row["search"] = search
    row["best"] = None if best is None else {"config_index": best.config_index, "point": best.point,
                                             "search_mean": best.mean, "search_worst": best.worst,
                                             "clean": best.clean, "exploded_seeds": best.exploded}
    row["tuned"] = None
    if best is not None:
        step("retrain")
        seeds = list(range(RETRAIN_SEED0, RETRAIN_SEED0 + budget.seeds))
        row["tuned"] = run_variant(spec.run, retrain_members(spec, best.point, seeds), settings["eval_batches"],
                                   row["baseline"])
    if bar is not None:
        bar.update(1)
    row["tuned_holds"] = row["tuned"] is not None and row["tuned"]["category"] == row["expected"]
    row["quick_holds"] = row["quick"]["holds"]
    return row


def totals(rows: Sequence[Mapping[str, Any]]) -> dict:
    """Agreement with the paper per unit, and per table row (task x configuration: an "any" row holds
    when each of its recurrence settings does, as in the quick budget's report)."""
    by_row: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        by_row.setdefault((r["task"], r["id"]), []).append(r)
    return {
        "units": len(rows),
        "quick_units_hold": sum(bool(r["quick_holds"]) for r in rows),
        "tuned_units_hold": sum(bool(r["tuned_holds"]) for r in rows),
        "table_rows": len(by_row),
        "quick_rows_hold": sum(all(r["quick_holds"] for r in rs) for rs in by_row.values()),
        "tuned_rows_hold": sum(all(r["tuned_holds"] for r in rs) for rs in by_row.values()),
    }


# ---------------------------------------------------------------------------------------------------
# Printing


def _fmt(x, spec=".2f") -> str:
    return "  -  " if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _point(point: Mapping[str, float] | None) -> str:
    if not point:
        return "-"
    return " ".join(f"{k} {'inf' if math.isinf(v) else format(v, '.3g')}" for k, v in point.items())


def _space(space: Mapping[str, Mapping[str, Any]]) -> str:
    def axis(a: Mapping[str, Any]) -> str:
        if "values" in a:
            return "{" + ", ".join(v if isinstance(v, str) else format(v, "g") for v in a["values"]) + "}"
        return f"[{a['low']:g}, {a['high']:g}]{' log' if a.get('log') else ''}"

    return ", ".join(f"{name} {axis(a)}" for name, a in space.items())


def format_tuned(report: Mapping[str, Any]) -> str:
    """One line per unit: the quick budget's rating, the tuned one, the paper's, and the best configuration."""
    s = report["settings"]
    lines = [
        f"Table 1, tuned per unit{' (smoke)' if report['smoke'] else ''}: the {report['base_budget']} budget's "
        f"training (width {s['width']}, batch {s['batch_size']}, {s['batches']} batches, eval {s['eval_batches']} "
        f"batches); per unit a random search of {s['configs']} configurations x {s['search_seeds']} seeds, the best "
        f"retrained on seeds {s['retrain_seeds'][0]}..{s['retrain_seeds'][-1]}; database {report['storage']}",
        "searched: " + "; ".join(f"{model} {_space(report['spaces'][model])} (fixed: "
                                 + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in report["fixed"][model].items()) + ")"
                                 for model in report["spaces"]),
        f"quick side: {report['quick_source']}",
        "",
        f"{'task':<11} {'model':<9} {'updater':<8} {'rec':<7} {'paper':<16} {'quick':<9} {'holds':<5}  "
        f"{'tuned':<9} {'holds':<5} {'mem_acc':>7} {'95% interval':>13} {'expl':>5}  best configuration",
    ]
    for r in report["rows"]:
        rec = f"any:{r['recurrence_setting']}" if r["recurrence"] == "any" else r["recurrence"]
        t = r["tuned"] or {}
        interval = f"[{_fmt(t.get('ci_low'))}, {_fmt(t.get('ci_high'))}]" if t else ""
        best = _point(r["best"]["point"]) if r["best"] else "-"
        if r["best"] and not r["best"]["clean"]:
            best += " (no configuration stable on every seed)"
        lines.append(
            f"{r['task']:<11} {r['model']:<9} {r['updater']:<8} {rec:<7} {r['paper'].split(' (updates')[0]:<16} "
            f"{r['quick']['category'] or '-':<9} {'yes' if r['quick_holds'] else 'NO':<5}  "
            f"{t.get('category', '-'):<9} {'yes' if r['tuned_holds'] else 'NO':<5} {_fmt(t.get('mem_acc_mean')):>7} "
            f"{interval:>13} {_fmt(t.get('explosion_rate')):>5}  {best}")
    disagree = [r for r in report["rows"] if not r["tuned_holds"]]
    if disagree:
        lines += ["", "units that still disagree with the paper, and what their search found:"]
        for r in disagree:
            sr = r["search"]
            if sr["status"] != "COMPLETE":
                lines.append(f"  {r['key']}: search {sr['status']} (run the command again to resume)")
                continue
            lines.append(
                f"  {r['key']}: best mean eval memory accuracy {_fmt(sr['best_mem_acc'])} over configurations stable "
                f"on every seed ({sr['clean_configs']} of {sr['configs']}; counting those with an exploded seed too: "
                f"{_fmt(sr['best_mem_acc_any'])}); {sr['exploded_configs']} of {sr['configs']} configurations exploded "
                f"on at least one seed ({sr['exploded_members']} of {sr['members']} members)")
    tot = report["totals"]
    lines += [
        "",
        "mem_acc, interval, expl: the retrained best configuration's evaluation memory accuracy (mean over "
        "non-exploded seeds) and explosion rate. quick: the one shared hyperparameter set.",
        report["rule"],
        TIE_RULE,
        f"paper's rating holds: quick {tot['quick_units_hold']} of {tot['units']} units "
        f"({tot['quick_rows_hold']} of {tot['table_rows']} task x configuration rows); tuned "
        f"{tot['tuned_units_hold']} of {tot['units']} units ({tot['tuned_rows_hold']} of {tot['table_rows']} rows); "
        f"wall time {report['seconds']:.0f} s",
    ]
    return "\n".join(lines)
