"""Train one population to the end of its budget and summarise it (what `sweeper train` runs)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

from sweeper.config import Hyper, RunConfig


@dataclass
class TrainResult:
    run: RunConfig
    members: list[Hyper]
    summaries: list  # MemberSummary per member
    eval: dict  # member -> {"mem_acc", "mem_acc_no_eph", "acc", "loss"}
    baseline: float
    seconds: float
    history: list = field(default_factory=list)  # StepMetrics of the full-metric batches

    def as_dict(self) -> dict:
        rows = []
        for h, s in zip(self.members, self.summaries):
            row = {**asdict(h), **s.as_dict(), "eval": self.eval.get(s.member, {})}
            rows.append(row)
        return {
            "task": {"name": self.run.task.name, **self.run.task.params()},
            "model": asdict(self.run.model),
            "train": asdict(self.run.train),
            "no_memory_baseline": self.baseline,
            "seconds": self.seconds,
            "members": rows,
        }


def train(run: RunConfig, members: list[Hyper], *, progress: bool = False, eval_batches: int = 10,
          on_step=None) -> TrainResult:
    """Train all members; evaluate the survivors with and without their ephemeral memory."""
    from sweeper.engine.population import Population

    start = time.perf_counter()
    pop = Population(run, members)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=run.train.batches, unit="batch", desc="training", dynamic_ncols=True)
    history = []
    for m in pop.run():
        if m.full:
            history.append(m)
        if on_step is not None:
            on_step(m)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(alive=pop.size, loss=f"{_nanmean(m.loss):.3f}", mem=f"{_nanmean(m.mem_acc):.2f}")
    if bar is not None:
        bar.close()
    evaluated = {}
    if pop.size and eval_batches:
        on, off = pop.evaluate(eval_batches), pop.evaluate(eval_batches, ephemeral=False)
        for row, m in enumerate(on["member"]):
            evaluated[int(m)] = {"mem_acc": float(on["mem_acc"][row]), "acc": float(on["acc"][row]),
                                 "loss": float(on["loss"][row]), "mem_acc_no_eph": float(off["mem_acc"][row])}
    return TrainResult(run=run, members=members, summaries=pop.summaries(), eval=evaluated,
                       baseline=run.task.no_memory_baseline(), seconds=time.perf_counter() - start,
                       history=history)


def _nanmean(values) -> float:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else float("nan")


def format_summary(result: TrainResult) -> str:
    """A readable table: one row per member."""
    run = result.run
    lines = [
        f"task {run.task.name} ({', '.join(f'{k}={v}' for k, v in run.task.params().items())}), "
        f"model {run.model.kind} {run.model.depth}x{run.model.width}"
        f"{' +recurrence' if run.model.recurrence else ''}, updater {run.train.updater}, "
        f"{run.train.batches} batches of {run.train.batch_size}",
        f"no-memory baseline on memory positions: {result.baseline:.3f}    wall time {result.seconds:.1f} s",
        "",
        f"{'#':>3} {'lr':>9} {'plast':>9} {'ratio':>5} {'gamma':>5} {'clip':>6} {'seed':>4}  "
        f"{'outcome':<13} {'step':>6} {'loss':>7} {'mem_acc':>7} {'eval_mem':>8} {'no_eph':>6}",
    ]
    for h, s in zip(result.members, result.summaries):
        ev = result.eval.get(s.member, {})
        f = s.final
        step = "" if s.explode_step is None else str(s.explode_step)
        lines.append(
            f"{s.member:>3} {h.lr:>9.3g} {h.plasticity:>9.3g} {h.ratio:>5.2f} {h.gamma:>5.2f} {h.clip:>6.3g} "
            f"{h.seed:>4}  {s.outcome:<13} {step:>6} {f.get('loss', float('nan')):>7.3f} "
            f"{f.get('mem_acc', float('nan')):>7.3f} {ev.get('mem_acc', float('nan')):>8.3f} "
            f"{ev.get('mem_acc_no_eph', float('nan')):>6.3f}"
        )
    return "\n".join(lines)
