"""The `sweeper` command: one module per command group, parsing and printing only.

    run        train, bench                     (one process; no Ray, no database)
    submit     submit                           (a study on Ray Tune, into the trial database)
    plan       plan                             (pack sizes for a GPU)
    db         status, trials, query, export    (read the trial database)
    warn       warn fit, eval, transfer         (early-warning predictors)
    analysis   boundary, figures, reproduce     (the stability boundary, the paper's figures and Table 1)
    dashboard  dashboard, report                (the web dashboard, the offline report)

Every refusal is a `sweeper.errors.SweeperError`, raised where the problem is known and caught here
once: one line, `sweeper: error: FIELD: MESSAGE`, exit 2. A command never catches it; it only turns a
library's plain exception into one where the flag to name is known only here (e.g. `--filter`,
`--output`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
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


def error_line(exc: SweeperError) -> str:
    """`FIELD: MESSAGE` on one line: a driver's message may span several (e.g. psycopg's "Is the server
    running ...?" hint), which are joined here."""
    return re.sub(r"\s*\n\s*", " ", str(exc).strip())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SweeperError as exc:
        print(f"sweeper: error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sweeper: interrupted", file=sys.stderr)
        return 130
