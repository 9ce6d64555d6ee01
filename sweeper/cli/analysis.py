"""The stability-analysis commands of `sweeper`: boundary, figures. Parsing and printing only.

    sweeper boundary STUDY [--model logistic|svm] [--bootstrap N] [--folds K] [--seed S] [--no-store]
                           [--json] [--storage URL]
    sweeper boundary compare REFERENCE STUDY [--json] [--storage URL]
    sweeper figures STUDY -o DIR [--storage URL]
    sweeper reproduce table1 [--budget quick|full] [--seeds N] [--rows UNITS] [--device D] [--json]
    sweeper reproduce table1 --budget tuned [--smoke] [--configs N] [--search-seeds K] [--seeds N]
                             [--rows UNITS] [--quick-report FILE] [--storage URL] [--num-cpus N | --address A]
                             [--json]

`boundary` fits and stores the study's memory window in the study's plane (its `[search] plane`,
else the model's default: (lr, plasticity), (lr, eta) for fastweights, (lr, beta_scale) for fwp): the
stability boundary (`sweeper.analysis.boundary`), the memory onset among the stable members and the
window between them (`sweeper.analysis.window`), printed with the plane's axis names;
`boundary compare` counts the configurations STUDY (a frontier study) needed before its boundary fell
inside REFERENCE's (a grid study's) intervals (`sweeper.analysis.compare`); `figures` writes Fig. 6
and Fig. 7 as offline HTML files (`sweeper.analysis.figures`); `reproduce table1` trains the paper's
Table 1 with one shared hyperparameter set per model (`sweeper.analysis.reproduce`, one process), or
with `--budget tuned` searches each unit's hyperparameters through `submit` into the trial database
and rates the best configuration on fresh seeds beside the quick budget (`sweeper.sweep.tuned`). Their refusals (`BoundaryError`)
name the study or flag to change and are printed once by `sweeper.cli.main`.
"""

from __future__ import annotations

import argparse

