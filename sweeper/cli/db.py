"""The database commands of `sweeper`: status, trials, query, export. Parsing and printing only.

    sweeper status [STUDY] [--storage URL] [--json]
    sweeper trials STUDY [--filter EXPR]... [--sort COL] [--desc] [--limit N] [--format table|csv|json]
    sweeper query "SELECT ..." [--format table|csv|json]
    sweeper export STUDY --format csv|parquet -o PATH

`--storage` defaults to $SWEEPER_DB, else sqlite:///sweeper.sqlite3. Every command only reads: a
missing SQLite file or a database without the current schema is refused (a `StorageError`), never
created or upgraded. The work is done by `sweeper.db.queries` and `sweeper.db.run_readonly_query`;
a refusal is a `SweeperError` naming the flag to change, printed once by `sweeper.cli.main`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import math
import sys
from collections.abc import Sequence
from typing import Any

from sweeper.errors import SweeperError

FORMATS = ("table", "csv", "json")
TRIAL_TABLE_COLUMNS = (
    "trial", "pack_index", "config_index", "model_kind", "lr", "plasticity", "ratio", "gamma", "eta", "beta_scale", "lam",
    "clip", "seed", "memory_outcome",
    "explode_onset", "explode_step", "stop_step", "steps_done", "final_step", "final_loss", "eval_mem_acc",
    "memory_threshold", "wall_time_s", "device",
)  # fmt: skip
"""The columns `sweeper trials` shows as a table (csv and json have every column). `memory_outcome` is
the stored outcome with a judged stable member shown as `stable (memory)` or `stable (no memory)`."""
STATUS_OUTCOMES = {"running": "running", "stable (memory)": "stable (memory)", "stable (no memory)": "stable (no memory)",
                   "stable": "stable (not judged)", "exploded": "exploded", "stopped_early": "stopped_early",
                   "failed": "failed"}
"""The members-by-outcome columns of `sweeper status`: `memory_outcome` value -> column title. Stable
members are counted once, by their memory judgement (`sweeper.outcomes.judge_memory`); "stable" alone
is a stable member without one (its study evaluates nothing)."""
MODEL_AXIS_COLUMNS = ("plasticity", "ratio", "gamma", "eta", "beta_scale", "lam")
"""Hyperparameters of one model kind only (NULL for the others): the table leaves out those NULL in every row
shown, so an ephemeral study shows plasticity, ratio, gamma and a family study its own axes."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the database commands to the `sweeper` parser's subcommands."""

    def storage(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", metavar="URL", help="the trial database (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")

    p = subparsers.add_parser("status", help="progress of the studies in the database")
    p.add_argument("study", nargs="?", help="one study (default: all, newest first)")
    storage(p)
    p.add_argument("--json", action="store_true", help="print JSON (NaN and infinities as strings)")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("trials", help="the members of a study, one row each, filtered and sorted")
    p.add_argument("study")
    storage(p)
    p.add_argument(
        "--filter", action="append", default=[], metavar="EXPR",
        help='COLUMN OP VALUE, OP one of = != < <= > >= (e.g. outcome=exploded, "lr>1e-3", '
             '"memory_outcome=stable (memory)", remembers=false); repeat to AND them',
    )  # fmt: skip
    p.add_argument("--sort", metavar="COL", help="sort by this column (NULLs last)")
    p.add_argument("--desc", action="store_true", help="sort descending")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--format", choices=FORMATS, default="table", help="table shows the main columns; csv, json all")
    p.set_defaults(func=cmd_trials)

    p = subparsers.add_parser("query", help="run one read-only SQL statement (the database refuses writes)")
    p.add_argument("sql", help='e.g. "SELECT outcome, count(*) FROM sw_members GROUP BY outcome"')
    storage(p)
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--max-rows", type=int, default=10_000, metavar="N", help="refuse results longer than this")
    p.set_defaults(func=cmd_query)

    p = subparsers.add_parser("export", help="write a study's members and per-step metrics to CSV or Parquet")
    p.add_argument("study")
    storage(p)
    p.add_argument("--format", choices=("csv", "parquet"), required=True)
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the members file; metrics go to <stem>_metrics.<ext>")
    p.set_defaults(func=cmd_export)


def output_error(path: str, e: OSError) -> SweeperError:
    """The refusal for an `-o PATH` that cannot be written."""
    return SweeperError("--output", f"cannot write {path}: {e.strerror}" if e.strerror else str(e))


def _open(args: argparse.Namespace):
    from sweeper.db import default_url, open_db

    return open_db(args.storage or default_url())


# ---------------------------------------------------------------------------------------------------
# Commands


def cmd_status(args: argparse.Namespace) -> int:
    from sweeper.db.queries import study_progress

    with _open(args) as db:
        progress = study_progress(db, args.study)
    if args.json:
        print(to_json(progress))
        return 0
    if not progress:
        print("no studies")
        return 0
    for p in progress:  # a RUNNING study whose driver stopped beating was interrupted (resubmit resumes it)
        if p["status"] == "RUNNING" and _driver_gone(args, p["name"]):
            p["status"] = "RUNNING (driver gone: resubmit to resume)"
    columns = ["study", "status", "created_at", "planned", "trials", "WAITING", "RUNNING", "COMPLETE", "FAILED",
               "PRUNED", "members", *STATUS_OUTCOMES.values(), "best_eval_mem_acc"]  # fmt: skip
    rows = [
        (
            p["name"], p["status"], p["created_at"], p["trials"]["planned"], p["trials"]["total"],
            *(p["trials"][s] for s in ("WAITING", "RUNNING", "COMPLETE", "FAILED", "PRUNED")),
            p["members"]["total"],
            *(p["memory_outcomes"][o] for o in STATUS_OUTCOMES),
            p["best_eval_mem_acc"],
        )
        for p in progress
    ]  # fmt: skip
    print(format_table(columns, rows))
    print("trials by state (capitals), members by outcome (lower case); a stable member with an evaluation is "
          "judged stable (memory) or stable (no memory)")
    return 0


def _driver_gone(args: argparse.Namespace, name: str) -> bool:
    from sweeper.sweep.store import driver_alive, find_study

    with _open(args) as db:
        return not driver_alive(find_study(db, name))


def cmd_trials(args: argparse.Namespace) -> int:
    from sweeper.db.queries import member_rows, parse_filter

    try:
        filters = [parse_filter(text) for text in args.filter]
    except ValueError as e:  # the library's own refusal; here it has a flag to name
        raise SweeperError("--filter", str(e)) from None
    if args.limit is not None and args.limit < 1:
        raise SweeperError("--limit", f"got {args.limit}; expected a positive integer")
    with _open(args) as db:
        try:
            rows = member_rows(db, args.study, where=filters, sort=args.sort, descending=args.desc, limit=args.limit)
        except ValueError as e:  # filters and limit are checked above: only the sort column is left
            raise SweeperError("--sort", str(e)) from None
    if args.format == "json":
        print(to_json(rows))
        return 0
    if args.format == "csv":
        from sweeper.db.queries import MEMBER_COLUMNS

        columns = list(MEMBER_COLUMNS)
        write_csv(columns, [[row[c] for c in columns] for row in rows])
        return 0
    columns = [c for c in TRIAL_TABLE_COLUMNS
               if c not in MODEL_AXIS_COLUMNS or not rows or any(row[c] is not None for row in rows)]
    print(format_table(columns, [[row[c] for c in columns] for row in rows]))
    print(f"{len(rows)} member{'s' * (len(rows) != 1)}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from sweeper.db import SCHEMA_REVISION, StorageError, default_url, parse_url, run_readonly_query
    from sweeper.db.readonly import readonly_schema_revision

    url = parse_url(args.storage or default_url())
    revision = readonly_schema_revision(url)
    if revision != SCHEMA_REVISION:
        raise StorageError.wrong_schema(url, revision)
    columns, rows = run_readonly_query(url, args.sql, max_rows=args.max_rows)
    if args.format == "json":
        print(to_json({"columns": columns, "rows": rows}))
    elif args.format == "csv":
        write_csv(columns, rows)
    else:
        print(format_table(columns, rows))
        print(f"{len(rows)} row{'s' * (len(rows) != 1)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from sweeper.db.queries import export_study

    with _open(args) as db:
        try:
            report = export_study(db, args.study, args.output, args.format)
        except OSError as e:
            raise output_error(args.output, e) from None
    members_file, metrics_file = report["files"]
    print(f"wrote {report['members']} members to {members_file}")
    print(f"wrote {report['metric_rows']} metric rows to {metrics_file}")
    return 0


# ---------------------------------------------------------------------------------------------------
# Output


def _plain(value: Any) -> Any:
    """A value JSON or a table can hold: datetimes as ISO text, Decimals as floats, bytes as hex."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)  # e.g. a UUID or an interval a query returned


def to_json(value: Any) -> str:
    """Strict JSON (any parser reads it): NaN and infinities as "NaN", "Infinity", "-Infinity"."""
    from sweeper import jsonio

    return jsonio.dumps(_plain(value))


def _cell(value: Any) -> str:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"  # nan, inf, -inf as Python writes them
    if isinstance(value, dict | list):
        return to_json(value).replace("\n", " ")
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned plain text: numbers to the right, text to the left, NULL as an empty cell."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int | float | decimal.Decimal) or row[i] is None for row in rows) for i in range(len(columns))
    ]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(list(columns)), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def write_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]], file=None) -> None:
    """CSV with a header; NaN and infinities as nan, inf, -inf; NULL as an empty field."""
    writer = csv.writer(file or sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])


def _csv_value(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # nan, inf, -inf
    if isinstance(value, dict | list):
        return to_json(value).replace("\n", " ")
    return value
