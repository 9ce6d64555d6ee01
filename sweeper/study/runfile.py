"""Run files: a TOML description of one population (task, model, train, members).

    [task]
    name = "key_recall"
    gap_max = 3

    [model]
    width = 128

    [train]
    batches = 1000

    [members]           # every combination of these lists is one member
    lr = [3e-4, 1e-3]
    plasticity = [1e4]
    seed = [0, 1, 2]

A fast-weight family (docs/families.md) is a `[model]` with `kind = "fastweights"` or `kind = "fwp"`
and that model's options (`FastWeightsModel`, `FWPModel`); its `[members]` take the family's axes
(lr, eta, lambda, clip, seed for fastweights; lr, beta_scale, lambda, clip, seed for fwp) and its
`[train]` defaults to `updater = "bptt"`, the only updater the families have:

    [model]
    kind = "fwp"
    rule = "delta"
    phi = "identity"

    [train]
    optimizer = "adam"
    batches = 300

    [members]
    lr = [3e-3, 1e-2]
    beta_scale = [0.5, 1.0]

Files are data: parsed with tomllib (duplicate keys are an error there), never executed; unknown
keys are refused by name.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from sweeper.config import MODEL_KINDS, ConfigError, Hyper, ModelConfig, RunConfig, TrainConfig, from_mapping
from sweeper.engine.families.config import (
    FAMILIES,
    FamilyRun,
    FastWeightsHyper,
    FastWeightsModel,
    FWPHyper,
    FWPModel,
)

MAX_MEMBERS = 100_000
STUDY_KEYS = {"name", "search", "space", "objectives", "execution"}
"""Top-level keys of a study file (`sweeper.study`) that a run file never has."""
HYPER_FIELDS = tuple(f.name for f in fields(Hyper))
ALL_KINDS = (*MODEL_KINDS, *FAMILIES)
"""Every `[model] kind` a run file may name: the ephemeral model, the RNN baseline and the families."""
FAMILY_MODELS = {"fastweights": FastWeightsModel, "fwp": FWPModel}
FAMILY_HYPERS = {"fastweights": FastWeightsHyper, "fwp": FWPHyper}


def family_axes(kind: str) -> tuple[str, ...]:
    """The `[members]` keys of a family: its hyperparameters by study-axis name (`lambda`, not `lam`)."""
    return tuple("lambda" if f.name == "lam" else f.name for f in fields(FAMILY_HYPERS[kind]))


def member_axes(kind: str) -> tuple[str, ...]:
    """The `[members]` keys of a model kind."""
    return family_axes(kind) if kind in FAMILIES else HYPER_FIELDS


def model_kind(model: Mapping[str, Any] | None) -> str:
    """The `kind` of a `[model]` table (default "ephemeral")."""
    if model is None:
        return "ephemeral"
    if not isinstance(model, Mapping):
        raise ConfigError("model", f"expected a table, got {type(model).__name__}")
    return model.get("kind", "ephemeral")


def build_run(task: Mapping[str, Any], model: Mapping[str, Any] | None = None,
              train: Mapping[str, Any] | None = None, *, families: bool = False) -> RunConfig | FamilyRun:
    """The run of these sections. `families`: also accept `kind = "fastweights"` or `"fwp"` (a
    `FamilyRun`); without it they are refused naming `model.kind` (callers that take a family say so:
    run files, and study files whose `[model] kind` names one)."""
    from sweeper.tasks import make_task

    if not isinstance(task, Mapping) or "name" not in task:
        raise ConfigError("task.name", "missing; expected a table with at least `name`")
    params = {k: v for k, v in task.items() if k != "name"}
    kind = model_kind(model)
    if kind in FAMILIES:
        if not families:
            raise ConfigError("model.kind", f"got {kind!r}; the fast-weight families run with `sweeper train` "
                                            f"(flags or a run file) only; a study takes {' or '.join(MODEL_KINDS)}")
        options = {k: v for k, v in model.items() if k != "kind"}
        train = {"updater": "bptt", **(train or {})}
        return FamilyRun(
            task=make_task(task["name"], **params),
            model=from_mapping(FAMILY_MODELS[kind], options, "model"),
            train=from_mapping(TrainConfig, train, "train"),
        )
    if families and kind not in ALL_KINDS:
        raise ConfigError("model.kind", f"got {kind!r}; expected one of {', '.join(ALL_KINDS)}")
    return RunConfig(
        task=make_task(task["name"], **params),
        model=from_mapping(ModelConfig, model or {}, "model"),
        train=from_mapping(TrainConfig, train or {}, "train"),
    )


def expand_members(spec: Mapping[str, Any], kind: str = "ephemeral") -> list:
    """Every combination of the listed values (a scalar is a one-value list): `Hyper`s, or for a
    family (`kind` "fastweights" or "fwp") its `FastWeightsHyper`s or `FWPHyper`s."""
    if not isinstance(spec, Mapping):
        raise ConfigError("members", f"expected a table, got {type(spec).__name__}")
    allowed = member_axes(kind)
    for key in spec:
        if key not in allowed:
            where = f" of model {kind}" if kind in FAMILIES else ""
            raise ConfigError(f"members.{key}", f"unknown key{where}; allowed: {', '.join(allowed)}")
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in spec.items()}
    for k, values in axes.items():
        if not values:
            raise ConfigError(f"members.{k}", "empty list")
    count = math.prod(len(v) for v in axes.values())
    if count > MAX_MEMBERS:
        raise ConfigError("members", f"{count} combinations; at most {MAX_MEMBERS} members in one run")
    names = list(axes)
    combos = (dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names)))
    if kind in FAMILIES:
        return [FAMILY_HYPERS[kind].from_axes(c) for c in combos]
    return [Hyper(**c) for c in combos]


def load_run_file(path: str | Path) -> tuple[RunConfig | FamilyRun, list]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    allowed = {"task", "model", "train", "members"}
    if STUDY_KEYS & set(data):
        raise ConfigError(str(path), "this is a study file: use `sweeper submit STUDY.toml` to run a study; "
                                     "`sweeper train` takes a run file (sections task, model, train, members)")
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: {key}", f"unknown section; allowed: {', '.join(sorted(allowed))}")
    try:
        run = build_run(data.get("task", {}), data.get("model"), data.get("train"), families=True)
        members = expand_members(data.get("members", {}), model_kind(data.get("model")))
        for i, h in enumerate(members):
            run.check_hyper(h, i)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.field}", str(exc).split(": ", 1)[1]) from None
    return run, members