from sweeper.cli.db import _open  # the storage default
from sweeper.errors import SweeperError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `sweeper boundary` and `sweeper figures` to the `sweeper` parser's subcommands."""

    def storage(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", metavar="URL", help="the trial database (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")

    p = subparsers.add_parser(
        "boundary", help="fit the stability boundary of a study (or: boundary compare REFERENCE STUDY)",
        description="Fit P(stable) on the log-scaled hyperparameters; report the line in the study's plane "
                    "((lr, plasticity) for the ephemeral model, (lr, eta) for fastweights, (lr, beta_scale) for fwp, "
                    "or the study file's [search] plane) with bootstrap intervals, cross-validated accuracy and "
                    "AUROC, per-cell explosion rates. When the study's stable members were judged on memory, also "
                    "fit the memory onset (P(remembers | stable)) and report the window between the two lines: "
                    "where it lies at the median of the plane's x and how wide it is, in the plane and along the "
                    "product (e.g. lr * plasticity), with bootstrap intervals. "
                    "`sweeper boundary compare REFERENCE STUDY` instead counts the configurations STUDY needed "
                    "to reach REFERENCE's boundary estimate.")
    p.add_argument("study", nargs="+", metavar="STUDY", help="a study; or: compare REFERENCE STUDY")
    p.add_argument("--model", choices=("logistic", "svm"), default="logistic")
    p.add_argument("--bootstrap", type=int, default=200, metavar="N", help="bootstrap refits (default 200)")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-store", action="store_true", help="fit and print, but do not store the fit")
    p.add_argument("--json", action="store_true", help="strict JSON")
    storage(p)
    p.set_defaults(func=cmd_boundary)

    p = subparsers.add_parser("figures", help="write the paper's Fig. 6 and Fig. 7 for a study as HTML files")
    p.add_argument("study")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for fig6.html and fig7.html")
    storage(p)
    p.set_defaults(func=cmd_figures)

    p = subparsers.add_parser(
        "reproduce", help="reproduce Table 1 of the paper (quick, full, or tuned per unit)",
        description="Train the paper's Table 1 and rate each unit (task x configuration x recurrence) against "
                    "the paper. quick / full: one shared hyperparameter set, in this process. tuned: per unit a "
                    "random search through `sweeper submit` into the trial database (studies table1_tuned_<unit>), "
                    "its best configuration retrained on fresh seeds, beside the quick budget; a rerun resumes.")
    p.add_argument("what", choices=["table1"])
    p.add_argument("--budget", choices=["quick", "full", "tuned"], default="quick")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="quick, full: seeds per unit; tuned: fresh seeds the best configuration is retrained on "
                        "(default 5, at least 5; --smoke: 2)")
    p.add_argument("--rows", metavar="UNITS",
                   help="comma-separated units (key_recall_eph-dfa-on) or configuration ids (eph-dfa-on: every task "
                        "and recurrence setting of it); default all (tuned --smoke: two)")
    p.add_argument("--device", default="cpu", help="quick, full: cpu or cuda (tuned trains on cpu)")
    p.add_argument("--smoke", action="store_true", help="tuned: a seconds-long run of two tiny units (for tests)")
    p.add_argument("--configs", type=int, metavar="N", help="tuned: configurations searched per unit (default 24; --smoke: 2)")
    p.add_argument("--search-seeds", type=int, metavar="K",
                   help="tuned: seeds per searched configuration (default 2; --smoke: 1)")
    p.add_argument("--quick-report", metavar="FILE",
                   help="tuned: read the quick budget's ratings from this JSON (`reproduce table1 --json`, or a tuned "
                        "report) instead of running it here")
    p.add_argument("--num-cpus", metavar="N", help="tuned: CPUs of the private local Ray (default: all)")
    p.add_argument("--address", help="tuned: an existing Ray cluster (auto, HOST:PORT or ray://HOST:PORT)")
    p.add_argument("--json", action="store_true", help="strict JSON")
    storage(p)
    p.set_defaults(func=cmd_reproduce)


def cmd_boundary(args: argparse.Namespace) -> int:
    from sweeper.cli.db import to_json

    if len(args.study) == 3 and args.study[0] == "compare":
        return _compare(args, *args.study[1:])
    if len(args.study) != 1:
        raise SweeperError("study", f"got {len(args.study)} studies; expected STUDY, or compare REFERENCE STUDY")
    from sweeper.analysis.window import fit_window

    with _open(args) as db:
        report = fit_window(db, args.study[0], model=args.model, bootstrap=args.bootstrap, folds=args.folds,
                            seed=args.seed, store=not args.no_store)
    if args.json:
        print(to_json(report.to_dict()))
        return 0
    print(format_report(report))
    return 0


def format_report(report) -> str:
    from sweeper.analysis.boundary import axis_label, payload_kind, payload_limits, payload_plane, product_name
    from sweeper.analysis.window import describe

    p = report.payload
    m, cv, b = p["members"], p["cv"], p["boundary"]
    x, y = payload_plane(p)
    stored = f"stored as fit {report.id}" if report.id is not None else "not stored"
    scaled = ", ".join(axis_label(a) for a in p["features"])
    lines = [f"study {report.study} ({payload_kind(p)}, plane ({x}, {y})): {p['model']} on {scaled} ({stored})",
             "stability boundary, the window's upper edge: P(stable), stable vs exploded or stopped early",
             f"  members: {m['fitted']} fitted ({m['stable']} stable, {m['exploded']} exploded, "
             f"{m['stopped_early']} stopped early); left out: "
             + (", ".join(f"{n} {k}" for k, n in m["excluded"].items()) or "none"),
             f"  cross-validated ({cv['folds']} folds): accuracy {cv['accuracy']:.3f} +- {cv['accuracy_sd']:.3f} "
             f"(majority class {cv['majority_baseline']:.3f}), AUROC {cv['auroc']:.3f}"]
    ends = {"clip": "no clip", "eta": "eta 0", "lambda": "lambda 1"}
    placed = [f"{ends[a]} at {axis_label(a)} = {v:.3g}" for a, v in payload_limits(p).items() if a in p["features"]]
    if placed:
        lines.append("  end values, one decade beyond the rest: " + ", ".join(placed))

    def interval(ci):
        return "no interval" if ci is None else f"95% [{ci[0]:.3f}, {ci[1]:.3f}]"

    if b["slope"] is None:
        lines.append(f"  boundary: vertical in the ({x}, {y}) plane (no weight on {y})")
    else:
        at = ", ".join(_value(k, v) for k, v in b["others_at_median"].items())
        lines.append(f"  boundary (P = 0.5{', ' + at if at else ''}): {axis_label(y)} = "
                     f"{b['slope']:.3f} * {axis_label(x)} + {b['intercept']:.3f}; stable {b['stable_side']} the line")
        lines.append(f"    slope {interval(b['slope_ci95'])}, intercept {interval(b['intercept_ci95'])} "
                     f"({b['bootstrap']['used']} bootstrap refits)")
    lines.append(f"  {product_name((x, y))} hypothesis: {p['product_hypothesis']['statement']}")
    h = p["hyperplane"]
    lines.append("  hyperplane: logit P(stable) = " + f"{h['intercept']:.3f} "
                 + " ".join(f"{'+' if c >= 0 else '-'} {abs(c):.3f} {axis_label(a)}" for a, c in h["coef"].items()))
    lines.extend(describe(p))  # the memory onset and the window, or why there are none
    cells = p["cells"]
    memory = p.get("memory") if isinstance(p.get("memory"), dict) and "cells" in p.get("memory", {}) else None
    if len(cells) <= 100:
        from sweeper.cli.db import format_table

        columns = [x, y, "members", "unstable", "rate", "ci_low", "ci_high"]
        rows = [[c[x], c[y], c["members"], c["unstable"], c["explosion_rate"], c["ci95"][0], c["ci95"][1]] for c in cells]
        if memory is None:
            lines.append(f"explosion rate per ({x}, {y}) cell, Wilson 95%:")
        else:  # the same cells, with the fraction of the judged stable members that remember
            lines.append(f"per ({x}, {y}) cell: explosion rate, and the fraction of the judged stable members that "
                         "remember; Wilson 95%:")
            judged = {(c[x], c[y]): c for c in memory["cells"]}
            columns += ["judged", "remember", "mem_rate", "mem_ci_low", "mem_ci_high"]
            for row in rows:
                c = judged.get((row[0], row[1]))
                row += ([0, 0, None, None, None] if c is None else
                        [c["members"], c["remember"], c["remembers_rate"], c["ci95"][0], c["ci95"][1]])
        table = format_table(columns, rows)
        lines.extend("  " + line for line in table.splitlines())
    else:
        lines.append(f"{len(cells)} ({x}, {y}) cells: see --json")
    return "\n".join(lines)


def _value(axis: str, value: float | None) -> str:
    """`axis value` as the boundary line's note shows it: "no clip" for clip inf (stored as null)."""
    if axis == "clip" and (value is None or value == float("inf")):
        return "no clip"
    return f"{axis} {value:g}"


def _compare(args: argparse.Namespace, reference: str, study: str) -> int:
    from sweeper.analysis.compare import compare_studies, format_comparison
    from sweeper.cli.db import to_json

    with _open(args) as db:
        result = compare_studies(db, reference, study, model=args.model, bootstrap=args.bootstrap,
                                 folds=args.folds, seed=args.seed)
    print(to_json(result) if args.json else format_comparison(result))
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from sweeper.analysis.figures import write_figures

    with _open(args) as db:
        try:
            written = write_figures(db, args.study, args.output)
        except OSError as e:
            from sweeper.cli.db import output_error

            raise output_error(args.output, e) from None
    for path in written:
        print(path)
    return 0


TUNED_ONLY = ("smoke", "configs", "search_seeds", "quick_report", "num_cpus", "address", "storage")
"""`sweeper reproduce` flags of `--budget tuned` alone (argparse attribute names)."""


def cmd_reproduce(args: argparse.Namespace) -> int:
    from sweeper import jsonio

    rows = None if args.rows is None else args.rows.split(",")
    if args.budget == "tuned":
        if args.device != "cpu":
            raise SweeperError("--device", f"got {args.device!r}; the tuned budget's studies train on cpu")
        from sweeper.sweep.tuned import format_tuned, table1_tuned

        report = table1_tuned(smoke=args.smoke, configs=args.configs, search_seeds=args.search_seeds,
                              seeds=args.seeds, only=rows, storage=args.storage, address=args.address,
                              num_cpus=args.num_cpus, quick_report=args.quick_report, progress=not args.json)
        print(jsonio.dumps(report) if args.json else format_tuned(report))
        return 0
    for name in TUNED_ONLY:
        if getattr(args, name) not in (None, False):
            flag = "--" + name.replace("_", "-")
            raise SweeperError(flag, f"applies to --budget tuned only; this is --budget {args.budget}")
    from sweeper.analysis.reproduce import format_table1, table1

    report = table1(budget=args.budget, seeds=args.seeds, device=args.device, progress=not args.json, only=rows)
    print(jsonio.dumps(report) if args.json else format_table1(report))
    return 0
