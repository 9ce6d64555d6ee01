"""Study files: a TOML description of one hyperparameter search, validated before any compute.

    name = "quickstart"
    description = "DFA on key recall: where do lr and plasticity recall?"

    [task]                      # as in run files: the task, model and training of every member
    name = "key_recall"
    [model]
    width = 128
    [train]
    batches = 1000

    [search]
    kind = "random"             # "grid", "random", "optuna" (then sampler = "tpe", "gp", "cmaes", "nsga2")
    configs = 8                 # grid: computed from the space           or "frontier" (see below)
    seed = 0

    [[objectives]]              # one or more; more than one is a multi-objective search
    metric = "eval_mem_acc"     # direction defaults to the metric's natural one
    direction = "maximize"

    [space.lr]                  # low/high (+ log) for random and optuna, low/high/num for grid (and
    low = 3e-3                  # frontier, to choose among a grid's points), or `values = [...]`:
                                # grid points, or a categorical choice
    high = 3e-2
    log = true

    [fixed]                     # hyperparameters not searched; the rest keep Hyper's defaults
    gamma = 0.7

    [execution]                 # how the configurations are packed and run
    seeds = 2                   # 0, 1; or an explicit list [3, 7]
    members_per_trial = 4       # one Ray trial trains this many members as one population
    cpus = 1
    gpus = 0

    [early_warning]
    enabled = false

Two searches use a fitted stability boundary (`sweeper.analysis`):

    [search]
    kind = "frontier"           # active learning: a space-filling seed design of `initial` points,
    configs = 12                # then points near the boundary fitted on the packs finished so far
    initial = 4                 # (default: 4, at most configs)
    explore = 0.1               # fraction of points drawn anywhere in the space instead (default 0.1)
    candidates = 4096           # random candidate points scored per proposal (default 4096)
    offset = 0.25               # distance from the line of the first points placed beside it, in the
    min_offset = 0.08           # space's unit square; it shrinks to min_offset as configurations
                                # gather near the line (defaults 0.25, 0.08)
    stable_share = 0.5          # share of those points on the predicted-stable side (default 0.5;
                                # lower spends less: a stable member trains its whole budget)
                                # With `num` (or `values`) on every axis of [space] the frontier
                                # chooses among that grid's configurations, each at most once
                                # (configs <= the grid's size; candidates, offset, min_offset and
                                # stable_share do not apply and are refused)

    [search]
    kind = "optuna"
    configs = 32
    boundary_fit = "fig7_grid"  # a study whose latest stored fit filters proposals, or "self" (refit
    min_p_stable = 0.5          # on this study's finished members); proposals predicted P(stable) <
    max_skips = 20              # min_p_stable are told FAIL ("skipped: ...") and not trained; after
                                # max_skips in a row, the most stable proposal seen is moved onto
                                # the predicted-stable side (within bounds) and trained

Both searches, `sweeper boundary` and the dashboard work in the study's plane: two axes of its
model, `DEFAULT_PLANES` unless `[search] plane` names them (each must then vary in [space]):

    [search]
    plane = ["lr", "lambda"]    # default: ephemeral and rnn (lr, plasticity), fastweights (lr, eta),
                                # fwp (lr, beta_scale); a frontier search needs both axes in [space]

A study of a fast-weight family (docs/families.md) names it in `[model] kind` ("fastweights" or
"fwp", with that model's options as in run files) and searches the family's own axes
(`FAMILY_AXES`): fastweights lr, eta, lambda, clip; fwp lr, beta_scale, lambda, clip. The
family's categorical options (phi, rule, decay, ...) stay in [model]; `[train]` takes the families'
settings (updater bptt, optimizer sgd or adam). Its plane defaults to (lr, eta) or (lr, beta_scale).
Its early warning reads the family's own signals (`sweeper.warn.signals`); the predictor
`transition_bound` is for fwp's delta rules only (refused elsewhere by name). For example:

    [model]
    kind = "fwp"
    rule = "delta"
    phi = "silu_l2"
    [train]
    optimizer = "adam"
    batches = 300
    [space.lr]
    low = 1e-3
    high = 3e-2
    log = true
    [space.beta_scale]
    values = [0.5, 1.0, 2.0]

A configuration is one point of the space; it is trained once per seed, and a configuration's seeds
always stay in the same trial, so `members_per_trial` is a multiple of the number of seeds.

Files are data: parsed with tomllib, never executed. Every mistake (unknown or duplicate keys, wrong
types, empty or inverted ranges, values outside a hyperparameter's legal range, a sampler that cannot
handle the space, a pack that cannot fit in memory) raises `StudyError` naming the file, the field and
what is allowed. Importing this module loads no torch, ray or optuna; only the memory check imports
the engine, and only while a study is validated.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.config import ConfigError, Hyper, RunConfig, check_bool, check_choice, check_int, check_real
from sweeper.engine.families.config import FAMILIES, FamilyRun
from sweeper.outcomes import MEMORY_LEVEL, MEMORY_LEVEL_RANGE
from sweeper.study.runfile import FAMILY_HYPERS, FAMILY_MODELS, build_run, family_axes, model_kind

HYPER_AXES = ("lr", "plasticity", "ratio", "gamma", "clip")
"""The axes of the ephemeral model and of the RNN baseline (sweeper.config.Hyper)."""
FAMILY_AXES = {kind: tuple(a for a in family_axes(kind) if a != "seed") for kind in FAMILIES}
"""The axes of each fast-weight family: {"fastweights": (lr, eta, lambda, clip), "fwp": (lr, beta_scale,
lambda, clip)} (FastWeightsHyper, FWPHyper by study-axis name)."""


def axes_of(kind: str) -> tuple[str, ...]:
    """The axes a study of model `kind` may search or fix, in canonical order."""
    return FAMILY_AXES.get(kind, HYPER_AXES)


DEFAULT_PLANES = {"ephemeral": ("lr", "plasticity"), "rnn": ("lr", "plasticity"), "fastweights": ("lr", "eta"),
                  "fwp": ("lr", "beta_scale")}
"""The (x, y) plane of a study's stability boundary and frontier, by model, when `[search] plane` is not given."""


