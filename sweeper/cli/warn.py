"""The early-warning commands of `sweeper`: warn fit, warn eval, warn transfer. Parsing and printing only.

    sweeper warn fit STUDY... --name NAME [--steps K] [--model logreg|gb] [--features SETS] [--hypers]
                             [--min-step N] [--max-false-stop F] [--cadences 1,2,4] [--replace] [--storage URL]
                             [--json]
    sweeper warn eval STUDY [--predictor NAME|ID|ratio_rule|transition_bound] [--threshold X] [--min-step N]
                            [--at-step N] [--json] [--storage URL]
    sweeper warn transfer STUDY [STUDY...] [--fit STUDY | --all-pairs] [--features SETS] [--steps K]
                                [--model logreg|gb] [--min-step N] [--max-false-stop F] [--cadences 1,2,4]
                                [--late-onset N] [--json] [--storage URL]

The work is done by `sweeper.warn.fit`, `sweeper.warn.evaluate` and `sweeper.warn.transfer`; their refusals are
`SweeperError`s naming the flag or study to change, printed once by `sweeper.cli.main`.
"""

from __future__ import annotations

import argparse

from sweeper.cli.db import _open  # the storage default
from sweeper.warn.features import DEFAULT_FEATURES

FEATURES_HELP = (f"comma-separated feature sets (default {DEFAULT_FEATURES}): trajectory (levels and changes in the "
                 "fitted model's units), portable (scale-free: carries over to another task, width, updater, "
                 "metrics_every or model), growth (trajectory's changes alone), transition (fwp delta rules' "
                 "transition_max), hypers")
CADENCES_HELP = ("also learn from each member as if recorded every k-th full-metric batch, for each k listed "
                 "(default 1: as recorded); e.g. 1,2,4 for studies with a larger metrics_every; the threshold "
                 "keeps --max-false-stop at every cadence")


