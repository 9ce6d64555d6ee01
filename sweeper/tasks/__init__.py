"""Seeded sequence tasks. `make_task(name, **params)` builds one by name."""

from __future__ import annotations

from ..config import ConfigError
from .associative import Associative
from .base import EVAL_STREAM, TRAIN_STREAM, Batch, Task
from .key_recall import KeyRecall
from .palindrome import Palindrome
from .repeated import Repeated
from .reversal import Reversal
from .text import Text

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (KeyRecall, Repeated, Palindrome, Reversal, Associative, Text)}


def make_task(name: str, **params) -> Task:
    """The task called `name`, with its parameters validated (unknown ones refused by name)."""
    if name not in TASKS:
        raise ConfigError("task.name", f"got {name!r}; expected one of {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    for key in params:
        if key not in known:
            raise ConfigError(f"task.{key}", f"unknown parameter of {name}; allowed: {', '.join(sorted(known))}")
    return cls(**params)


__all__ = ["TASKS", "make_task", "Task", "Batch", "TRAIN_STREAM", "EVAL_STREAM"]
