"""The `sweeper` command: one module per command group, parsing and printing only.

    run        train, bench, reproduce          (one process; no Ray, no database)
    submit     submit                           (a study on Ray Tune, into the trial database)
    plan       plan                             (pack sizes for a GPU)
    db         status, trials, query, export    (read the trial database)
    warn       warn fit, warn eval              (early-warning predictors)
    analysis   boundary, figures                (the stability boundary, the paper's figures)
    dashboard  dashboard, report                (the web dashboard, the offline report)

Every refusal is a `sweeper.errors.SweeperError`, caught here once: one line naming the field, exit 2.
"""

from __future__ import annotations

import argparse
import sys

from sweeper.errors import SweeperError

GROUPS = ("run", "submit", "plan", "db", "warn", "analysis", "dashboard")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="sweeper", description="Sweeps and stability analysis for ephemeral-weight networks")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        importlib.import_module(f"sweeper.cli.{group}").register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SweeperError as exc:
        print(f"sweeper: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sweeper: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