def _cadences(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(","))  # checked, with the flag's name, by warn.fit and warn.transfer


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
    p.add_argument("--features", default=DEFAULT_FEATURES, metavar="SETS", help=FEATURES_HELP)
    p.add_argument("--hypers", action="store_true",
                   help="also read log lr, log plasticity (fastweights: eta, fwp: beta_scale) and their product")
    p.add_argument("--min-step", type=int, default=20, metavar="N", help="first batch the predictor scores (default 20)")
    p.add_argument("--max-false-stop", type=float, default=0.05, metavar="F",
                   help="threshold: at most this fraction of stable members alarmed out of fold (default 0.05)")
    p.add_argument("--cadences", type=_cadences, default=("1",), metavar="K,K", help=CADENCES_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace", action="store_true", help="replace a stored predictor of the same name")
    p.add_argument("--json", action="store_true")
    storage(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("eval", help="replay a finished study: the predictor against the baselines")
    p.add_argument("study")
    p.add_argument("--predictor", default="ratio_rule",
                   help="ratio_rule (default), transition_bound (fwp delta rules), or a stored name or id")
    p.add_argument("--threshold", type=float, help="replace the predictor's threshold")
    p.add_argument("--min-step", type=int, metavar="N", help="default: the fitted predictor's, else the study's")
    p.add_argument("--at-step", type=int, metavar="N", help="batch of auroc_at_step (default: min-step)")
    p.add_argument("--late-onset", type=int, default=100, metavar="N",
                   help="explosions with onset >= N are reported again on their own (default 100)")
    p.add_argument("--json", action="store_true", help="strict JSON")
    storage(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("transfer", help="fit on one study, evaluate on others: does the predictor carry over?")
    p.add_argument("studies", nargs="+", metavar="STUDY")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--fit", metavar="STUDY", help="the study to fit on (default: the first)")
    which.add_argument("--all-pairs", action="store_true", help="fit on each study in turn: the full matrix")
    p.add_argument("--features", default=DEFAULT_FEATURES, metavar="SETS", help=FEATURES_HELP)
    p.add_argument("--steps", type=int, metavar="K", help="fit on batches <= K only (default: the whole budget)")
    p.add_argument("--model", choices=("logreg", "gb"), default="logreg")
    p.add_argument("--min-step", type=int, default=20, metavar="N", help="first batch every detector scores (default 20)")
    p.add_argument("--max-false-stop", type=float, default=0.05, metavar="F",
                   help="the fitted threshold: at most this fraction of stable members alarmed out of fold (default 0.05)")
    p.add_argument("--cadences", type=_cadences, default=("1",), metavar="K,K", help=CADENCES_HELP)
    p.add_argument("--late-onset", type=int, default=100, metavar="N",
                   help="late explosions: onset >= N (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="strict JSON")
    storage(p)
    p.set_defaults(func=cmd_transfer)


def cmd_fit(args: argparse.Namespace) -> int:
    from sweeper.cli.db import to_json
    from sweeper.warn.fit import fit_predictor

    with _open(args) as db:
        report = fit_predictor(db, args.studies, name=args.name, steps=args.steps, model=args.model,
                               min_step=args.min_step, hypers=args.hypers, features=args.features,
                               max_false_stop=args.max_false_stop, seed=args.seed, replace=args.replace,
                               cadences=args.cadences)
    if args.json:
        report = {k: v for k, v in report.items() if k != "train_member_ids"}
        print(to_json(report))
        return 0
    r, oof = report["report"], report["report"]["out_of_fold"]
    print(f"stored predictor {report['name']!r} (id {report['id']}): {report['model']}, "
          f"{len(report['features'])} features ({report['feature_set']}), batches "
          f"{report['min_step']}..{report['steps'] or 'end'}")
    print(f"  fitted on {r['members']} members of {', '.join(report['models'])} ({r['exploded']} exploded, "
          f"{r['stable']} stable), {r['examples']} examples")
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
    m, t = report["members"], report["transfer"]
    fitted = (f"fitted on {', '.join(t['fitted_on'])}, features {t['feature_set']}" if t["fitted_on"]
              else "a rule, not fitted" if t["feature_set"] is None else f"features {t['feature_set']}")
    print(f"predictor {report['predictor']['name']} ({fitted}); evaluated on {t['evaluated_on']}")
    if t["level_features"]:
        print(f"  across models it reads {len(t['level_features'])} features as levels in the units of "
              f"{', '.join(t['fitted_kinds'])} ({', '.join(t['level_features'][:3])}, ...); "
              "`sweeper warn fit --features portable` fits one that reads only what carries over")
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
    if report.get("carry"):
        print("\ncarry-over: " + _outside_words(report["carry"]["outside"]))
        print("  " + _precursor_words(report["carry"]["precursors"], report["carry"]["outside"]["at"]))
    return 0


def _outside_words(o: dict) -> str:
    """`carry.outside` in words."""
    if o["any"] is None:
        return f"no member was running at batch {o['at']} to compare with the fitted range"
    top = [(f, x) for f, x in o["by_feature"].items() if x > 0][:3]
    return (f"{100 * o['any']:.0f}% of the {o['members']} members running at batch {o['at']} lie outside the fitted "
            f"members' range there (percentiles 1-99) in some feature"
            + (" (" + ", ".join(f"{f} {100 * x:.0f}%" for f, x in top) + ")" if top else ""))


def _precursor_words(shift: list, at: int) -> str:
    """`carry.precursor_shift` in words."""
    if not shift:
        return f"the fitted study has no clear precursor: no feature alone points clearly either way at batch {at}"
    return (f"the fitted study's strongest precursors at batch {at} (AUROC alone, fitted study -> this one): "
            + "; ".join(f"{p['feature']} {_r2(p['fitted_auroc'])} -> {_r2(p['auroc'])} ({p['verdict']})"
                        for p in shift))


def _figures_table(name: str, res: dict, format_table) -> str:
    columns = ["detector", "auroc", "precision", "recall", "recall_by_onset", "false_stops", "median_lead",
               "late_alarms", "compute_saved", "saved_beyond_explosion_stop"]
    rows = [(name, res["predictor"])] + list(res["baselines"].items())
    return format_table(columns, [
        (n, r["auroc"], r["precision"], r["recall"], r["recall_by_onset"], r["false_stop_rate"],
         r["median_lead_time"], r["late_alarms"], r["compute_saved"], r["compute_saved_beyond_explosion_stop"])
        for n, r in rows
    ])  # fmt: skip


def cmd_transfer(args: argparse.Namespace) -> int:
    from sweeper.cli.db import format_table, to_json
    from sweeper.warn.transfer import TransferSettings, check_request, load_study, transfer_matrix

    fit_on = check_request(args.studies, args.fit, args.all_pairs)
    names = list(args.studies) + [n for n in fit_on if n not in args.studies]
    with _open(args) as db:
        studies = [load_study(db, n) for n in names]
    settings = TransferSettings(features=args.features, steps=args.steps, model=args.model, min_step=args.min_step,
                                max_false_stop=args.max_false_stop, late_onset=args.late_onset, seed=args.seed,
                                cadences=args.cadences)
    report = transfer_matrix(studies, fit_on, settings)
    if args.json:
        print(to_json(report))
        return 0
    print(_transfer_text(report, format_table))
    return 0


def _transfer_text(report: dict, format_table) -> str:
    """The fitted rows, one table of every cell's detectors, the AUROC / false-stop matrix, each feature's
    AUROC alone per study, and the verdict."""
    r3 = lambda x: None if x is None else round(float(x), 3)  # noqa: E731
    settings, target = report["settings"], report["targets"]
    settings_of = {s["name"]: s["setting"] for s in report["studies"]}

    def setting(name: str) -> str:
        s = settings_of[name]
        return f"{s['task']}, {s['model']} w{s['width']}, {s['updater']}, every {s['metrics_every']}"

    lines = [f"features {settings['features']} ({len(report['features'])}); fitted on batches "
             f"{settings['min_step']}..{settings['steps'] or 'end'}; every detector scores from batch "
             f"{settings['min_step']}; late explosions: onset >= {settings['late_onset']}; lead = onset - alarm batch; "
             f"auroc_running: over the members still running at batch "
             f"{settings['min_step']}"]
    for f in report["fits"]:
        o = f["out_of_fold"]
        lines.append(f"fitted on {f['fitted_on']} ({setting(f['fitted_on'])}): {f['members']} members "
                     f"({f['exploded']} exploded, {f['stable']} stable), threshold {f['threshold']:.4g}; out of fold "
                     f"AUROC {o['auroc']:.3f}, recall {o['recall']:.3f}, false stops {o['false_stop_rate']:.3f}")
    rows = []
    for c in report["cells"]:
        where = "(out of fold)" if c["out_of_fold"] else ", ".join(c["changed"]) or "(none)"
        for k, (name, d) in enumerate(c["detectors"].items()):
            first = k == 0
            rows.append((c["fitted_on"] if first else "", c["evaluated_on"] if first else "", where if first else "",
                         f"{c['exploded']}/{c['members']}" if first else "", c["late_explosions"] if first else None,
                         name, r3(d["auroc"]), r3(d["auroc_running"]), r3(d["false_stop_rate"]), r3(d["recall"]),
                         r3(d["late_recall"]), d["median_lead_time"], r3(d["compute_saved"]),
                         ("yes" if c["meets_target"] else "no") if first and c["meets_target"] is not None else ""))
    lines += ["", format_table(["fitted_on", "evaluated_on", "changed", "exploded", "late", "detector", "auroc",
                                "auroc_running", "false_stops", "recall", "late_recall", "median_lead",
                                "compute_saved", "meets"], rows)]
    fitted = [f["fitted_on"] for f in report["fits"]]
    cols = [s["name"] for s in report["studies"]]
    cell = {(c["fitted_on"], c["evaluated_on"]): c for c in report["cells"]}
    matrix = []
    for f in fitted:
        row = [f]
        for e in cols:
            d = cell[(f, e)]["detectors"]["learned"]
            mark = " (oof)" if f == e else (" *" if cell[(f, e)]["meets_target"] else "")
            row.append(f"{r3(d['auroc'])} / {100 * d['false_stop_rate']:.1f}%{mark}")
        matrix.append(row)
    lines += ["", "learned predictor: AUROC / false stops (rows: fitted on, columns: evaluated on; "
              "* meets the target, oof: out of fold)", format_table(["fitted_on \\ evaluated_on", *cols], matrix)]
    off = [c for c in report["cells"] if "outside" in c]
    if off:
        lines += ["", f"outside the fitted members' range at batch {settings['min_step']} (percentiles 1-99): share of "
                  "the members running there, in any feature and in the three features most outside",
                  format_table(["fitted_on", "evaluated_on", "any", "features"], [
                      [c["fitted_on"], c["evaluated_on"], r3(c["outside"]["any"]),
                       ", ".join(f"{f} {x:.2f}" for f, x in list(c["outside"]["by_feature"].items())[:3])]
                      for c in off])]
    pre = report["precursors"]
    lines += ["", f"each feature alone at batch {pre['at']}: AUROC, exploding vs stable, over the members not yet "
              "broken (> 0.5: a higher value comes before an explosion)",
              format_table(["feature", *cols], [[f, *(r3(pre["by_study"][e][f]) for e in cols)]
                                                for f in report["features"]])]
    n_off = len(report["meeting"]) + len(report["missing"])
    lines += ["", f"target (AUROC >= {target['auroc']}, false stops <= {100 * target['false_stop_rate']:.0f}%): "
              f"{len(report['meeting'])} of {n_off} cells off the diagonal meet it"]
    lines += [f"  meets: {m['fitted_on']} -> {m['evaluated_on']}" for m in report["meeting"]]
    for m in report["missing"]:
        lines.append(f"  misses: {m['fitted_on']} -> {m['evaluated_on']}: {m['why']}")
        lines += [f"    {line}" for line in _reason_lines(m.get("reasons") or {}, report["settings"]["min_step"])]
    return "\n".join(lines)


def _reason_lines(r: dict, min_step: int) -> list[str]:
    """A missed cell's reasons (`sweeper.warn.transfer.reasons`) in words."""
    lines = []
    if r.get("exploded_before_min_step"):
        lines.append(f"{r['exploded_before_min_step']} of {r['exploded']} explosions were decided before batch "
                     f"{min_step}, where every detector starts: none can warn on them")
    if r.get("false_stops"):
        lines.append(f"false stops at batch {r['false_stop_batch_median']:g} (median), pushed over the threshold by: "
                     + "; ".join(f"{f['feature']} {f['median_push']:+.2f} (value {f['median_value']:+.3g}, fitted "
                                 f"study's stable {f['fitted_stable_median']:+.3g})" for f in r["false_stops"]))
    if r.get("precursors") is not None:
        lines.append(_precursor_words(r["precursors"], min_step))
    return lines


def _r2(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
