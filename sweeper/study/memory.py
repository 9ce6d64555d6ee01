"""How many memory positions a study's evaluation scores, and the memory judgement of its members.

The rule itself is `sweeper.outcomes.judge_memory` (a stable member remembers when its evaluation
memory accuracy beats what a member without memory reaches with probability `[execution]
memory_level`). It needs n, the memory positions the evaluation scored. Both engines evaluate a member
on batches 0 .. eval_batches-1 of the task's EVAL_STREAM, `train.batch_size` sequences each, drawn
from the member's seed alone (`Population.evaluate`, `FamilyPopulation.evaluate`), so n is known
before anything is trained:

    n = eval_batches x batch_size x memory positions per sequence

for every task whose sequences all hold the same number of memory positions (key recall and
associative retrieval 1, reversal n x repeats, palindromes, text all T). Repeated sequences have as
many as the pattern's period leaves, which varies from sequence to sequence, so n is counted here
from the very masks the evaluation scores, per seed, for every task alike.

The count draws the evaluation's token masks once (eval_batches x (P, B, T) booleans), a small
fraction of the evaluation itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from sweeper.outcomes import NO_JUDGEMENT, MemoryJudgement, judge_memory
from sweeper.tasks import EVAL_STREAM, Task


def eval_memory_positions(task: Task, seeds: Iterable[int], eval_batches: int, batch_size: int) -> dict[int, int]:
    """Per seed: the memory positions an evaluation of `eval_batches` batches of `batch_size` scores."""
    seeds = sorted({int(s) for s in seeds})
    counts = np.zeros(len(seeds), dtype=np.int64)
    for j in range(eval_batches):
        counts += task.sample(seeds, j, batch_size, stream=EVAL_STREAM).memory.sum(axis=(1, 2))  # (P,)
    return dict(zip(seeds, (int(c) for c in counts)))


def study_memory_positions(spec) -> dict[int, int]:
    """Per seed of the study: the memory positions its evaluation scores (all 0 without an evaluation)."""
    ex = spec.execution
    return eval_memory_positions(spec.run.task, ex.seeds, ex.eval_batches, spec.run.train.batch_size)


def judge_rows(spec, rows: Iterable[Mapping[str, Any]],
               positions: Mapping[int, int] | None = None) -> list[MemoryJudgement]:
    """The memory judgement of each `sw_members`-like row (outcome, seed, eval_mem_acc, baseline) of a
    study, at its `memory_level`. `positions`: `study_memory_positions(spec)`, if already counted."""
    if positions is None:
        positions = study_memory_positions(spec)
    level = spec.execution.memory_level
    return [judge_memory(r["outcome"], r.get("eval_mem_acc"), r.get("baseline"), positions.get(int(r["seed"])),
                         level) if r.get("seed") is not None else NO_JUDGEMENT
            for r in rows]
