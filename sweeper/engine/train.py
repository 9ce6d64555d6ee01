"""Train one population to the end of its budget and summarise it (what `sweeper train` runs).

The run decides the engine: a `RunConfig` (the ephemeral model or the RNN baseline) trains on
`sweeper.engine.population.Population`, a `FamilyRun` (docs/families.md: `fastweights`, `fwp`) on
`sweeper.engine.families.population.FamilyPopulation`. Both are evaluated on fresh sequences with their
memory on and off: the ephemeral state held at 0 (`mem_acc_no_eph`), resp. the fast state held at 0
(`mem_acc_no_fast`). Whether a stable member remembers is the studies' rule,
`sweeper.outcomes.judge_memory` (`judge`: its evaluation memory accuracy beats what a member without
memory reaches at 95% over the memory positions scored), not a plain comparison with the baseline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

from sweeper.config import Hyper, RunConfig
from sweeper.engine.families.config import FamilyRun
from sweeper.outcomes import MEMORY_LEVEL, NO_JUDGEMENT, MemoryJudgement, judge_memory

FAMILY_SIGNALS = ("fast_norm", "grad_fast_ratio", "transition_max")
"""The families' stability signals the summary shows per member (docs/families.md, "Metrics");
`transition_max` for the delta rules only."""


def is_family(run) -> bool:
    return isinstance(run, FamilyRun)


def hyper_dict(h) -> dict:
    """A member's hyperparameters by study-axis name (`lambda` for the families' field `lam`)."""
    return {("lambda" if k == "lam" else k): v for k, v in asdict(h).items()}


def model_dict(run) -> dict:
    """The model section, `kind` first (the families' dataclasses carry it as `family`)."""
    return {"kind": run.model.family, **asdict(run.model)} if is_family(run) else asdict(run.model)


@dataclass
class TrainResult:
    run: RunConfig | FamilyRun
    members: list  # Hyper, FastWeightsHyper or FWPHyper per member
    summaries: list  # MemberSummary per member
    eval: dict  # member -> {"mem_acc", "mem_acc_no_eph" | "mem_acc_no_fast", "acc", "loss"}
    baseline: float
    seconds: float
    history: list = field(default_factory=list)  # StepMetrics (FamilyStepMetrics) of the full-metric batches
    eval_batches: int = 10
    """Batches of fresh sequences each surviving member was evaluated on."""
    memory: dict = field(default_factory=dict)  # member -> MemoryJudgement (`judge`); empty until judged
    memory_level: float = MEMORY_LEVEL

    def as_dict(self) -> dict:
        rows = []
        for h, s in zip(self.members, self.summaries):
            j = self.memory.get(s.member, NO_JUDGEMENT)
            row = {**hyper_dict(h), **s.as_dict(), "eval": self.eval.get(s.member, {}),
                   "memory": {"remembers": j.remembers, "threshold": j.threshold, "positions": j.positions}}
            rows.append(row)
        return {
            "task": {"name": self.run.task.name, **self.run.task.params()},
            "model": model_dict(self.run),
            "train": asdict(self.run.train),
            "no_memory_baseline": self.baseline,
            "memory_level": self.memory_level,
            "seconds": self.seconds,
            "members": rows,
        }


def train(run: RunConfig | FamilyRun, members: list[Hyper], *, progress: bool = False, eval_batches: int = 10,
          on_start=None, on_step=None) -> TrainResult:
    """Train all members; evaluate the survivors with and without their memory (ephemeral or fast state).

    `on_start()` is called once the population is built (every check passed), before the first batch.
    """
    start = time.perf_counter()
    family = is_family(run)
    if family:
        from sweeper.engine.families.population import FamilyPopulation

        pop = FamilyPopulation(run, members)
    else:
        from sweeper.engine.population import Population

        pop = Population(run, members)
    if on_start is not None:
        on_start()
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
        if family:
            on, off, off_key = pop.evaluate(eval_batches), pop.evaluate(eval_batches, fast=False), "mem_acc_no_fast"
        else:
            on, off, off_key = pop.evaluate(eval_batches), pop.evaluate(eval_batches, ephemeral=False), "mem_acc_no_eph"
        for row, m in enumerate(on["member"]):
            evaluated[int(m)] = {"mem_acc": float(on["mem_acc"][row]), "acc": float(on["acc"][row]),
                                 "loss": float(on["loss"][row]), off_key: float(off["mem_acc"][row])}
    return TrainResult(run=run, members=members, summaries=pop.summaries(), eval=evaluated,
                       baseline=run.task.no_memory_baseline(), seconds=time.perf_counter() - start,
                       history=history, eval_batches=eval_batches)


def judge(result: TrainResult, positions: Mapping[int, int], level: float = MEMORY_LEVEL) -> TrainResult:
    """`result` with each member's memory judgement (`sweeper.outcomes.judge_memory`, the rule studies
    store in `sw_members.remembers`). `positions`: seed -> the memory positions its evaluation scored
    (`sweeper.study.memory.eval_memory_positions(run.task, seeds, result.eval_batches, batch_size)`)."""
    memory = {}
    for h, s in zip(result.members, result.summaries):
        ev = result.eval.get(s.member, {})
        memory[s.member] = judge_memory(s.outcome, ev.get("mem_acc"), result.baseline, positions.get(h.seed), level)
    return replace(result, memory=memory, memory_level=level)


def _remembers(j: MemoryJudgement) -> str:
    return "-" if j.remembers is None else ("yes" if j.remembers else "no")


def _nanmean(values) -> float:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else float("nan")


def describe_model(model) -> str:
    """A model (`ModelConfig`, `FastWeightsModel` or `FWPModel`) in a few words: `ephemeral 2x128 relu`,
    `fastweights hidden 64 relu, layer norm, 1 inner step`, `fwp delta d_model 64 d_key 16 d_value 16,
    1 layer, phi silu_l2, psi sigmoid, no decay`."""
    m = model
    family = getattr(m, "family", None)
    if family is None:
        return f"{m.kind} {m.depth}x{m.width} {m.activation}{' +recurrence' if m.recurrence else ''}"
    if family == "fastweights":
        return (f"fastweights hidden {m.hidden} {m.activation}, {'layer norm' if m.layer_norm else 'no layer norm'}, "
                f"{m.inner_steps} inner step{'s' * (m.inner_steps != 1)}"
                + (f", W = {m.identity_scale:g} I at start" if m.identity_scale != 0.05 else ""))
    psi = f", psi {m.psi}" if m.rule != "hebb" else ""
    decay = "no decay" if m.decay == "none" else f"decay {m.decay}"
    return (f"fwp {m.rule} d_model {m.d_model} d_key {m.d_key} d_value {m.d_value}, {m.layers} layer"
            f"{'s' * (m.layers != 1)}, phi {m.phi}{psi}, {decay}")


def describe_training(run) -> str:
    t = run.train
    how = f"updater {t.updater}" if not is_family(run) else f"bptt {t.optimizer} {t.dtype}"
    return f"{how}, {t.batches} batches of {t.batch_size}"


def _f(d: dict, key: str, spec: str) -> str:
    return format(d.get(key, float("nan")), spec)


def format_summary(result: TrainResult) -> str:
    """A readable table: one row per member."""
    run = result.run
    family = is_family(run)
    lines = [
        f"task {run.task.name} ({', '.join(f'{k}={v}' for k, v in run.task.params().items())}), "
        + (f"model {describe_model(run.model)}, {describe_training(run)}" if family else
           f"model {run.model.kind} {run.model.depth}x{run.model.width}"
           f"{' +recurrence' if run.model.recurrence else ''}, updater {run.train.updater}, "
           f"{run.train.batches} batches of {run.train.batch_size}"),
        f"no-memory baseline on memory positions: {result.baseline:.3f}    wall time {result.seconds:.1f} s",
        "",
    ]
    if family:
        lines += _family_rows(result)
    else:
        lines.append(f"{'#':>3} {'lr':>9} {'plast':>9} {'ratio':>5} {'gamma':>5} {'clip':>6} {'seed':>4}  "
                     f"{'outcome':<13} {'step':>6} {'loss':>7} {'mem_acc':>7} {'eval_mem':>8} {'memory':>6} "
                     f"{'no_eph':>6}")
        for h, s in zip(result.members, result.summaries):
            ev = result.eval.get(s.member, {})
            f = s.final
            step = "" if s.explode_step is None else str(s.explode_step)
            lines.append(
                f"{s.member:>3} {h.lr:>9.3g} {h.plasticity:>9.3g} {h.ratio:>5.2f} {h.gamma:>5.2f} {h.clip:>6.3g} "
                f"{h.seed:>4}  {s.outcome:<13} {step:>6} {_f(f, 'loss', '>7.3f')} "
                f"{_f(f, 'mem_acc', '>7.3f')} {_f(ev, 'mem_acc', '>8.3f')} "
                f"{_remembers(result.memory.get(s.member, NO_JUDGEMENT)):>6} {_f(ev, 'mem_acc_no_eph', '>6.3f')}"
            )
    lines += _memory_lines(result)
    return "\n".join(lines)


def _memory_lines(result: TrainResult) -> list[str]:
    """How many stable members remember, and the best one's verdict (the last line)."""
    scored = [(ev["mem_acc"], member) for member, ev in result.eval.items() if not math.isnan(ev.get("mem_acc", math.nan))]
    if not scored:
        return []
    best, member = max(scored)
    judged = [j for j in result.memory.values() if j.remembers is not None]
    level = f"{100 * result.memory_level:g}%"
    lines = [""]
    if judged:
        lines.append(f"stable members that remember: {sum(j.remembers for j in judged)} of {len(judged)} (their eval "
                     f"memory accuracy beats what a member without memory reaches at {level}; sweeper.outcomes.judge_memory)")
    j = result.memory.get(member, NO_JUDGEMENT)
    head = f"best eval memory accuracy {best:.3f} (member {member}): "
    if j.remembers is None:
        verdict = f"not judged (no memory positions scored); the no-memory baseline {result.baseline:.3f}"
    elif j.remembers:
        verdict = (f"remembers: beats {j.threshold:.3f}, the most a member without memory reaches at {level} over "
                   f"{j.positions} memory positions (the no-memory baseline {result.baseline:.3f})")
    else:
        verdict = (f"does not remember: within chance of the no-memory baseline {result.baseline:.3f} (it needs more "
                   f"than {j.threshold:.3f} over {j.positions} memory positions at {level})")
    return [*lines, head + verdict]


def _family_rows(result: TrainResult) -> list[str]:
    """The families' table: hyperparameters, outcome, final metrics, eval with and without the fast state,
    then the stability signals of the last batch."""
    run = result.run
    fastweights = run.model.family == "fastweights"
    delta = not fastweights and run.model.rule != "hebb"
    rate = "eta" if fastweights else "beta_scale"
    lines = [f"{'#':>3} {'lr':>9} {rate:>10} {'lambda':>6} {'clip':>6} {'seed':>4}  {'outcome':<13} {'step':>6} "
             f"{'loss':>7} {'mem_acc':>7} {'eval_mem':>8} {'memory':>6} {'no_fast':>7}  {'fast_norm':>9} {'g_fast/rest':>11}"
             + (f" {'trans_max':>9}" if delta else "")]
    for h, s in zip(result.members, result.summaries):
        ev = result.eval.get(s.member, {})
        f = s.final
        step = "" if s.explode_step is None else str(s.explode_step)
        lines.append(
            f"{s.member:>3} {h.lr:>9.3g} {getattr(h, rate):>10.3g} {h.lam:>6.3g} {h.clip:>6.3g} {h.seed:>4}  "
            f"{s.outcome:<13} {step:>6} {_f(f, 'loss', '>7.3f')} {_f(f, 'mem_acc', '>7.3f')} "
            f"{_f(ev, 'mem_acc', '>8.3f')} {_remembers(result.memory.get(s.member, NO_JUDGEMENT)):>6} "
            f"{_f(ev, 'mem_acc_no_fast', '>7.3f')}  {_f(f, 'fast_norm', '>9.3g')} "
            f"{_f(f, 'grad_fast_ratio', '>11.3g')}" + (f" {_f(f, 'transition_max', '>9.3g')}" if delta else "")
        )
    lines += ["", "stability signals, last batch: fast_norm = RMS norm of the fast state at a sequence's end; "
                  "g_fast/rest = grad_fast_ratio,",
              "  the gradient norm on the parameters that write the fast state over that on the rest"
              + ("; trans_max = transition_max," if delta else ""),
              ] + (["  the largest eta_t ||phi(k_t)||^2 (above 2 a step can expand the fast state)"] if delta else []) + [
              "no_fast: eval memory accuracy with the fast state held at 0"]
    return lines


__all__ = ["TrainResult", "train", "judge", "format_summary", "describe_model", "describe_training", "hyper_dict",
           "model_dict", "is_family", "FAMILY_SIGNALS"]
