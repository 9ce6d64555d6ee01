"""`sweeper plan STUDY.toml`: members per trial and GPU share per trial, sized to fill one GPU's memory.

Parsing and printing only; the sizing lives in `sweeper.sweep.sizing`.
"""

from __future__ import annotations

import argparse
import math

from sweeper.errors import SweeperError


def cmd_plan(args) -> int:
    from dataclasses import asdict

    from sweeper import jsonio
    from sweeper.study import load_study
    from sweeper.sweep.sizing import format_plan, parse_bytes, plan_packs

    try:
        gpu_bytes = parse_bytes(args.gpu_memory)
    except ValueError as exc:  # the library's own refusal; here it has a flag to name
        raise SweeperError("--gpu-memory", str(exc)) from None
    if args.gpus is not None and not 0 < args.gpus <= 1:
        raise SweeperError("--gpus", f"got {args.gpus:g}; a trial's share of one GPU is in (0, 1]")
    if not (math.isfinite(args.context_mib) and args.context_mib >= 0):
        raise SweeperError("--context-mib", f"got {args.context_mib:g}; expected a finite number of MiB >= 0")
    # The plan is for a GPU elsewhere: size against --gpu-memory, not this machine's free memory.
    spec = load_study(args.study, budget_bytes=2**62)
    plan = plan_packs(spec, gpu_bytes=gpu_bytes, context_bytes=int(args.context_mib * 2**20), gpus=args.gpus)
    print(jsonio.dumps(asdict(plan)) if args.json else format_plan(plan))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="size packs for a GPU: members per trial and GPU share per trial")
    p.add_argument("study", help="a study file (studies/*.toml)")
    p.add_argument("--gpu-memory", default="80GiB", help="memory of one GPU (default 80GiB; e.g. 24GiB, 40GB)")
    p.add_argument("--gpus", type=float, help="GPU share per trial to recommend for (default: the study's execution.gpus)")
    p.add_argument("--context-mib", type=float, default=512, help="CUDA context and allocator slack per trial (default 512)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)
