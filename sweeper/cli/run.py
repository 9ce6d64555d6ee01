"""`sweeper train`, `sweeper bench`: one process, no Ray, no database.

Parsing and printing only: the work is in `sweeper.engine.train` and `sweeper.engine.bench`.

`--model` picks the model: `ephemeral` (default) or `rnn`, or one of the fast-weight families of
docs/families.md, `fastweights` or `fwp`. Each model takes its own options (`MODEL_FLAGS`) and member
hyperparameters (`MEMBER_FLAGS`); an option of another model is refused naming the flag and the
model's own options.
"""

from __future__ import annotations

import argparse
import re
import tomllib

from sweeper import jsonio
from sweeper.errors import SweeperError

HYPER_FLAGS = ("lr", "plasticity", "ratio", "gamma", "clip")
"""The ephemeral model's (and the RNN baseline's) member hyperparameters."""

KINDS = ("ephemeral", "rnn", "fastweights", "fwp")
FAMILY_KINDS = ("fastweights", "fwp")

TRAIN_DEFAULTS = {
    "task": {"name": "key_recall"},
    "model": {"kind": "ephemeral", "depth": 2, "width": 128, "recurrence": False},
    "train": {"updater": "dfa", "batch_size": 32, "batches": 600},
    "members": {"lr": 1e-2, "plasticity": 1e3, "ratio": 0.1, "gamma": 0.7, "seed": 1},
}
"""What `sweeper train` runs without a run file, flag by flag: the README's measured key-recall
configuration on a shorter budget (600 batches recall 0.98 on fresh batches, 1000 batches 1.0, against
the no-memory baseline 0.111; 400 batches only 0.71). These are the command's defaults, not the config
dataclasses' (study and run files keep those)."""

FAMILY_TRAIN_DEFAULTS = {
    "fastweights": {
        "task": {"name": "key_recall"},
        "model": {"kind": "fastweights", "hidden": 64, "inner_steps": 1, "layer_norm": True, "activation": "relu"},
        "train": {"updater": "bptt", "optimizer": "adam", "batch_size": 32, "batches": 1500},
        "members": {"lr": 1e-2, "eta": 0.5, "lambda": 0.95, "seed": 1},
    },
    "fwp": {
        "task": {"name": "key_recall"},
        "model": {"kind": "fwp", "d_model": 64, "d_key": 16, "d_value": 16, "layers": 1, "rule": "delta",
                  "phi": "silu_l2", "psi": "sigmoid", "decay": "none"},
        "train": {"updater": "bptt", "optimizer": "adam", "batch_size": 32, "batches": 300},
        "members": {"lr": 1e-2, "beta_scale": 1.0, "lambda": 1.0, "seed": 1},
    },
}
"""What `sweeper train --model fastweights|fwp` runs without a run file: key recall learned in a short run
on one CPU thread, measured over seeds. fastweights, Adam lr 1e-2, eta 0.5, lambda 0.95: eval memory
accuracy 1.000 for seeds 1-8 at 1500 batches (about 8 s for one member; at 1000 batches seeds 4 and 5
were at 0.67 and 0.75); lr 3e-3 is slower, eta 1-2 with lr 3e-3 fails for some seeds. fwp delta with
phi silu_l2 or identity, d_model 64, d_key = d_value = 16, one layer, Adam lr 1e-2, beta_scale 1:
1.000 for seeds 1-6 at 300 batches (about 2 s); lr 1e-3 is not there by 600 batches. The no-memory
baseline is 0.111."""

_ALL, _EPH, _FW, _FWP = KINDS, ("ephemeral", "rnn"), ("fastweights",), ("fwp",)

MODEL_FLAGS = {
    "--depth": {k: "depth" for k in _EPH},
    "--width": {"ephemeral": "width", "rnn": "width", "fastweights": "hidden", "fwp": "d_model"},
    "--activation": {"ephemeral": "activation", "rnn": "activation", "fastweights": "activation"},
    "--recurrence": {k: "recurrence" for k in _EPH},
    "--inner-steps": {"fastweights": "inner_steps"},
    "--layer-norm": {"fastweights": "layer_norm"},
    "--identity-scale": {"fastweights": "identity_scale"},
    "--layers": {"fwp": "layers"},
    "--d-key": {"fwp": "d_key"},
    "--d-value": {"fwp": "d_value"},
    "--rule": {"fwp": "rule"},
    "--phi": {"fwp": "phi"},
    "--psi": {"fwp": "psi"},
    "--decay": {"fwp": "decay"},
}
"""Model options: flag -> {model kind: its key in the run file's [model] section}. `--width` is the
hidden width of every model (fastweights' `hidden`, fwp's `d_model`)."""