def default_plane(kind: str) -> tuple[str, str]:
    """The plane of a study of model `kind` that names none (`DEFAULT_PLANES`)."""
    return DEFAULT_PLANES.get(kind, DEFAULT_PLANES["ephemeral"])
OBJECTIVE_METRICS = {
    "eval_mem_acc": "maximize",
    "mem_acc": "maximize",
    "eval_acc": "maximize",
    "final_loss": "minimize",
    "eval_loss": "minimize",
    "explosion_rate": "minimize",
}
"""Metric -> its natural direction (the default when an objective gives none)."""
DIRECTIONS = ("maximize", "minimize")
SEARCH_KINDS = ("grid", "random", "optuna", "frontier")
SAMPLERS = ("tpe", "gp", "cmaes", "nsga2")
"""Optuna samplers. `gp` needs Optuna >= 4.4 for more than one objective (logEHVI)."""
DEFAULT_PREDICTOR = "ratio_rule"

MAX_FILE_BYTES = 1 << 20
MAX_CONFIGS = 100_000
MAX_MEMBERS = 1_000_000
"""configurations x seeds over the whole study."""
MAX_SEEDS = 10_000
MAX_VALUES = 10_000
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "1-64 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit"

TOP_KEYS = ("name", "description", "task", "model", "train", "search", "objectives", "space", "fixed",
            "execution", "early_warning")
REQUIRED_KEYS = ("name", "task", "search", "objectives", "space")
SEARCH_KEYS = ("kind", "sampler", "configs", "seed", "initial", "explore", "candidates", "offset", "min_offset",
               "stable_share", "boundary_fit", "min_p_stable", "max_skips", "plane")
FRONTIER_KEYS = ("initial", "explore", "candidates")
FRONTIER_DESIGN = {"offset": 0.25, "min_offset": 0.08, "stable_share": 0.5}
"""The frontier's placement settings and their defaults (sweeper.sweep.frontier); a study stores them only
when they differ from these, so a study stored without them keeps its spec (and resumes)."""
RANGE_ONLY_KEYS = ("candidates", *FRONTIER_DESIGN)
"""Frontier keys that place points beside the line in a continuous space; a frontier over a grid's
configurations refuses them."""
FILTER_KEYS = ("boundary_fit", "min_p_stable", "max_skips")
OBJECTIVE_KEYS = ("metric", "direction")
AXIS_KEYS = ("low", "high", "log", "num", "values")
EXECUTION_KEYS = ("seeds", "members_per_trial", "cpus", "gpus", "max_failures", "eval_batches", "report_every",
                  "memory_level")
EARLY_WARNING_KEYS = ("enabled", "predictor", "shadow_fraction", "min_step", "threshold", "params", "pack_stop")


class StudyError(ConfigError):
    """A study file is malformed. The message reads "FILE: FIELD: what is wrong; what is allowed"."""

    def __init__(self, field_name: str, message: str, path: str = "<study>"):
        super().__init__(field_name, message)
        self.args = (f"{path}: {field_name}: {message}",)
        self.path = path
        self.reason = message


