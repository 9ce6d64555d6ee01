"""How many configurations a study needs to reach a reference study's boundary estimate.

    result = compare_studies(db, "fig7_reversal3_grid_cpu", "fig7_reversal3_frontier_cpu")
    result["first_inside"], result["stays_inside_from"], result["fraction_of_reference"]

The reference (a full grid) is fitted with its bootstrap intervals; the other study (a frontier
study) is refitted on its first n configurations, in the order they were proposed (config_index),
for n = 1, 2, ...: the estimate has reached the reference when its slope lies in the reference's
slope interval and its intercept in the reference's intercept interval. `first_inside` is the first
such n; `stays_inside_from` the first n from which every later refit stays inside (the honest count
when the curve wanders in and out). Counts are configurations (each trained once per seed), as the
reference's are: a grid of 36 cells is 36 configurations.

A second yardstick needs no intervals: each refit's line is also used to predict the reference's own
members (stable or not, by the side of the line each lies on) and its errors are counted beside
those of the reference's own line on the same members (`errors_on_reference`, `reference_errors`).
`predicts_from` is the first n from which every later refit errs on at most as many of them. The
intervals ask whether two designs give the same line; this asks whether the study's line describes
the reference's outcomes as well as the reference's own line does. Where the outcomes are nearly
deterministic and the reference's cells are coarse, many lines separate them equally well, and a
bootstrap of a regularized line (the resampled cells keep their outcomes) can exclude some of them:
the two answers then differ, and both are reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .boundary import BoundaryError, Members, fit_members, load_members, p_stable

TARGET_FRACTION = 1 / 3
"""The target: the frontier reaches the grid's estimate with at most a third of its trials."""


