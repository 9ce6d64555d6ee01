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

Files are data: parsed with tomllib (duplicate keys are an error there), never executed; unknown
keys are refused by name.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from sweeper.config import ConfigError, Hyper, ModelConfig, RunConfig, TrainConfig, from_mapping

MAX_MEMBERS = 100_000
HYPER_FIELDS = tuple(f.name for f in fields(Hyper))


def build_run(task: Mapping[str, Any], model: Mapping[str, Any] | None = None,
              train: Mapping[str, Any] | None = None) -> RunConfig:
    from sweeper.tasks import make_task

    if not isinstance(task, Mapping) or "name" not in task:
        raise ConfigError("task.name", "missing; expected a table with at least `name`")
    params = {k: v for k, v in task.items() if k != "name"}
    return RunConfig(
        task=make_task(task["name"], **params),
        model=from_mapping(ModelConfig, model or {}, "model"),
        train=from_mapping(TrainConfig, train or {}, "train"),
    )


def expand_members(spec: Mapping[str, Any]) -> list[Hyper]:
    """Every combination of the listed values (a scalar is a one-value list)."""
    if not isinstance(spec, Mapping):
        raise ConfigError("members", f"expected a table, got {type(spec).__name__}")
    for key in spec:
        if key not in HYPER_FIELDS:
            raise ConfigError(f"members.{key}", f"unknown key; allowed: {', '.join(HYPER_FIELDS)}")
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in spec.items()}
    for k, values in axes.items():
        if not values:
            raise ConfigError(f"members.{k}", "empty list")
    count = math.prod(len(v) for v in axes.values())
    if count > MAX_MEMBERS:
        raise ConfigError("members", f"{count} combinations; at most {MAX_MEMBERS} members in one run")
    names = list(axes)
    return [Hyper(**dict(zip(names, combo))) for combo in itertools.product(*(axes[n] for n in names))]


def load_run_file(path: str | Path) -> tuple[RunConfig, list[Hyper]]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    allowed = {"task", "model", "train", "members"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: {key}", f"unknown section; allowed: {', '.join(sorted(allowed))}")
    try:
        run = build_run(data.get("task", {}), data.get("model"), data.get("train"))
        members = expand_members(data.get("members", {}))
        for i, h in enumerate(members):
            run.check_hyper(h, i)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.field}", str(exc).split(": ", 1)[1]) from None
    return run, members
