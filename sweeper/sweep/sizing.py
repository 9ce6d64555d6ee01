"""Sizing packs for a GPU: how many members one Ray trial can train, and how many trials share a GPU.

A study asks Ray for a fraction of a GPU per trial (`execution.gpus = 0.25`: four trials per GPU)
and packs `members_per_trial` members into each trial's population. Ray's GPU fractions are
bookkeeping only: the trials land on the same device with no memory isolation, so the packs must
be sized so that all of them together fit. The numbers come from the engine's own pre-flight
estimate (`sweeper.engine.population.estimate_bytes`), which is linear in the number of members.

    plan = plan_packs(spec, gpu_bytes=80 * 2**30)
    plan.recommended            # the option used by the study's own gpus fraction
    plan.options                # one per trials-per-GPU in (1, 2, 3, 4, 6, 8)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

USABLE_FRACTION = 0.8
"""Of the GPU's memory, what the packs may fill (the engine's own budget takes 80% of the free memory)."""
CONTEXT_BYTES = 512 * 2**20
"""Per trial: each Ray trial is a process with its own CUDA context and allocator slack (an assumption,
typically 300-600 MiB; measure with nvidia-smi on the real GPU and pass --context-mib)."""
SHARES = (1, 2, 3, 4, 6, 8)


@dataclass(frozen=True)
class PackOption:
    trials_per_gpu: int
    gpus: float
    """The study's execution.gpus for this option (rounded down so that the trials fit on one GPU)."""
    members_per_trial: int
    """The pack to use: the largest multiple of the seed count that fits one trial's share, but no more
    than gives each of the trials_per_gpu slots a pack of the study; 0 when not one configuration fits."""
    memory_members: int
    """Members that fit one trial's share by memory alone (a multiple of the seed count)."""
    trial_bytes: int
    """The engine's estimate for a trial of members_per_trial members."""
    trials: int
    """Ray trials the study needs with this pack size."""
    gpu_fill: float
    """Memory the concurrent trials take together, as a fraction of the GPU's whole memory."""


@dataclass(frozen=True)
class PackPlan:
    study: str
    device: str
    gpu_bytes: int
    usable_bytes: int
    context_bytes: int
    member_bytes: int
    """One member at the study's largest ephemeral ratio."""
    seeds: int
    members_total: int
    current_members_per_trial: int
    current_gpus: float
    current_fits: bool
    """Whether the study's own members_per_trial x trials per GPU fits the GPU."""
    options: list[PackOption] = field(default_factory=list)
    recommended: PackOption | None = None


def parse_bytes(text: str) -> int:
    """'80GiB', '80 GB', '81920MiB', '2**30' is not accepted; plain integers are bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not a memory size (e.g. 80GiB, 40GB, 24576MiB)")
    unit = (m.group(2) or "B").upper()
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise ValueError(f"{text!r}: a memory size must be positive")
    return value


def member_bytes(spec) -> int:
    """The engine's estimate for one member, at the largest ephemeral ratio the study can draw (a
    fast-weight family's: `sweeper.engine.families.population.estimate_bytes`)."""
    if spec.is_family:
        from sweeper.engine.families.population import estimate_bytes as family_bytes

        return family_bytes(spec.run, 1)
    from sweeper.config import Hyper
    from sweeper.engine.population import estimate_bytes

    ratios = [spec.fixed.get("ratio", Hyper.ratio)]
    for axis in spec.space:
        if axis.name == "ratio":
            ratios.append(max(axis.values) if axis.values is not None else axis.high)
    return estimate_bytes(spec.run, [Hyper(ratio=max(ratios))])