def compare_studies(db, reference: str, study: str, *, model: str = "logistic", bootstrap: int = 200,
                    folds: int = 5, seed: int = 0,
                    fitted: tuple[Members, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`fitted`: the reference's `fit_reference` with the same settings, when comparing many studies
    with one reference (it is refitted otherwise)."""
    ref_members, ref = fitted or fit_reference(db, reference, model=model, bootstrap=bootstrap, folds=folds,
                                               seed=seed)
    b = ref["boundary"]
    members = load_members(db, study)
    order = np.unique(members.config_index)
    if order.size == 0 or order[0] < 0:
        raise BoundaryError(f"study {study!r} has no members with a configuration index")
    refits = refit_curve(members, ref, ref_members, model=model, seed=seed)
    stays = refits["stays_inside_from"]
    ref_configs = int(np.unique(ref_members.config_index).size)
    final = fit_members(members, model=model, bootstrap=bootstrap, folds=folds, seed=seed)
    return {
        "reference": {"study": reference, "configs": ref_configs, "members": ref["members"]["fitted"],
                      "slope": b["slope"], "slope_ci95": b["slope_ci95"], "intercept": b["intercept"],
                      "intercept_ci95": b["intercept_ci95"], "cv": ref["cv"], "errors": refits["reference_errors"]},
        "study": {"study": study, "configs": int(order.size), "members": final["members"]["fitted"],
                  "slope": final["boundary"]["slope"], "slope_ci95": final["boundary"]["slope_ci95"],
                  "intercept": final["boundary"]["intercept"], "intercept_ci95": final["boundary"]["intercept_ci95"],
                  "cv": final["cv"]},
        "model": model,
        **refits,
        "fraction_of_reference": None if stays is None else stays / ref_configs,
        "first_inside_fraction": None if refits["first_inside"] is None else refits["first_inside"] / ref_configs,
        "target_fraction": TARGET_FRACTION,
        "target_met": stays is not None and stays <= TARGET_FRACTION * ref_configs,
        "study_errors_on_reference": errors_on(final, ref_members),
    }


def fit_reference(db, reference: str, *, model: str = "logistic", bootstrap: int = 200, folds: int = 5,
                  seed: int = 0) -> tuple[Members, dict[str, Any]]:
    """The reference study's members and its fit, which must have a line with bootstrap intervals."""
    ref_members = load_members(db, reference)
    ref = fit_members(ref_members, model=model, bootstrap=bootstrap, folds=folds, seed=seed)
    b = ref["boundary"]
    if b["slope"] is None or b["slope_ci95"] is None or b["intercept_ci95"] is None:
        raise BoundaryError(f"reference study {reference!r} has no boundary line with intervals to compare with "
                            f"({ref['product_hypothesis']['statement']})")
    return ref_members, ref


def refit_curve(members: Members, ref: dict[str, Any], ref_members: Members, *, model: str = "logistic",
                seed: int = 0) -> dict[str, Any]:
    """`members` refitted on their first n configurations (in config_index order), n = 1, 2, ..., each
    refit judged against the reference fit `ref` (its intervals) and on the reference's members: the
    curve, `first_inside`, `stays_inside_from`, `predicts_from` and `reference_errors`."""
    b = ref["boundary"]
    (s_lo, s_hi), (i_lo, i_hi) = b["slope_ci95"], b["intercept_ci95"]
    ref_errors = errors_on(ref, ref_members)
    curve = []
    for last in np.unique(members.config_index):
        keep = members.config_index <= last
        row: dict[str, Any] = {"configs": len(curve) + 1, "members": int(keep.sum()), "slope": None,
                               "intercept": None, "inside": False, "errors_on_reference": None}
        try:
            payload = fit_members(members.subset(keep), model=model, bootstrap=0, cv=False, seed=seed)
        except BoundaryError as e:
            row["why_not"] = e.message.split(";")[0]
            curve.append(row)
            continue
        fit = payload["boundary"]
        row["slope"], row["intercept"] = fit["slope"], fit["intercept"]
        row["errors_on_reference"] = errors_on(payload, ref_members)
        row["inside"] = (fit["slope"] is not None and s_lo <= fit["slope"] <= s_hi
                         and i_lo <= fit["intercept"] <= i_hi)
        curve.append(row)
    as_well = [r["errors_on_reference"] is not None and r["errors_on_reference"] <= ref_errors for r in curve]
    return {"curve": curve,
            "first_inside": next((r["configs"] for r in curve if r["inside"]), None),
            "stays_inside_from": _stays_from(curve, [r["inside"] for r in curve]),
            "predicts_from": _stays_from(curve, as_well),
            "reference_errors": ref_errors}


def errors_on(payload: dict[str, Any], members: Members) -> int:
    """How many of `members` the fit `payload` puts on the wrong side of its line (P(stable) >= 0.5 for
    an unstable member, < 0.5 for a stable one), each at its own hyperparameters."""
    p = p_stable(payload, {a: members.hypers[a] for a in payload["features"] if a in members.hypers})
    return int(np.sum((p >= 0.5) != members.stable))


def _stays_from(curve: list[dict[str, Any]], ok: list[bool]) -> int | None:
    """The first n of `curve` from which `ok` holds for every later row; None if it fails at the last."""
    if not ok or not ok[-1]:
        return None
    k = len(ok)
    while k > 0 and ok[k - 1]:
        k -= 1
    return curve[k]["configs"]


def format_comparison(r: dict[str, Any]) -> str:
    ref, st = r["reference"], r["study"]

    def line(d):
        s, i = d["slope_ci95"], d["intercept_ci95"]
        si = f" [{s[0]:.3f}, {s[1]:.3f}]" if s else ""
        ii = f" [{i[0]:.3f}, {i[1]:.3f}]" if i else ""
        return (f"{d['study']}: {d['configs']} configurations, {d['members']} members; slope {d['slope']:.3f}{si}, "
                f"intercept {d['intercept']:.3f}{ii}; CV accuracy {d['cv']['accuracy']:.3f}, AUROC {d['cv']['auroc']:.3f}")

    out = ["reference " + line(ref), "study     " + line(st), "refits on the study's first n configurations:"]
    for c in r["curve"]:
        if c["slope"] is None:
            out.append(f"  n={c['configs']:3d} ({c['members']} members): no fit ({c.get('why_not', 'vertical line')})")
        else:
            out.append(f"  n={c['configs']:3d} ({c['members']} members): slope {c['slope']:.3f}, intercept "
                       f"{c['intercept']:.3f}; errs on {c['errors_on_reference']} of the reference's members"
                       f"{'  inside' if c['inside'] else ''}")
    first, stays = r["first_inside"], r["stays_inside_from"]
    out.append(f"first inside the reference's intervals at n = {first}" if first else
               "never inside the reference's intervals")
    if stays is not None:
        out.append(f"inside from n = {stays} on: {stays}/{ref['configs']} = {r['fraction_of_reference']:.2f} of the "
                   f"reference's configurations (target <= {r['target_fraction']:.2f}: "
                   f"{'met' if r['target_met'] else 'not met'})")
    n_ref = ref["members"]
    out.append(f"the reference's own line errs on {r['reference_errors']} of its {n_ref} members; the study's final "
               f"line on {r['study_errors_on_reference']}")
    predicts = r["predicts_from"]
    out.append("the study's refits never stay at or below that" if predicts is None else
               f"refits err on at most as many of them from n = {predicts} on ({predicts}/{ref['configs']} = "
               f"{predicts / ref['configs']:.2f} of the reference's configurations)")
    return "\n".join(out)
