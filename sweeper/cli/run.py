"""`sweeper train`, `sweeper bench`, `sweeper reproduce`: one process, no Ray, no database.

Parsing and printing only: the work is in `sweeper.engine.train`, `sweeper.engine.bench` and
`sweeper.analysis.reproduce`.
"""

from __future__ import annotations

import argparse
import tomllib

from sweeper import jsonio

HYPER_FLAGS = ("lr", "plasticity", "ratio", "gamma", "clip")


def _toml_value(text: str):
    """A flag value read as a TOML value (`3e-4`, `true`, `"abc"`), or as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _list(text: str) -> list:
    """`1e-4,3e-4` -> [0.0001, 0.0003]; `0-3` for integers -> [0, 1, 2, 3]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:] and part.replace("-", "").isdigit():
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(_toml_value(part))
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one config or a small population")
    _add_run_flags(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="engine vs the reference loop, side by side")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--members", type=int, default=8, help="P")
    p.add_argument("--batch-size", type=int, default=32, help="B (P x B member-sequences)")
    p.add_argument("--batches", type=int, default=10, help="engine batches timed per round")
    p.add_argument("--reference-batches", type=int, default=1, help="reference batches timed per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating engine/reference rounds")
    p.add_argument("--metrics-every", type=int, default=10, help="the engine's full-metrics interval, as in training")
    p.add_argument("--reset-every", type=int, default=1, help="ephemeral state reset every N sequences")
    p.add_argument("--no-reference", action="store_true", help="time the engine alone (no ratio)")
    p.add_argument("--updaters", default="dfa", help="comma-separated")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("reproduce", help="reproduce a table of the paper")
    p.add_argument("what", choices=["table1"])
    p.add_argument("--budget", choices=["quick", "full"], default="quick")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reproduce)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="a run file (TOML); flags below override or replace it")
    p.add_argument("--task", help="task name (key_recall, repeated, palindrome, reversal, associative, text)")
    p.add_argument("--task-param", action="append", default=[], metavar="KEY=VALUE", help="a task parameter")
    p.add_argument("--model", dest="kind", help="ephemeral or rnn")
    p.add_argument("--depth", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--activation")
    p.add_argument("--recurrence", action="store_true", default=None)
    p.add_argument("--updater", help="dfa, dfa_nod, backprop or bptt")
    p.add_argument("--optimizer", help="sgd or adam (rnn only)")
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--batches", type=int)
    p.add_argument("--metrics-every", type=int)
    p.add_argument("--device")
    p.add_argument("--dtype")
    for name in ("lr", "plasticity", "ratio", "gamma", "clip"):
        p.add_argument(f"--{name}", type=_list, help="one value or a comma-separated list")
    p.add_argument("--seeds", type=_list, help="e.g. 0,1,2 or 0-9")


def _run_from_args(args):
    from sweeper.study.runfile import build_run, expand_members, load_run_file

    task, model, train, members = {"name": "key_recall"}, {}, {}, {}
    if args.config:
        run, hypers = load_run_file(args.config)
        from dataclasses import asdict

        task = {"name": run.task.name, **run.task.params()}
        model, train = asdict(run.model), asdict(run.train)
        members = {k: sorted({getattr(h, k) for h in hypers}) for k in ("lr", "plasticity", "ratio", "gamma", "clip", "seed")}
    if args.task:
        task = {"name": args.task}
    for item in args.task_param:
        if "=" not in item:
            from sweeper.config import ConfigError

            raise ConfigError("--task-param", f"got {item!r}; expected KEY=VALUE")
        key, value = item.split("=", 1)
        task[key.strip()] = _toml_value(value.strip())
    for flag, key in (("kind", "kind"), ("depth", "depth"), ("width", "width"), ("activation", "activation"),
                      ("recurrence", "recurrence")):
        if getattr(args, flag) is not None:
            model[key] = getattr(args, flag)
    for flag in ("updater", "optimizer", "grad_clip", "batch_size", "batches", "metrics_every", "device", "dtype"):
        if getattr(args, flag) is not None:
            train[flag] = getattr(args, flag)
    for name in ("lr", "plasticity", "ratio", "gamma", "clip"):
        if getattr(args, name) is not None:
            members[name] = getattr(args, name)
    if args.seeds is not None:
        members["seed"] = args.seeds
    if model.get("kind") == "rnn" and "ratio" not in members:
        members["ratio"] = 0.0
    run = build_run(task, model, train)
    hypers = expand_members(members)
    for i, h in enumerate(hypers):
        run.check_hyper(h, i)
    return run, hypers


def cmd_train(args) -> int:
    from sweeper.engine.train import format_summary, train

    run, members = _run_from_args(args)
    result = train(run, members, progress=not args.json and not args.no_progress)
    if args.json:
        print(jsonio.dumps(result.as_dict()))
    else:
        print(format_summary(result))
    return 0


def cmd_bench(args) -> int:
    from sweeper.engine.bench import bench, format_bench

    report = bench(width=args.width, depth=args.depth, members=args.members, batch_size=args.batch_size,
                   batches=args.batches, reference_batches=args.reference_batches, rounds=args.rounds,
                   metrics_every=args.metrics_every, reset_every=args.reset_every, device=args.device,
                   updaters=args.updaters.split(","),
                   reference=not args.no_reference, progress=not args.json)
    print(jsonio.dumps(report) if args.json else format_bench(report))
    return 0


def cmd_reproduce(args) -> int:
    from sweeper.analysis.reproduce import format_table1, table1

    report = table1(budget=args.budget, seeds=args.seeds, device=args.device, progress=not args.json)
    print(jsonio.dumps(report) if args.json else format_table1(report))
    return 0


