"""The early-warning commands of `sweeper`: warn fit, warn eval. Parsing and printing only.

    sweeper warn fit STUDY... --name NAME [--steps K] [--model logreg|gb] [--hypers] [--min-step N]
                             [--max-false-stop F] [--replace] [--storage URL] [--json]
    sweeper warn eval STUDY [--predictor NAME|ID|ratio_rule] [--threshold X] [--min-step N] [--at-step N]
                            [--json] [--storage URL]

The work is done by `sweeper.warn.fit` and `sweeper.warn.evaluate`; their refusals are
`SweeperError`s naming the flag or study to change, printed once by `sweeper.cli.main`.
"""

from __future__ import annotations

import argparse

from sweeper.cli.db import _open  # the storage default


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `sweeper warn fit|eval` to the `sweeper` parser's subcommands."""
    warn = subparsers.add_parser("warn", help="early warning: fit and evaluate explosion predictors")
    sub = warn.add_subparsers(dest="warn_command", required=True)

    def storage(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", metavar="URL", help="the trial database (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")

    p = sub.add_parser("fit", help="fit a learned predictor on finished studies and store it in the database")
    p.add_argument("studies", nargs="+", metavar="STUDY")
    p.add_argument("--name", required=True, help="the name a study file's [early_warning] predictor uses")
    p.add_argument("--steps", type=int, metavar="K", help="learn from batches <= K only (default: the whole budget)")
    p.add_argument("--model", choices=("logreg", "gb"), default="logreg",
                   help="logistic regression or gradient boosting, calibrated (default logreg)")
    p.add_argument("--hypers", action="store_true", help="also read log lr, log plasticity and their product")
    p.add_argument("--min-step", type=int, default=20, metavar="N", help="first batch the predictor scores (default 20)")
    p.add_argument("--max-false-stop", type=float, default=0.05, metavar="F",
                   help="threshold: at most this fraction of stable members alarmed out of fold (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace", action="store_true", help="replace a stored predictor of the same name")
    p.add_argument("--json", action="store_true")
    storage(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("eval", help="replay a finished study: the predictor against the baselines")
    p.add_argument("study")
    p.add_argument("--predictor", default="ratio_rule", help="ratio_rule (default), or a stored name or id")
    p.add_argument("--threshold", type=float, help="replace the predictor's threshold")
    p.add_argument("--min-step", type=int, metavar="N", help="default: the fitted predictor's, else the study's")
    p.add_argument("--at-step", type=int, metavar="N", help="batch of auroc_at_step (default: min-step)")
    p.add_argument("--late-onset", type=int, default=100, metavar="N",
                   help="explosions with onset >= N are reported again on their own (default 100)")
    p.add_argument("--json", action="store_true", help="strict JSON")
    storage(p)
    p.set_defaults(func=cmd_eval)


def cmd_fit(args: argparse.Namespace) -> int:
    from sweeper.cli.db import to_json
    from sweeper.warn.fit import fit_predictor

    with _open(args) as db:
        report = fit_predictor(db, args.studies, name=args.name, steps=args.steps, model=args.model,
                               min_step=args.min_step, hypers=args.hypers, max_false_stop=args.max_false_stop,
                               seed=args.seed, replace=args.replace)
    if args.json:
        report = {k: v for k, v in report.items() if k != "train_member_ids"}
        print(to_json(report))
        return 0
    r, oof = report["report"], report["report"]["out_of_fold"]
    print(f"stored predictor {report['name']!r} (id {report['id']}): {report['model']}, "
          f"{len(report['features'])} features, batches {report['min_step']}..{report['steps'] or 'end'}")
    print(f"  fitted on {r['members']} members ({r['exploded']} exploded, {r['stable']} stable), "
          f"{r['examples']} examples")
    print(f"  out of fold: AUROC {oof['auroc']:.3f}; threshold {report['threshold']:.4g} -> recall "
          f"{oof['recall']:.3f}, false stops {oof['false_stop_rate']:.3f}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from sweeper.cli.db import format_table, to_json
    from sweeper.warn.evaluate import evaluate
    from sweeper.warn.predictors import load_predictor

    with _open(args) as db:
        predictor = load_predictor(db, args.predictor)
        report = evaluate(db, args.study, predictor, min_step=args.min_step, at_step=args.at_step,
                          threshold=args.threshold, late_onset=args.late_onset)
    if args.json:
        print(to_json(report))
        return 0
    m = report["members"]
    print(f"study {report['study']}: {m['evaluated']} held-out members ({m['exploded']} exploded, {m['stable']} "
          f"stable; {m['excluded_trained_on']} left out as fitted on), budget {report['budget']} batches, "
          f"scored from batch {report['min_step']}")
    print(f"explosions: onset at batch 0: {m['onset_at_batch_0']}, onset before batch {report['min_step']}: "
          f"{m['onset_before_min_step']}, onset >= {report['late_onset']}: {m['late_explosions']}"
          + (f"; {m['onset_estimated']} onsets estimated from stored rows" if m["onset_estimated"] else ""))
    print("lead time = onset - alarm batch (negative: the alarm came after the onset)")
    print(_figures_table(report["predictor"]["name"], report["results"], format_table))
    late = report["late_explosions"]
    print(f"\nlate explosions (onset >= {late['late_onset']}): {late['exploded']} exploded, {late['stable']} stable")
    print(_figures_table(report["predictor"]["name"], late["results"], format_table) if late["results"]
          else "none")
    return 0


def _figures_table(name: str, res: dict, format_table) -> str:
    columns = ["detector", "auroc", "precision", "recall", "recall_by_onset", "false_stops", "median_lead",
               "late_alarms", "compute_saved", "saved_beyond_explosion_stop"]
    rows = [(name, res["predictor"])] + list(res["baselines"].items())
    return format_table(columns, [
        (n, r["auroc"], r["precision"], r["recall"], r["recall_by_onset"], r["false_stop_rate"],
         r["median_lead_time"], r["late_alarms"], r["compute_saved"], r["compute_saved_beyond_explosion_stop"])
        for n, r in rows
    ])  # fmt: skip