MEMBER_FLAGS = {
    "--lr": {k: "lr" for k in _ALL},
    "--plasticity": {k: "plasticity" for k in _EPH},
    "--ratio": {k: "ratio" for k in _EPH},
    "--gamma": {k: "gamma" for k in _EPH},
    "--eta": {"fastweights": "eta"},
    "--beta-scale": {"fwp": "beta_scale"},
    "--lambda": {k: "lambda" for k in FAMILY_KINDS},
    "--clip": {k: "clip" for k in _ALL},
    "--seeds": {k: "seed" for k in _ALL},
}
"""Member hyperparameters (comma lists; every combination is one member): flag -> {model kind: its
[members] axis}. `--clip` clamps the ephemeral model's weights but clips the families' gradient norm."""


def _dest(flag: str) -> str:
    return {"--lambda": "lam", "--model": "kind"}.get(flag, flag[2:].replace("-", "_"))


def _given(args, flag: str) -> bool:
    return getattr(args, _dest(flag), None) is not None


def _shown(args, flag: str) -> str:
    """The flag as typed: `--no-layer-norm` for a false boolean option."""
    value = getattr(args, _dest(flag), None)
    return f"--no-{flag[2:]}" if value is False and flag == "--layer-norm" else flag


def own_flags(kind: str, tables=(MODEL_FLAGS, MEMBER_FLAGS)) -> list[str]:
    """The flags that apply to model `kind`, in the order of the tables."""
    return [flag for table in tables for flag, kinds in table.items() if kind in kinds]


def check_model_flags(args, kind: str, tables=(MODEL_FLAGS, MEMBER_FLAGS)) -> None:
    """Refuse an option of another model, naming the flag, the models it applies to and `kind`'s own."""
    if kind not in KINDS:
        return  # the run's construction refuses the kind itself (model.kind)
    for table in tables:
        for flag, kinds in table.items():
            if _given(args, flag) and kind not in kinds:
                owners = [k for k in KINDS if k in kinds]
                raise SweeperError(_shown(args, flag), f"applies to model{'s' * (len(owners) > 1)} "
                                                       f"{', '.join(owners)} only; model {kind} takes "
                                                       f"{', '.join(own_flags(kind, tables))}")


MAX_RANGE = 100_000
"""The longest `LO-HI` range a list flag expands (the most members one run holds)."""