def _option(k: int, spec, per_member: int, usable: int, context: int, gpu_bytes: int, total: int) -> PackOption:
    seeds = len(spec.execution.seeds)
    share = usable // k - context
    by_memory = (max(0, share // per_member) // seeds) * seeds if share > 0 else 0
    # no bigger than needed to give each of the k slots a pack (bigger packs would leave slots idle)
    members = min(by_memory, seeds * math.ceil(total / seeds / k))
    trials = math.ceil(total / members) if members else 0
    trial_bytes = per_member * members
    return PackOption(trials_per_gpu=k, gpus=math.floor(10_000 / k) / 10_000, members_per_trial=members,
                      memory_members=by_memory, trial_bytes=trial_bytes, trials=trials,
                      gpu_fill=k * (trial_bytes + context) / gpu_bytes if members else 0.0)


def plan_packs(spec, *, gpu_bytes: int, context_bytes: int = CONTEXT_BYTES, gpus: float | None = None) -> PackPlan:
    """Options for one GPU of `gpu_bytes`; `gpus` (default: the study's execution.gpus, or 1 for a CPU
    study) picks the recommended one."""
    per_member = member_bytes(spec)
    usable = int(USABLE_FRACTION * gpu_bytes)
    seeds = len(spec.execution.seeds)
    total = spec.search.configs * seeds
    options = [_option(k, spec, per_member, usable, context_bytes, gpu_bytes, total) for k in SHARES]
    wanted = gpus if gpus is not None else (spec.execution.gpus or 1.0)
    k = max(1, int(1 / wanted + 1e-9))
    recommended = next((o for o in options if o.trials_per_gpu == k), None)
    if recommended is None:
        recommended = _option(k, spec, per_member, usable, context_bytes, gpu_bytes, total)
    current_k = max(1, int(1 / spec.execution.gpus + 1e-9)) if spec.execution.gpus else 1
    current_fits = current_k * (per_member * spec.execution.members_per_trial + context_bytes) <= usable
    return PackPlan(study=spec.name, device=spec.run.train.device, gpu_bytes=gpu_bytes, usable_bytes=usable,
                    context_bytes=context_bytes, member_bytes=per_member, seeds=seeds, members_total=total,
                    current_members_per_trial=spec.execution.members_per_trial,
                    current_gpus=spec.execution.gpus, current_fits=current_fits, options=options,
                    recommended=recommended)


def format_plan(plan: PackPlan) -> str:
    gib = 2**30
    lines = [
        f"study {plan.study} on one GPU of {plan.gpu_bytes / gib:.1f} GiB "
        f"({plan.usable_bytes / gib:.1f} GiB usable by packs, {plan.context_bytes / 2**20:.0f} MiB CUDA context per trial)",
        f"  one member: {plan.member_bytes / 2**20:.2f} MiB (the engine's estimate; ephemeral model: at the largest ratio); "
        f"{plan.members_total} members = configurations x {plan.seeds} seeds",
        f"  the study now: members_per_trial = {plan.current_members_per_trial}, gpus = {plan.current_gpus:g} -> "
        + ("fits" if plan.current_fits else "DOES NOT FIT: the trials sharing a GPU would run out of memory"),
        "",
        "  trials/GPU   gpus     members_per_trial (memory allows)   GiB/trial   trials   GPU memory filled",
    ]
    for o in plan.options:
        mark = "  <- recommended" if plan.recommended is not None and o.trials_per_gpu == plan.recommended.trials_per_gpu else ""
        if o.members_per_trial == 0:
            lines.append(f"  {o.trials_per_gpu:>10}   {o.gpus:<7g}  {'(one configuration does not fit)':<54}{mark}")
            continue
        lines.append(f"  {o.trials_per_gpu:>10}   {o.gpus:<7g}  {o.members_per_trial:>17} {f'({o.memory_members})':>15}   "
                     f"{o.trial_bytes / gib:>9.2f}   {o.trials:>6}   {100 * o.gpu_fill:>16.0f}%{mark}")
    r = plan.recommended
    if r is not None and r.members_per_trial:
        lines += ["", f"  set in [execution]: members_per_trial = {r.members_per_trial}, gpus = {r.gpus:g}"
                      + ("" if plan.device.startswith("cuda") else '  (and train.device = "cuda")')]
    lines.append("  Ray's GPU fractions do not isolate memory: the packs on one GPU share it, sized from this estimate.")
    return "\n".join(lines)
