"""`sweeper submit STUDY.toml`: run or resume a study on Ray Tune. Parsing and printing only.

The work is in `sweeper.sweep.driver`; the flags are checked there, before anything is written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from sweeper import jsonio

INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as a shell reports it."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run (or resume) a study file on Ray Tune, results into the trial database")
    p.add_argument("study", help="a study file (studies/*.toml)")
    p.add_argument("--storage", help="database URL (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")
    p.add_argument("--address", help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT; "
                                     "default: a private local Ray")
    # Read as text and checked by the driver, so that a bad count is one `sweeper: error:` line.
    p.add_argument("--num-cpus", metavar="N", help="CPUs of the private local Ray, 1 to this machine's (default: all)")
    p.add_argument("--max-trials", type=int, help="start at most this many Ray trials now (the rest on resubmit)")
    p.add_argument("--tune-storage", metavar="PATH",
                   help="Ray Tune's experiment directory; on a multi-host cluster a path every node shares "
                        "(default: $SWEEPER_TUNE_STORAGE, else a temporary directory here, removed at the end)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_submit)


def cmd_submit(args) -> int:
    if not args.address:
        from sweeper.sweep.local_ray import private_ray_env

        private_ray_env()  # loopback only, token auth said explicitly; must precede importing ray
    from sweeper.sweep.driver import format_result, submit

    try:
        result = submit(args.study, storage=args.storage, address=args.address, num_cpus=args.num_cpus,
                        progress=not args.json and not args.no_progress, max_packs=args.max_trials,
                        tune_storage=args.tune_storage)
    except KeyboardInterrupt:
        print(f"\nsweeper: interrupted; run the same command to resume: {resume_command(args)}", file=sys.stderr)
        return INTERRUPTED
    if args.json:
        from dataclasses import asdict

        print(jsonio.dumps(asdict(result)))
    else:
        print(format_result(result))
    return 0 if result.status == "COMPLETE" or args.max_trials is not None else 1


def resume_command(args, argv: list[str] | None = None) -> str:
    """The command line that resumes this study: the one typed, when this process was started by it."""
    argv = sys.argv if argv is None else argv
    if argv[1:2] == ["submit"]:
        prog = argv[0]
        head = [sys.executable, "-m", "sweeper"] if os.path.basename(prog) == "__main__.py" else [prog]
        return shlex.join(head + argv[1:])
    # Called in-process (`sweeper.cli.main([...])`): rebuilt from the parsed flags.
    words = ["sweeper", "submit", args.study]
    for flag, value in (("--storage", args.storage), ("--address", args.address), ("--num-cpus", args.num_cpus),
                        ("--max-trials", args.max_trials), ("--tune-storage", args.tune_storage)):
        if value is not None:
            words += [flag, str(value)]
    words += [flag for flag, on in (("--json", args.json), ("--no-progress", args.no_progress)) if on]
    return shlex.join(words)
