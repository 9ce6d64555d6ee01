"""The stability-analysis commands of `sweeper`: boundary, figures. Parsing and printing only.

    sweeper boundary STUDY [--model logistic|svm] [--bootstrap N] [--folds K] [--seed S] [--no-store]
                           [--json] [--storage URL]
    sweeper boundary compare REFERENCE STUDY [--json] [--storage URL]
    sweeper figures STUDY -o DIR [--storage URL]

`boundary` fits and stores the study's stability boundary (`sweeper.analysis.boundary`);
`boundary compare` counts the configurations STUDY (a frontier study) needed before its boundary fell
inside REFERENCE's (a grid study's) intervals (`sweeper.analysis.compare`); `figures` writes Fig. 6
and Fig. 7 as offline HTML files (`sweeper.analysis.figures`). Their refusals (`BoundaryError`)
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
        description="Fit P(stable) on log10 hyperparameters; report the (lr, plasticity) line with bootstrap "
                    "intervals, cross-validated accuracy and AUROC, per-cell explosion rates. "
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


def cmd_boundary(args: argparse.Namespace) -> int:
    from sweeper.cli.db import to_json

    if len(args.study) == 3 and args.study[0] == "compare":
        return _compare(args, *args.study[1:])
    if len(args.study) != 1:
        raise SweeperError("study", f"got {len(args.study)} studies; expected STUDY, or compare REFERENCE STUDY")
    from sweeper.analysis.boundary import fit_boundary

    with _open(args) as db:
        report = fit_boundary(db, args.study[0], model=args.model, bootstrap=args.bootstrap, folds=args.folds,
                              seed=args.seed, store=not args.no_store)
    if args.json:
        print(to_json(report.to_dict()))
        return 0
    print(format_report(report))
    return 0


def format_report(report) -> str:
    p = report.payload
    m, cv, b = p["members"], p["cv"], p["boundary"]
    stored = f"stored as fit {report.id}" if report.id is not None else "not stored"
    lines = [f"study {report.study}: {p['model']} on log10 {', '.join(p['features'])} ({stored})",
             f"  members: {m['fitted']} fitted ({m['stable']} stable, {m['exploded']} exploded, "
             f"{m['stopped_early']} stopped early); left out: "
             + (", ".join(f"{n} {k}" for k, n in m["excluded"].items()) or "none"),
             f"  cross-validated ({cv['folds']} folds): accuracy {cv['accuracy']:.3f} +- {cv['accuracy_sd']:.3f} "
             f"(majority class {cv['majority_baseline']:.3f}), AUROC {cv['auroc']:.3f}"]

    def interval(ci):
        return "no interval" if ci is None else f"95% [{ci[0]:.3f}, {ci[1]:.3f}]"

    if b["slope"] is None:
        lines.append("  boundary: vertical in the (lr, plasticity) plane (no weight on plasticity)")
    else:
        at = ", ".join(f"{k} {v:g}" for k, v in b["others_at_median"].items())
        lines.append(f"  boundary (P = 0.5{', ' + at if at else ''}): log10 plasticity = "
                     f"{b['slope']:.3f} * log10 lr + {b['intercept']:.3f}; stable {b['stable_side']} the line")
        lines.append(f"    slope {interval(b['slope_ci95'])}, intercept {interval(b['intercept_ci95'])} "
                     f"({b['bootstrap']['used']} bootstrap refits)")
    lines.append(f"  lr * plasticity hypothesis: {p['product_hypothesis']['statement']}")
    h = p["hyperplane"]
    lines.append("  hyperplane: logit P(stable) = " + f"{h['intercept']:.3f} "
                 + " ".join(f"{'+' if c >= 0 else '-'} {abs(c):.3f} log10 {a}" for a, c in h["coef"].items()))
    cells = p["cells"]
    if len(cells) <= 100:
        from sweeper.cli.db import format_table

        lines.append("  explosion rate per (lr, plasticity) cell, Wilson 95%:")
        table = format_table(["lr", "plasticity", "members", "unstable", "rate", "ci_low", "ci_high"],
                             [(c["lr"], c["plasticity"], c["members"], c["unstable"], c["explosion_rate"],
                               c["ci95"][0], c["ci95"][1]) for c in cells])
        lines.extend("    " + line for line in table.splitlines())
    else:
        lines.append(f"  {len(cells)} (lr, plasticity) cells: see --json")
    return "\n".join(lines)


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
