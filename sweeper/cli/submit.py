"""`sweeper submit STUDY.toml`: run or resume a study on Ray Tune. Parsing and printing only.

The work is in `sweeper.sweep.driver`.
"""

from __future__ import annotations

import argparse

from sweeper import jsonio


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="run (or resume) a study file on Ray Tune, results into the trial database")
    p.add_argument("study", help="a study file (studies/*.toml)")
    p.add_argument("--storage", help="database URL (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")
    p.add_argument("--address", help="an existing Ray cluster (e.g. auto, or HOST:PORT); default: a private local Ray")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--max-trials", type=int, help="start at most this many Ray trials now (the rest on resubmit)")
    p.add_argument("--tune-storage", metavar="PATH",
                   help="Ray Tune's experiment directory; on a multi-host cluster a path every node shares "
                        "(default: $SWEEPER_TUNE_STORAGE, else a temporary directory here)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_submit)


def cmd_submit(args) -> int:
    if not args.address:
        from sweeper.sweep.local_ray import loopback_only

        loopback_only()  # the private Ray stays on 127.0.0.1; must precede importing ray (the driver does)
    from sweeper.sweep.driver import format_result, submit

    result = submit(args.study, storage=args.storage, address=args.address, num_cpus=args.num_cpus,
                    progress=not args.json and not args.no_progress, max_packs=args.max_trials,
                    tune_storage=args.tune_storage)
    if args.json:
        from dataclasses import asdict

        print(jsonio.dumps(asdict(result)))
    else:
        print(format_result(result))
    return 0 if result.status == "COMPLETE" or args.max_trials is not None else 1