# --- the parsed study --------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One searched hyperparameter: explicit `values`, or a `low`..`high` range (log-uniform if `log`).

    A grid axis given as a range has its `num` points computed into `values` (log or linear spacing);
    the range is kept so the file can be rebuilt as written.
    """

    name: str
    low: float | None
    high: float | None
    log: bool
    values: tuple[float, ...] | None
    num: int | None = None
    """Grid points of a range axis; None otherwise."""

    @property
    def categorical(self) -> bool:
        """The values were listed in the file (a range's grid points are not a categorical choice)."""
        return self.values is not None and self.num is None


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str
    """"maximize" or "minimize"."""


@dataclass(frozen=True)
class Search:
    kind: str
    """"grid", "random" or "optuna"."""
    sampler: str | None
    """Optuna's sampler ("tpe" by default); None for grid and random."""
    configs: int
    """Configurations to train (grid: the grid's size)."""
    seed: int
    """Seeds the random draws and the Optuna sampler."""
    initial: int | None = None
    """frontier: configurations of the space-filling seed design proposed before any fit."""
    explore: float | None = None
    """frontier: fraction of proposals drawn anywhere in the space rather than near the boundary."""
    candidates: int | None = None
    """frontier over ranges: random candidate points scored per proposal."""
    offset: float | None = None
    """frontier over ranges: distance from the fitted line, in the space's unit square, of the first points
    placed beside it (sweeper.sweep.frontier)."""
    min_offset: float | None = None
    """frontier over ranges: the distance it shrinks to as configurations gather near the line."""
    stable_share: float | None = None
    """frontier over ranges: share of the points beside the line placed on its predicted-stable side.
    (None, with candidates, offset and min_offset, for a frontier over a grid's configurations.)"""
    boundary_fit: str | None = None
    """optuna: "self" or a study whose latest stored boundary fit filters the sampler's proposals."""
    min_p_stable: float | None = None
    """optuna with boundary_fit: proposals predicted less stable than this are skipped (not trained)."""
    max_skips: int | None = None
    """optuna with boundary_fit: skips in a row before the most stable proposal seen is trained anyway."""
    plane: tuple[str, str] | None = None
    """The (x, y) axes of the study's boundary and frontier as the file names them; None: the model's
    default (`StudySpec.plane` resolves it)."""


@dataclass(frozen=True)
class Execution:
    seeds: tuple[int, ...]
    """Every configuration is trained once per seed, in the same trial."""
    members_per_trial: int
    """Members trained as one population by one Ray trial: a multiple of len(seeds)."""
    cpus: float
    gpus: float
    """Resources one trial reserves. gpus > 0 exactly when train.device is CUDA; fractions share a GPU."""
    max_failures: int
    """Ray Tune retries of a failed trial (-1: retry forever)."""
    eval_batches: int
    """Batches of fresh sequences evaluated after training (0: none; then no eval_* objective)."""
    report_every: int
    """Training batches between progress reports to Ray Tune."""
    memory_level: float = MEMORY_LEVEL
    """Confidence of the memory judgement, in (0.5, 1): a stable member remembers when its evaluation
    memory accuracy beats what a member without memory reaches with this probability
    (`sweeper.outcomes.memory_threshold`)."""


@dataclass(frozen=True)
class EarlyWarningSpec:
    enabled: bool
    predictor: str
    """"ratio_rule" or the name of a stored predictor."""
    shadow_fraction: float
    """Fraction of flagged members kept training anyway, to measure the predictor's false alarms."""
    min_step: int
    """No member is flagged before this training batch."""
    threshold: float | None
    """The predictor's decision threshold; None for its own default."""
    params: dict = field(default_factory=dict)
    """Predictor-specific scalars."""
    pack_stop: float | None = None
    """Stop a whole pack through Ray Tune once this fraction of its members exploded or were stopped
    (`sweeper.sweep.stopper`); None: packs end when their last member does."""


@dataclass(frozen=True)
class StudySpec:
    name: str
    description: str
    path: str | None
    source: str
    """The file's text, as read."""
    task: dict
    model: dict
    train: dict
    """The raw [task], [model] and [train] sections, as given."""
    run: RunConfig | FamilyRun
    """Built from the three sections with `runfile.build_run` (a FamilyRun for a fast-weight family)."""
    fixed: dict[str, float]
    """Hyperparameters not searched, as given; the rest keep the defaults of Hyper (or of the
    family's FastWeightsHyper / FWPHyper)."""
    space: tuple[Axis, ...]
    """Searched axes, in `axes_of(kind)` order."""
    search: Search
    objectives: tuple[Objective, ...]
    execution: Execution
    early_warning: EarlyWarningSpec

    @property
    def kind(self) -> str:
        """The model kind: "ephemeral", "rnn", "fastweights" or "fwp"."""
        return self.run.model.family if isinstance(self.run, FamilyRun) else self.run.model.kind

    @property
    def plane(self) -> tuple[str, str]:
        """The (x, y) axes of the study's stability boundary and frontier: `[search] plane`, else the
        model's default (`DEFAULT_PLANES`)."""
        return self.search.plane or default_plane(self.kind)

    @property
    def is_family(self) -> bool:
        """A fast-weight family's study (members are FastWeightsHyper or FWPHyper)."""
        return isinstance(self.run, FamilyRun)

    @property
    def configs_per_trial(self) -> int:
        return self.execution.members_per_trial // len(self.execution.seeds)

    def n_trials(self) -> int:
        return math.ceil(self.search.configs / self.configs_per_trial)

    def points(self) -> list[dict[str, float]]:
        """The configurations to train: the grid's cartesian product (last axis fastest), or
        `configs` random draws seeded by search.seed. Optuna's points come from its sampler."""
        if self.search.kind == "grid":
            names = [a.name for a in self.space]
            return [dict(zip(names, combo)) for combo in itertools.product(*(a.values for a in self.space))]
        if self.search.kind == "random":
            rng = np.random.default_rng(self.search.seed)
            return [{a.name: _draw(a, rng) for a in self.space} for _ in range(self.search.configs)]
        raise StudyError("search.kind", f"{self.search.kind} studies have no precomputed points; "
                         + ("the sampler proposes them" if self.search.kind == "optuna"
                            else "sweeper.sweep.frontier proposes them"), self.path or "<study>")

    def hypers(self, point: Mapping[str, float]) -> list:
        """One member per seed: the fixed values, then the point's, then the seed. `Hyper`s, or for a
        family its FastWeightsHyper / FWPHyper (built from axis names with `.from_axes`)."""
        names = {a.name for a in self.space}
        if set(point) != names:
            raise ConfigError("point", f"got axes {sorted(point)}; expected exactly {sorted(names)}")
        if self.is_family:
            cls = FAMILY_HYPERS[self.kind]
            members = [cls.from_axes({**self.fixed, **point, "seed": s}) for s in self.execution.seeds]
        else:
            members = [Hyper(**self.fixed, **point, seed=s) for s in self.execution.seeds]
        for h in members:
            self.run.check_hyper(h)
        return members

    def to_dict(self) -> dict:
        """Strict-JSON form (an infinite clip is the string "inf"); `study_from_dict` rebuilds it."""
        space = {}
        for a in self.space:
            if a.num is not None:
                space[a.name] = {"low": a.low, "high": a.high, "log": a.log, "num": a.num}
            elif a.values is not None:
                space[a.name] = {"values": [_encode(v) for v in a.values]}
            else:
                space[a.name] = {"low": a.low, "high": a.high, "log": a.log}
        search = {"kind": self.search.kind, "configs": self.search.configs, "seed": self.search.seed}
        if self.search.sampler is not None:
            search["sampler"] = self.search.sampler
        for key in FRONTIER_KEYS + FILTER_KEYS:
            if getattr(self.search, key) is not None:
                search[key] = getattr(self.search, key)
        for key, default in FRONTIER_DESIGN.items():
            if getattr(self.search, key) not in (None, default):
                search[key] = getattr(self.search, key)
        if self.search.plane is not None:
            search["plane"] = list(self.search.plane)
        ex, ew = self.execution, self.early_warning
        early = {"enabled": ew.enabled, "predictor": ew.predictor, "shadow_fraction": ew.shadow_fraction,
                 "min_step": ew.min_step, "params": dict(ew.params)}
        if ew.threshold is not None:
            early["threshold"] = ew.threshold
        if ew.pack_stop is not None:
            early["pack_stop"] = ew.pack_stop
        return {
            "format": 1, "path": self.path, "source": self.source,
            "name": self.name, "description": self.description,
            "task": dict(self.task), "model": dict(self.model), "train": dict(self.train),
            "search": search,
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
            "space": space,
            "fixed": {k: _encode(v) for k, v in self.fixed.items()},
            "execution": {"seeds": list(ex.seeds), "members_per_trial": ex.members_per_trial, "cpus": ex.cpus,
                          "gpus": ex.gpus, "max_failures": ex.max_failures, "eval_batches": ex.eval_batches,
                          "report_every": ex.report_every,
                          # only when set: a study stored without it keeps its spec (and resumes)
                          **({"memory_level": ex.memory_level} if ex.memory_level != MEMORY_LEVEL else {})},
            "early_warning": early,
        }


def _draw(axis: Axis, rng: np.random.Generator) -> float:
    if axis.values is not None:
        return axis.values[int(rng.integers(len(axis.values)))]
    if axis.log:
        v = math.exp(rng.uniform(math.log(axis.low), math.log(axis.high)))
    else:
        v = float(rng.uniform(axis.low, axis.high))
    return min(max(v, axis.low), axis.high)  # exp(log(x)) may round past a bound


def _encode(v: float) -> float | str:
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")


def _decode(v: Any) -> Any:
    return {"inf": math.inf, "-inf": -math.inf}.get(v, v) if isinstance(v, str) else v


# --- reading a file ----------------------------------------------------------------------------


def load_study(path: str | Path, *, budget_bytes: int | None = None) -> StudySpec:
    """Read and validate a study file. `budget_bytes` replaces the device's free memory in the
    memory check (default: measured; skipped for a CUDA study on a machine without CUDA)."""
    name = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise StudyError("file", f"{size} bytes; a study file is at most {MAX_FILE_BYTES} bytes", name)
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise StudyError("file", "no such file", name) from None
    except IsADirectoryError:
        raise StudyError("file", "is a directory; expected a TOML study file", name) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StudyError("file", f"not UTF-8 (byte {exc.start}); study files are UTF-8 TOML", name) from None
    return parse_study(text, name, budget_bytes=budget_bytes)


def parse_study(text: str, path: str = "<study>", *, budget_bytes: int | None = None) -> StudySpec:
    """Validate study-file text; `path` names the file in error messages."""
    if not isinstance(text, str):
        raise StudyError("file", f"got {type(text).__name__}; expected text", path)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise StudyError("file", f"longer than {MAX_FILE_BYTES} bytes; a study file is at most 1 MiB", path)
    if not text.strip():
        raise StudyError("file", "empty; expected a TOML study with at least name, task, search, objectives, space",
                         path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        field_name, message = _toml_error(text, str(exc))
        raise StudyError(field_name, message, path) from None
    if not data:
        raise StudyError("file", "no keys, only comments; expected at least name, task, search, objectives, space",
                         path)
    return _build(data, path, text, budget_bytes)


def study_from_dict(data: Mapping[str, Any], *, budget_bytes: int | None = None) -> StudySpec:
    """Rebuild (and revalidate) a study from `StudySpec.to_dict()`, e.g. as stored in the database.

    The memory check runs only when `budget_bytes` is given: a stored study must load for analysis
    on a machine smaller than the one it ran on."""
    data = dict(data)
    data.pop("format", None)
    path, source = data.pop("path", None), data.pop("source", "")
    where = path or "<study>"
    if isinstance(data.get("fixed"), Mapping):
        data["fixed"] = {k: _decode(v) for k, v in data["fixed"].items()}
    if isinstance(data.get("space"), Mapping):
        data["space"] = {k: ({**a, "values": [_decode(v) for v in a["values"]]}
                             if isinstance(a, Mapping) and isinstance(a.get("values"), list) else a)
                         for k, a in data["space"].items()}
    spec = _build(data, where, source, budget_bytes, check_memory=budget_bytes is not None)
    return spec if path is not None else replace(spec, path=None)


def _toml_error(text: str, message: str) -> tuple[str, str]:
    """Name the key of a duplicate-key error, which tomllib reports only by position."""
    m = re.search(r"at line (\d+)", message)
    lines = text.splitlines()
    lineno = int(m.group(1)) if m else len(lines)
    twice = re.search(r"Cannot declare \(([^)]*)\) twice", message)
    if twice:
        table = ".".join(re.findall(r"'([^']*)'", twice.group(1)))
        return table, f"duplicate table at line {lineno}; each table may appear once"
    if "overwrite a value" in message or "redefine" in message:
        line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        key = re.match(r"\s*([^=\[]+?)\s*=", line)
        header = ""
        for previous in lines[: lineno - 1]:
            h = re.match(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?", previous)
            if h:
                header = h.group(1)
        if key:
            parts = [p.strip().strip("\"'") for p in key.group(1).split(".")]
            name = ".".join(([header] if header else []) + parts)
            return name, f"duplicate key at line {lineno}; each key may appear once"
    return "toml", f"not valid TOML: {message}"


# --- validation --------------------------------------------------------------------------------


@contextmanager
def _renamed(name: str) -> Iterator[None]:
    """Report a ConfigError from the config layer under this study field instead of its own."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(name, _reason(exc)) from None


def _reason(exc: ConfigError) -> str:
    text = str(exc)
    return text[len(exc.field) + 2:] if text.startswith(f"{exc.field}: ") else text


def _table(value: Any, name: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(name, f"got {type(value).__name__}; expected a table [{name}]")
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{name}.{key}", f"unknown key; allowed: {', '.join(allowed)}")
    return dict(value)


def _section(value: Any, name: str) -> dict:
    """A run-file section; its keys are checked by build_run."""
    if not isinstance(value, Mapping):
        raise ConfigError(name, f"got {type(value).__name__}; expected a table [{name}]")
    return dict(value)


def _build(data: Mapping[str, Any], path: str, source: str, budget_bytes: int | None,
           check_memory: bool = True) -> StudySpec:
    try:
        return _validate(data, path, source, budget_bytes, check_memory)
    except StudyError:
        raise
    except ConfigError as exc:
        raise StudyError(exc.field, _reason(exc), path) from None


def _validate(data: Mapping[str, Any], path: str, source: str, budget_bytes: int | None,
              check_memory: bool) -> StudySpec:
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(key, f"unknown key; allowed: {', '.join(TOP_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ConfigError(key, f"missing; a study needs {', '.join(REQUIRED_KEYS)}")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError("name", f"got {name!r}; expected {NAME_RULE}")
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 10_000:
        raise ConfigError("description", "expected a string of at most 10000 characters")

    task, model, train = (_section(data.get(key, {}), key) for key in ("task", "model", "train"))
    mkind = model_kind(model)
    family = mkind in FAMILIES
    if family:
        _check_family_options(mkind, model)
    # refuses unknown keys and bad values, naming them (task.gap_max)
    run = build_run(task, model, train, families=family)

    search_raw = _table(data["search"], "search", SEARCH_KEYS)
    if "kind" not in search_raw:
        raise ConfigError("search.kind", f"missing; expected one of {', '.join(SEARCH_KINDS)}")
    kind = check_choice("search.kind", search_raw["kind"], SEARCH_KINDS)
    seed = check_int("search.seed", search_raw.get("seed", 0), low=0, high=2**62)
    if "sampler" in search_raw and kind != "optuna":
        raise ConfigError("search.sampler", f"applies to kind = \"optuna\" only; this search is {kind!r}")
    sampler = check_choice("search.sampler", search_raw.get("sampler", "tpe"), SAMPLERS) if kind == "optuna" else None

    objectives = _objectives(data["objectives"])
    fixed = _fixed(data.get("fixed", {}), mkind)
    space = _space(data["space"], kind, fixed, mkind)
    if mkind == "rnn" and "ratio" not in fixed and all(a.name != "ratio" for a in space):
        fixed["ratio"] = 0.0  # the RNN baseline has no ephemeral entries: ratio 0 unless the file says otherwise
    plane = _plane(search_raw, mkind, space)

    if kind == "grid":
        configs = math.prod(len(a.values) for a in space)
        if configs > MAX_CONFIGS:
            raise ConfigError("space", f"a grid of {configs} configurations; at most {MAX_CONFIGS}")
        if "configs" in search_raw and search_raw["configs"] != configs:
            raise ConfigError("search.configs", f"got {search_raw['configs']!r}; a grid's size is computed from "
                              f"the space ({configs} here): remove the key")
    else:
        if "configs" not in search_raw:
            raise ConfigError("search.configs", f"missing; a {kind} search needs the number of configurations, "
                              f"an integer in [1, {MAX_CONFIGS}]")
        configs = check_int("search.configs", search_raw["configs"], low=1, high=MAX_CONFIGS)
    search = Search(kind, sampler, configs, seed, **_search_extras(search_raw, kind, configs, space,
                                                                  plane or default_plane(mkind)), plane=plane)
    _check_sampler(search, space, objectives)

    execution = _execution(data.get("execution", {}), run)
    if configs * len(execution.seeds) > MAX_MEMBERS:
        raise ConfigError("space" if kind == "grid" else "search.configs",
                          f"{configs} configurations x {len(execution.seeds)} seeds = "
                          f"{configs * len(execution.seeds)} members; at most {MAX_MEMBERS} in one study")
    if execution.eval_batches == 0:
        for o in objectives:
            if o.metric.startswith("eval_"):
                raise ConfigError("execution.eval_batches", f"0, but objective {o.metric} needs an evaluation; "
                                  "expected an integer in [1, 100000]")
    early = _early_warning(data.get("early_warning", {}), run)
    # transition_bound (sweeper.warn.predictors) reads transition_max, which only the delta rules record
    if early.enabled and early.predictor == "transition_bound" and not (
            mkind == "fwp" and run.model.rule in ("delta", "gated_delta")):
        on = f"fwp (rule {run.model.rule})" if mkind == "fwp" else mkind
        raise ConfigError("early_warning.predictor", f"transition_bound applies to model fwp with rule delta or "
                          f"gated_delta (it watches their transition_max); this study's model is {on}: use "
                          "ratio_rule or a stored predictor")

    _check_model(run, fixed, space)
    if check_memory:
        _check_memory(run, space, fixed, execution, budget_bytes)
    return StudySpec(name=name, description=description, path=path, source=source, task=task, model=model,
                     train=train, run=run, fixed=fixed, space=space, search=search, objectives=objectives,
                     execution=execution, early_warning=early)


def _search_extras(raw: Mapping[str, Any], kind: str, configs: int, space: tuple[Axis, ...],
                   plane: tuple[str, str]) -> dict[str, Any]:
    """The frontier keys (kind = "frontier") and the boundary-filter keys (kind = "optuna")."""
    for key in (*FRONTIER_KEYS, *FRONTIER_DESIGN):
        if key in raw and kind != "frontier":
            raise ConfigError(f"search.{key}", f"applies to kind = \"frontier\" only; this search is {kind!r}")
    for key in FILTER_KEYS:
        if key in raw and kind != "optuna":
            raise ConfigError(f"search.{key}", f"applies to kind = \"optuna\" only; this search is {kind!r}")
    if kind == "frontier":
        names = {a.name for a in space}
        if not set(plane) <= names:
            x, y = plane
            raise ConfigError("space", f"a frontier search maps the boundary in the study's ({x}, {y}) plane: "
                              f"search both [space.{x}] and [space.{y}] (or name the plane: search.plane)")
        initial = check_int("search.initial", raw.get("initial", min(4, configs)), low=1, high=MAX_CONFIGS)
        if initial > configs:
            raise ConfigError("search.initial", f"got {initial}; the seed design cannot exceed configs ({configs})")
        explore = check_real("search.explore", raw.get("explore", 0.1), low=0, high=1)
        cells = lattice_size(space)
        if cells is not None:
            if configs > cells:
                raise ConfigError("search.configs", f"got {configs}; every axis of [space] has a finite set of values, "
                                  f"so the frontier has {cells} configurations to choose from: expected at most {cells}")
            for key in RANGE_ONLY_KEYS:
                if key in raw:
                    raise ConfigError(f"search.{key}", "applies to a frontier over ranges; every axis of [space] here "
                                      "has a finite set of values (num or values), and the frontier chooses among "
                                      "those configurations by how far each would move the fitted line")
            return {"initial": initial, "explore": explore}
        offset = check_real("search.offset", raw.get("offset", FRONTIER_DESIGN["offset"]), low=0, high=0.5,
                            low_open=True)
        min_offset = check_real("search.min_offset", raw.get("min_offset", min(FRONTIER_DESIGN["min_offset"], offset)),
                                low=0, high=0.5, low_open=True)
        if min_offset > offset:
            raise ConfigError("search.min_offset", f"got {min_offset:g} > offset {offset:g}; expected 0 < min_offset "
                              "<= offset (the distance shrinks from offset to min_offset)")
        return {"initial": initial, "explore": explore,
                "candidates": check_int("search.candidates", raw.get("candidates", 4096), low=16, high=1_000_000),
                "offset": offset, "min_offset": min_offset,
                "stable_share": check_real("search.stable_share", raw.get("stable_share", FRONTIER_DESIGN["stable_share"]),
                                           low=0, high=1, low_open=True, high_open=True)}
    if kind == "optuna" and "boundary_fit" in raw:
        fit = raw["boundary_fit"]
        if not isinstance(fit, str) or not NAME_RE.fullmatch(fit):
            raise ConfigError("search.boundary_fit", f"got {fit!r}; expected \"self\" or the name of a study with a "
                              f"stored boundary fit ({NAME_RULE})")
        return {"boundary_fit": fit,
                "min_p_stable": check_real("search.min_p_stable", raw.get("min_p_stable", 0.5), low=0, high=1,
                                           low_open=True, high_open=True),
                "max_skips": check_int("search.max_skips", raw.get("max_skips", 20), low=0, high=10_000)}
    for key in ("min_p_stable", "max_skips"):
        if key in raw:
            raise ConfigError(f"search.{key}", "applies only with search.boundary_fit")
    return {}


def lattice_size(space: tuple[Axis, ...]) -> int | None:
    """How many configurations a space of finitely many values per axis holds (a grid's `num` points or
    listed values on every axis), or None when an axis is a continuous range."""
    if not space or any(a.values is None for a in space):
        return None
    return math.prod(len(a.values) for a in space)


def _objectives(raw: Any) -> tuple[Objective, ...]:
    if isinstance(raw, Mapping):
        raise ConfigError("objectives", "got a table; write each objective as an array entry [[objectives]]")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("objectives", "expected one or more [[objectives]] entries, each with a metric")
    objectives, seen = [], set()
    for i, entry in enumerate(raw):
        where = f"objectives[{i}]"
        entry = _table(entry, where, OBJECTIVE_KEYS)
        if "metric" not in entry:
            raise ConfigError(f"{where}.metric", f"missing; expected one of {', '.join(OBJECTIVE_METRICS)}")
        metric = check_choice(f"{where}.metric", entry["metric"], tuple(OBJECTIVE_METRICS))
        direction = check_choice(f"{where}.direction", entry.get("direction", OBJECTIVE_METRICS[metric]), DIRECTIONS)
        if metric in seen:
            raise ConfigError(f"{where}.metric", f"{metric} is already an objective; each metric may appear once")
        seen.add(metric)
        objectives.append(Objective(metric, direction))
    return tuple(objectives)


def _hyper_value(axis: str, value: Any, name: str, *, finite: bool = False, model: str = "ephemeral") -> float:
    """`value` checked against the hyperparameter class's own range for `axis` (Hyper, or the family's
    FastWeightsHyper / FWPHyper), so the two never disagree."""
    if finite and isinstance(value, float) and not math.isfinite(value):
        hint = " (no clipping: clip = inf in [fixed], or inf among values)" if axis == "clip" else ""
        raise ConfigError(name, f"got {value}; a range bound must be a finite number{hint}")
    with _renamed(name):
        if model in FAMILIES:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(name, f"got {value!r}; expected a number")
            h = FAMILY_HYPERS[model].from_axes({axis: value})
            return float(getattr(h, "lam" if axis == "lambda" else axis))
        return float(getattr(Hyper(**{axis: value}), axis))


def _axes_table(raw: Any, where: str, model: str) -> dict:
    """The [fixed] or [space] table, its keys checked against the model's axes."""
    axes = axes_of(model)
    if model not in FAMILIES or not isinstance(raw, Mapping):
        return _table(raw, where, axes)
    for key in raw:
        if key not in axes:
            others = [k for k in (*FAMILIES, "ephemeral") if k != model and key in axes_of(k)]
            owner = f" (an axis of model {' and '.join(others)})" if others else ""
            raise ConfigError(f"{where}.{key}", f"not an axis of model {model}{owner}; the axes of {model}: "
                              f"{', '.join(axes)}")
    return dict(raw)


def _fixed(raw: Any, model: str = "ephemeral") -> dict[str, float]:
    axes = axes_of(model)
    if isinstance(raw, Mapping) and "seed" in raw:
        raise ConfigError("fixed.seed", "seeds are set by execution.seeds; allowed here: " + ", ".join(axes))
    table = _axes_table(raw, "fixed", model)
    return {k: _hyper_value(k, v, f"fixed.{k}", model=model) for k, v in table.items()}


def _space(raw: Any, kind: str, fixed: Mapping[str, float], model: str = "ephemeral") -> tuple[Axis, ...]:
    axes_allowed = axes_of(model)
    if isinstance(raw, Mapping) and "seed" in raw:
        raise ConfigError("space.seed", "seeds are set by execution.seeds; searchable: " + ", ".join(axes_allowed))
    table = _axes_table(raw, "space", model)
    if not table:
        raise ConfigError("space", f"empty; search at least one of {', '.join(axes_allowed)} ([space.lr] ...)")
    axes = []
    for name in axes_allowed:  # canonical order, whatever the file's order
        if name not in table:
            continue
        if name in fixed:
            raise ConfigError(f"fixed.{name}", f"also searched in [space.{name}]; give it in one place")
        axes.append(_axis(name, table[name], kind, model))
    return tuple(axes)


def _check_family_options(model: str, raw: Mapping[str, Any]) -> None:
    """A [model] option of the other family (or of the ephemeral model) is refused naming both."""
    from dataclasses import fields

    from sweeper.config import ModelConfig

    own = {f.name for f in fields(FAMILY_MODELS[model])} | {"kind"}
    for key in raw:
        if key in own:
            continue
        others = [k for k, cls in FAMILY_MODELS.items() if k != model and key in {f.name for f in fields(cls)}]
        if not others and key in {f.name for f in fields(ModelConfig)}:
            others = ["ephemeral"]
        owner = f"an option of model {others[0]}, not of {model}" if others else f"unknown option of model {model}"
        if key == "width":
            owner += f" (the width of {model} is `{'hidden' if model == 'fastweights' else 'd_model'}`)"
        raise ConfigError(f"model.{key}", f"{owner}; the options of {model}: {', '.join(sorted(own - {'kind'}))}")


def _plane(raw: Mapping[str, Any], model: str, space: tuple[Axis, ...]) -> tuple[str, str] | None:
    """`[search] plane`: two distinct axes of the model, each varying in [space]; None when not given.
    (Whether a `boundary_fit` study shares the model and plane is checked against its stored fit, by
    `sweeper.sweep.frontier.check_source`.)"""
    if "plane" not in raw:
        return None
    value, axes = raw["plane"], axes_of(model)
    allowed = f"the axes of model {model}: {', '.join(axes)}"
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(a, str) for a in value):
        example = ", ".join(f'"{a}"' for a in default_plane(model))
        raise ConfigError("search.plane", f"got {value!r}; expected two axes (x, y), e.g. plane = [{example}]; "
                          f"{allowed}")
    for a in value:
        if a not in axes:
            raise ConfigError("search.plane", f"{a!r} is not an axis of model {model}; {allowed}")
    if value[0] == value[1]:
        raise ConfigError("search.plane", f"names {value[0]} twice; expected two distinct axes; {allowed}")
    varying = [a.name for a in space if a.values is None or len(a.values) > 1]
    for a in value:
        if a not in varying:
            raise ConfigError("search.plane", f"{a} does not vary in [space]; each axis of the plane must be "
                              f"searched over a range or two or more values (varying here: "
                              f"{', '.join(varying) or 'none'})")
    return value[0], value[1]


def _axis(name: str, raw: Any, kind: str, model: str = "ephemeral") -> Axis:
    where = f"space.{name}"
    spec = _table(raw, where, AXIS_KEYS)
    if "values" in spec:
        for key in ("low", "high", "log", "num"):
            if key in spec:
                raise ConfigError(f"{where}.{key}", "not with `values`; give either values = [...] or low/high")
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.values", f"expected a non-empty list of numbers, got {values!r}")
        if len(values) > MAX_VALUES:
            raise ConfigError(f"{where}.values", f"{len(values)} values; at most {MAX_VALUES}")
        checked = tuple(_hyper_value(name, v, f"{where}.values[{i}]", model=model) for i, v in enumerate(values))
        if len(set(checked)) != len(checked):
            dup = next(v for v in checked if checked.count(v) > 1)
            raise ConfigError(f"{where}.values", f"{dup:g} appears more than once; each value may appear once")
        return Axis(name, None, None, False, checked)

    for key in ("low", "high"):
        if key not in spec:
            raise ConfigError(f"{where}.{key}", "missing; give low and high (and log), or values = [...]")
    low = _hyper_value(name, spec["low"], f"{where}.low", finite=True, model=model)
    high = _hyper_value(name, spec["high"], f"{where}.high", finite=True, model=model)
    if not low < high:
        raise ConfigError(f"{where}.high", f"got {high:g} <= low {low:g}; expected high > low "
                          "(a single value belongs in [fixed])")
    log = check_bool(f"{where}.log", spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{where}.low", f"got {low:g}; a log axis needs low > 0")
    if kind == "frontier" and "num" not in spec:
        return Axis(name, low, high, log, None)
    if kind not in ("grid", "frontier"):
        if "num" in spec:
            raise ConfigError(f"{where}.num", f"applies to grid and frontier searches only; this search is {kind!r}")
        return Axis(name, low, high, log, None)
    if "num" not in spec:
        raise ConfigError(f"{where}.num", "missing; a grid axis given by low/high needs num, "
                          f"an integer in [2, {MAX_VALUES}]")
    num = check_int(f"{where}.num", spec["num"], low=2, high=MAX_VALUES)
    points = np.geomspace(low, high, num) if log else np.linspace(low, high, num)
    values = tuple(float(f"{v:.12g}") for v in points)  # 1e-4, not 0.00010000000000000002
    values = (low,) + values[1:-1] + (high,)
    if len(set(values)) != num:
        raise ConfigError(f"{where}.num", f"{num} points do not fit between {low:g} and {high:g}")
    return Axis(name, low, high, log, values, num)


def _check_sampler(search: Search, space: tuple[Axis, ...], objectives: tuple[Objective, ...]) -> None:
    if search.sampler != "cmaes":
        return
    if len(objectives) > 1:
        raise ConfigError("search.sampler", "cmaes optimizes a single objective; use tpe, gp or nsga2 for "
                          f"{len(objectives)} objectives")
    for a in space:
        if a.categorical:
            # Optuna's CmaEsSampler would hand categorical parameters to a random sampler, silently.
            raise ConfigError(f"space.{a.name}.values", "cmaes cannot search listed values; give low/high, "
                              "or use sampler tpe, gp or nsga2")
    if len(space) < 2:
        # Optuna's CmaEsSampler falls back to independent random sampling in one dimension.
        raise ConfigError("space", "cmaes needs at least two axes; use tpe or gp for one")


def _execution(raw: Any, run: RunConfig) -> Execution:
    spec = _table(raw, "execution", EXECUTION_KEYS)
    seeds_raw = spec.get("seeds", 1)
    if isinstance(seeds_raw, list):
        if not seeds_raw:
            raise ConfigError("execution.seeds", "empty list; expected seeds (integers >= 0) or a count")
        if len(seeds_raw) > MAX_SEEDS:
            raise ConfigError("execution.seeds", f"{len(seeds_raw)} seeds; at most {MAX_SEEDS}")
        seeds = tuple(check_int(f"execution.seeds[{i}]", s, low=0, high=2**62) for i, s in enumerate(seeds_raw))
        if len(set(seeds)) != len(seeds):
            dup = next(s for s in seeds if seeds.count(s) > 1)
            raise ConfigError("execution.seeds", f"seed {dup} appears more than once; each seed may appear once")
    else:
        seeds = tuple(range(check_int("execution.seeds", seeds_raw, low=1, high=MAX_SEEDS)))
    members = check_int("execution.members_per_trial", spec.get("members_per_trial", len(seeds)),
                        low=1, high=MAX_MEMBERS)
    if members % len(seeds):
        raise ConfigError("execution.members_per_trial", f"got {members}; expected a multiple of the "
                          f"{len(seeds)} seeds (a configuration's seeds train in one trial)")
    cpus = check_real("execution.cpus", spec.get("cpus", 1), low=0, high=1024, low_open=True)
    gpus = check_real("execution.gpus", spec.get("gpus", 0), low=0, high=64)
    cuda = run.train.device.startswith("cuda")
    if gpus > 0 and not cuda:
        raise ConfigError("execution.gpus", f"got {gpus:g} but train.device is {run.train.device!r}; "
                          "set train.device = \"cuda\" or gpus = 0")
    if cuda and gpus == 0:
        raise ConfigError("execution.gpus", f"got 0 but train.device is {run.train.device!r}; a CUDA trial "
                          "reserves gpus > 0 (a fraction shares one GPU)")
    return Execution(
        seeds=seeds,
        members_per_trial=members,
        cpus=cpus,
        gpus=gpus,
        max_failures=check_int("execution.max_failures", spec.get("max_failures", 1), low=-1, high=100),
        eval_batches=check_int("execution.eval_batches", spec.get("eval_batches", 10), low=0, high=100_000),
        report_every=check_int("execution.report_every", spec.get("report_every", 25), low=1, high=1 << 40),
        memory_level=check_real("execution.memory_level", spec.get("memory_level", MEMORY_LEVEL),
                                low=MEMORY_LEVEL_RANGE[0], high=MEMORY_LEVEL_RANGE[1], low_open=True, high_open=True),
    )


def _early_warning(raw: Any, run: RunConfig) -> EarlyWarningSpec:
    spec = _table(raw, "early_warning", EARLY_WARNING_KEYS)
    enabled = check_bool("early_warning.enabled", spec.get("enabled", False))
    predictor = spec.get("predictor", DEFAULT_PREDICTOR)
    if not isinstance(predictor, str) or not NAME_RE.fullmatch(predictor):
        raise ConfigError("early_warning.predictor", f"got {predictor!r}; expected \"{DEFAULT_PREDICTOR}\" or "
                          f"a stored predictor's name ({NAME_RULE})")
    shadow = check_real("early_warning.shadow_fraction", spec.get("shadow_fraction", 0.0), low=0, high=1)
    min_step = check_int("early_warning.min_step", spec.get("min_step", 20), low=0, high=1 << 40)
    if enabled and min_step >= run.train.batches:
        raise ConfigError("early_warning.min_step", f"got {min_step}; expected fewer than train.batches "
                          f"({run.train.batches}), or the predictor never acts")
    threshold = spec.get("threshold")
    if threshold is not None:
        threshold = check_real("early_warning.threshold", threshold)
    params = spec.get("params", {})
    if not isinstance(params, Mapping):
        raise ConfigError("early_warning.params", f"got {type(params).__name__}; expected a table of scalars")
    for k, v in params.items():
        if isinstance(v, float):
            check_real(f"early_warning.params.{k}", v)
        elif not isinstance(v, (str, int, bool)):
            raise ConfigError(f"early_warning.params.{k}",
                              f"got {type(v).__name__}; expected a string, number or boolean")
    pack_stop = spec.get("pack_stop")
    if pack_stop is not None:
        pack_stop = check_real("early_warning.pack_stop", pack_stop, low=0, high=1, low_open=True, high_open=True)
        if not enabled:
            raise ConfigError("early_warning.pack_stop", "set, but early_warning.enabled is false: packs are "
                              "stopped only by the early-warning watcher (set enabled = true, or drop pack_stop)")
    return EarlyWarningSpec(enabled, predictor, shadow, min_step, threshold, dict(params), pack_stop)


def _extremes(axis: Axis) -> tuple[float, ...]:
    return axis.values if axis.values is not None else (axis.low, axis.high)


def _check_model(run: RunConfig | FamilyRun, fixed: Mapping[str, float], space: tuple[Axis, ...]) -> None:
    """Every member the study can produce must make sense for the model (RunConfig.check_hyper)."""
    if isinstance(run, FamilyRun):
        cls = FAMILY_HYPERS[run.family]
        try:
            run.check_hyper(cls.from_axes(fixed))
        except ConfigError as exc:  # e.g. lambda left at fwp's default 1 under decay 'learned'
            raise ConfigError(f"fixed.{exc.field}", _reason(exc)) from None
        for a in space:
            for v in _extremes(a):
                with _renamed(f"space.{a.name}"):
                    run.check_hyper(cls.from_axes({**fixed, a.name: v}))
        return
    if run.model.kind == "rnn" and any(a.name == "ratio" for a in space):
        raise ConfigError("space.ratio", "the RNN baseline has no ephemeral entries; remove the axis and set "
                          "ratio = 0 in [fixed]")
    try:
        run.check_hyper(Hyper(**fixed))
    except ConfigError as exc:  # e.g. ratio left at its default 0.1 for the RNN
        raise ConfigError(f"fixed.{exc.field}", _reason(exc)) from None
    for a in space:
        for v in _extremes(a):
            with _renamed(f"space.{a.name}"):
                run.check_hyper(Hyper(**{**fixed, a.name: v}))


def _check_memory(run: RunConfig, space: tuple[Axis, ...], fixed: Mapping[str, float], execution: Execution,
                  budget_bytes: int | None) -> None:
    """A trial's population must fit: the engine's own pre-flight estimate at the largest ratio."""
    from sweeper.engine.population import estimate_bytes, memory_budget  # imports torch: only while validating

    if budget_bytes is None:
        if run.train.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return  # planned here, checked again by the engine where it runs
        budget_bytes = memory_budget(run.train.device)
    if isinstance(run, FamilyRun):
        from sweeper.engine.families.population import estimate_bytes as family_bytes

        need = family_bytes(run, execution.members_per_trial)
    else:
        ratio = max([fixed.get("ratio", Hyper.ratio)] + [max(_extremes(a)) for a in space if a.name == "ratio"])
        need = estimate_bytes(run, [Hyper(ratio=ratio)] * execution.members_per_trial)
    if need > budget_bytes:
        raise ConfigError("execution.members_per_trial",
                          f"a trial of {execution.members_per_trial} members needs about {need / 2**30:.2f} GiB but "
                          f"{budget_bytes / 2**30:.2f} GiB are available on {run.train.device}; use fewer members "
                          "per trial, a smaller batch_size, width or sequence length")