def _toml_value(text: str):
    """A flag value read as a TOML value (`3e-4`, `true`, `"abc"`), or as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _list(text: str, flag: str) -> list:
    """`1e-4,3e-4` -> [0.0001, 0.0003]; `0-3` for integers -> [0, 1, 2, 3]. Refusals name `flag`."""
    out = []
    for part in text.split(","):
        part = part.strip()
        span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if span is None:
            out.append(_toml_value(part))
            continue
        lo, hi = int(span[1]), int(span[2])
        if lo > hi:
            raise SweeperError(flag, f"{part} is a reversed range; write {hi}-{lo}")
        if hi - lo + 1 > MAX_RANGE:
            raise SweeperError(flag, f"{part} holds {hi - lo + 1} values; at most {MAX_RANGE}")
        out.extend(range(lo, hi + 1))
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one config or a small population")
    _add_run_flags(p)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1 for fastweights and fwp, whose small "
                                               "tensors run faster on one; torch's own for ephemeral and rnn)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="engine vs the reference loop, side by side")
    p.add_argument("--model", dest="kind", default="ephemeral",
                   help="ephemeral (default), fastweights or fwp: which engine and reference")
    p.add_argument("--width", type=int, help="hidden width (default: 256 ephemeral, 64 fastweights and fwp)")
    p.add_argument("--depth", type=int, help="ephemeral: hidden layers (default 2)")
    _add_family_model_flags(p, train=False)
    p.add_argument("--members", type=int, help="P (default: 8 ephemeral, 32 fastweights and fwp)")
    p.add_argument("--batch-size", type=int, default=32, help="B (P x B member-sequences)")
    p.add_argument("--batches", type=int, default=10, help="engine batches timed per round")
    p.add_argument("--reference-batches", type=int, default=1, help="reference batches timed per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating engine/reference rounds")
    p.add_argument("--metrics-every", type=int,
                   help="ephemeral: the engine's full-metrics interval, as in training (default 10)")
    p.add_argument("--reset-every", type=int, help="ephemeral: state reset every N sequences (default 1)")
    p.add_argument("--updaters", help="ephemeral: comma-separated (default dfa)")
    p.add_argument("--optimizer", help="fastweights, fwp: sgd or adam (default adam)")
    p.add_argument("--dtype", help="fastweights, fwp: float32 (default) or float64")
    p.add_argument("--no-reference", action="store_true", help="time the engine alone (no ratio)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)


def _family_default(kind: str, section: str, key: str) -> str:
    value = FAMILY_TRAIN_DEFAULTS[kind][section][key]
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def _add_family_model_flags(p: argparse.ArgumentParser, train: bool = True) -> None:
    """The families' model options (MODEL_FLAGS); `train`: with the defaults `sweeper train` runs."""
    def fw(key: str) -> str:
        return f" (default without a run file: {_family_default('fastweights', 'model', key)})" if train else ""

    def fwp(key: str) -> str:
        return f" (default without a run file: {_family_default('fwp', 'model', key)})" if train else ""

    if train:
        p.add_argument("--activation", help="ephemeral, rnn, fastweights: relu or tanh")
    else:
        p.add_argument("--activation", help="fastweights: relu or tanh (default relu)")
    p.add_argument("--inner-steps", type=int, help="fastweights: inner-loop iterations per character" + fw("inner_steps"))
    p.add_argument("--layer-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="fastweights: layer norm in the inner loop" + fw("layer_norm"))
    p.add_argument("--identity-scale", type=float, help="fastweights: W starts at this times I (default 0.05)")
    p.add_argument("--layers", type=int, help="fwp: fast-weight layers" + fwp("layers"))
    p.add_argument("--d-key", type=int, help="fwp: key and query size" + fwp("d_key"))
    p.add_argument("--d-value", type=int, help="fwp: value size" + fwp("d_value"))
    p.add_argument("--rule", help="fwp: hebb, delta or gated_delta" + fwp("rule"))
    p.add_argument("--phi", help="fwp: feature map of keys and queries, identity, elu1 or silu_l2" + fwp("phi"))
    p.add_argument("--psi", help="fwp, delta rules: eta_t = beta_scale psi(beta_t), sigmoid or 2sigmoid" + fwp("psi"))
    p.add_argument("--decay", help="fwp: none, constant or learned" + fwp("decay"))


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    defaults = {k: v for section in TRAIN_DEFAULTS.values() for k, v in section.items()}

    def without_file(key: str) -> str:
        value = defaults[key]
        return f"default without a run file: {value:g}" if isinstance(value, float) else \
            f"default without a run file: {value}"

    def family(kind: str, key: str) -> str:
        return f"{kind} {_family_default(kind, 'members', key)}"

    p.add_argument("config", nargs="?", help="a run file (TOML: sections task, model, train, members); flags "
                                             "override it. Without one, train runs the defaults below")
    p.add_argument("--task", help=f"task name: key_recall, repeated, palindrome, reversal, associative, text "
                                  f"({without_file('name')})")
    p.add_argument("--task-param", action="append", default=[], metavar="KEY=VALUE", help="a task parameter")
    p.add_argument("--model", dest="kind", help=f"ephemeral, rnn, or a fast-weight family: fastweights, fwp "
                                                f"({without_file('kind')})")
    p.add_argument("--depth", type=int, help=f"ephemeral, rnn: hidden layers ({without_file('depth')})")
    p.add_argument("--width", type=int, help=f"hidden width: ephemeral and rnn units per layer "
                                             f"({without_file('width')}), fastweights hidden "
                                             f"({_family_default('fastweights', 'model', 'hidden')}), fwp d_model "
                                             f"({_family_default('fwp', 'model', 'd_model')})")
    p.add_argument("--recurrence", action="store_true", default=None, help="ephemeral, rnn")
    _add_family_model_flags(p)
    p.add_argument("--updater", help=f"dfa, dfa_nod, backprop or bptt ({without_file('updater')}; "
                                     "the families: bptt only)")
    p.add_argument("--optimizer", help="sgd or adam (rnn, fastweights, fwp; the families default to adam "
                                       "without a run file)")
    p.add_argument("--grad-clip", type=float, help="rnn: gradient-norm clip (the families clip per member: --clip)")
    p.add_argument("--batch-size", type=int, help=without_file("batch_size"))
    p.add_argument("--batches", type=int, help=f"{without_file('batches')}; fastweights "
                                               f"{_family_default('fastweights', 'train', 'batches')}, fwp "
                                               f"{_family_default('fwp', 'train', 'batches')}")
    p.add_argument("--metrics-every", type=int)
    p.add_argument("--device")
    p.add_argument("--dtype")
    p.add_argument("--lr", help=f"one value or a comma-separated list ({without_file('lr')}; "
                                f"{family('fastweights', 'lr')}, {family('fwp', 'lr')})")
    for name in ("plasticity", "ratio", "gamma"):
        p.add_argument(f"--{name}", help=f"ephemeral, rnn: one value or a comma-separated list ({without_file(name)})")
    p.add_argument("--eta", help=f"fastweights: fast learning rate, a list ({family('fastweights', 'eta')})")
    p.add_argument("--beta-scale", help=f"fwp, delta rules: eta_t's scale, a list ({family('fwp', 'beta_scale')})")
    p.add_argument("--lambda", dest="lam", metavar="LAMBDA",
                   help=f"fastweights, fwp: decay, a list ({family('fastweights', 'lambda')}, "
                        f"{family('fwp', 'lambda')}; fwp needs 1 with --decay none)")
    p.add_argument("--clip", help="a list: the ephemeral model's weight clamp, the families' gradient-norm clip "
                                  "(default inf: none)")
    p.add_argument("--seeds", help=f"e.g. 0,1,2 or 0-9 ({without_file('seed')})")


def _group(kind: str) -> str:
    """Run-file kinds that share their sections: ephemeral and rnn; each family alone."""
    return "ephemeral" if kind in ("ephemeral", "rnn") else kind


def _run_from_args(args):
    """The run and its members: the run file (or the defaults of `--model` without one), then the flags over it."""
    from dataclasses import asdict

    from sweeper.engine.train import is_family
    from sweeper.study.runfile import build_run, expand_members, load_run_file, member_axes

    if args.config:
        run, hypers = load_run_file(args.config)
        file_kind = run.model.family if is_family(run) else run.model.kind
        if args.kind is not None and args.kind in KINDS and _group(args.kind) != _group(file_kind):
            raise SweeperError("--model", f"got {args.kind!r} but the run file's model is {file_kind}; set the "
                                          "file's [model] kind (with that model's keys) to change the model")
        kind = args.kind or file_kind
        task = {"name": run.task.name, **run.task.params()}
        model, train = asdict(run.model), asdict(run.train)
        model["kind"] = file_kind
        axes = member_axes(file_kind)
        members = {k: sorted({getattr(h, "lam" if k == "lambda" else k) for h in hypers}) for k in axes}
    else:
        kind = args.kind or TRAIN_DEFAULTS["model"]["kind"]
        defaults = FAMILY_TRAIN_DEFAULTS.get(kind, TRAIN_DEFAULTS)
        task, model, train, members = ({**section} for section in defaults.values())
    check_model_flags(args, kind)
    if args.task:
        task = {"name": args.task}
    for item in args.task_param:
        if "=" not in item:
            raise SweeperError("--task-param", f"got {item!r}; expected KEY=VALUE")
        key, value = item.split("=", 1)
        task[key.strip()] = _toml_value(value.strip())
    if args.kind is not None:
        model["kind"] = args.kind
    for flag, keys in MODEL_FLAGS.items():
        if _given(args, flag) and kind in keys:
            model[keys[kind]] = getattr(args, _dest(flag))
    for flag in ("updater", "optimizer", "grad_clip", "batch_size", "batches", "metrics_every", "device", "dtype"):
        if getattr(args, flag) is not None:
            train[flag] = getattr(args, flag)
    for flag, axes in MEMBER_FLAGS.items():
        if _given(args, flag) and kind in axes:
            members[axes[kind]] = _list(getattr(args, _dest(flag)), flag)
    if model.get("kind") == "rnn" and args.ratio is None and not args.config:
        members["ratio"] = 0.0  # the RNN baseline has no ephemeral entries
    run = build_run(task, model, train, families=True)
    hypers = expand_members(members, kind)
    for i, h in enumerate(hypers):
        run.check_hyper(h, i)
    return run, hypers


def describe_run(run, members) -> str:
    """One line: what `sweeper train` is about to run."""
    from sweeper.engine.train import describe_model, describe_training, hyper_dict, is_family

    params = ", ".join(f"{k}={v}" for k, v in run.task.params().items())
    rows = [hyper_dict(h) for h in members]

    def values(name: str) -> str:
        return ",".join(f"{v:g}" for v in sorted({row[name] for row in rows}))

    names = [k for k in rows[0] if k != "seed"] if is_family(run) else list(HYPER_FLAGS)
    hypers = "; ".join(f"{name} {values(name)}" for name in (*names, "seed"))
    if is_family(run):
        return (f"training {len(members)} member{'s' * (len(members) != 1)}: task {run.task.name} ({params}); "
                f"{describe_model(run.model)}; {describe_training(run)}; {hypers}")
    m, t = run.model, run.train
    return (f"training {len(members)} member{'s' * (len(members) != 1)}: task {run.task.name} ({params}); "
            f"{m.kind} {m.depth}x{m.width} {m.activation}{' +recurrence' if m.recurrence else ''}; "
            f"updater {t.updater}; {t.batches} batches of {t.batch_size}; {hypers}")


FAMILY_CPU_THREADS = 1
"""torch's CPU threads for a family's run unless `--threads` is given. Their tensors are small (one
member's batch of a 64-unit fast-weight net is a few thousand numbers per character), and two MKL
threads on such batched products cost more than they give: on this project's two-core machine under
load, the default fastweights run took 69 s on two threads and 10 s on one; the engine alone at P = 32
ran 68k member-steps/s on two threads against 116k on one."""


def _threads(args, run) -> int | None:
    """The torch CPU threads this run asks for: `--threads`, else FAMILY_CPU_THREADS for a family on the
    CPU, else None (torch's own: OMP_NUM_THREADS or the cores)."""
    from sweeper.engine.train import is_family

    if args.threads is not None:
        if not 1 <= args.threads <= 4096:
            raise SweeperError("--threads", f"got {args.threads}; expected an integer in [1, 4096]")
        return args.threads
    if is_family(run) and run.train.device == "cpu":
        return FAMILY_CPU_THREADS
    return None


def cmd_train(args) -> int:
    import torch

    from sweeper.engine.train import format_summary, is_family, judge, train
    from sweeper.study.memory import eval_memory_positions

    run, members = _run_from_args(args)
    threads = _threads(args, run)

    def announce() -> None:  # once the engine has accepted the run (memory included)
        if not args.json:
            line = describe_run(run, members)
            if is_family(run) and run.train.device == "cpu":
                n = torch.get_num_threads()
                line += f"; {n} CPU thread{'s' * (n != 1)}"
            print(line, flush=True)

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        result = train(run, members, progress=not args.json and not args.no_progress, on_start=announce)
    finally:
        torch.set_num_threads(before)
    # whether each stable member remembers: the studies' rule, over the memory positions its evaluation scored
    result = judge(result, eval_memory_positions(run.task, [h.seed for h in members], result.eval_batches,
                                                 run.train.batch_size))
    if args.json:
        print(jsonio.dumps(result.as_dict()))
    else:
        print(format_summary(result))
    return 0


BENCH_FLAGS = {
    "--depth": ("ephemeral",),
    "--updaters": ("ephemeral",),
    "--metrics-every": ("ephemeral",),
    "--reset-every": ("ephemeral",),
    "--optimizer": FAMILY_KINDS,
    "--dtype": FAMILY_KINDS,
}
"""`sweeper bench` options of one engine only (with MODEL_FLAGS' family options)."""


def cmd_bench(args) -> int:
    from sweeper.engine.bench import bench, bench_family, format_bench

    kind = args.kind
    if kind not in ("ephemeral", *FAMILY_KINDS):
        raise SweeperError("--model", f"got {kind!r}; bench takes ephemeral, fastweights or fwp")
    family_model = {flag: {k: v for k, v in keys.items() if k in FAMILY_KINDS}  # the ephemeral bench has none
                    for flag, keys in MODEL_FLAGS.items() if flag not in ("--depth", "--width", "--recurrence")}
    check_model_flags(args, kind, (BENCH_FLAGS, family_model))
    if kind == "ephemeral":
        report = bench(width=256 if args.width is None else args.width, depth=2 if args.depth is None else args.depth,
                       members=8 if args.members is None else args.members, batch_size=args.batch_size,
                       batches=args.batches, reference_batches=args.reference_batches, rounds=args.rounds,
                       metrics_every=10 if args.metrics_every is None else args.metrics_every,
                       reset_every=1 if args.reset_every is None else args.reset_every, device=args.device,
                       updaters=(args.updaters or "dfa").split(","),
                       reference=not args.no_reference, progress=not args.json)
    else:
        options = {keys[kind]: getattr(args, _dest(flag)) for flag, keys in MODEL_FLAGS.items()
                   if kind in keys and _given(args, flag)}
        report = bench_family(kind, options, members=32 if args.members is None else args.members,
                              batch_size=args.batch_size, batches=args.batches,
                              reference_batches=args.reference_batches, rounds=args.rounds,
                              optimizer=args.optimizer or "adam", dtype=args.dtype or "float32", device=args.device,
                              reference=not args.no_reference, progress=not args.json)
    print(jsonio.dumps(report) if args.json else format_bench(report))
    return 0
