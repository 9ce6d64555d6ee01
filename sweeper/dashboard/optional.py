"""What the dashboard takes from other subpackages when they are there, imported lazily.

- the stability boundary fit: `sweeper.analysis.boundary.latest_fit(db, study)` and
  `p_stable(payload, {axis: array, ...})`, in any plane of the study's model; the memory onset and
  the window stored with it (`sweeper.analysis.window`);
- the paper's figures: `sweeper.analysis.figures.fig6(db, study)`, `fig7(db, study)`;
- the early-warning evaluation: `sweeper.warn.evaluate.evaluate(db, study, predictor)`.

Each helper returns either its result or `Missing(reason)`, a sentence to show in place of the view,
so a dashboard over a study without a fit (or an install without these parts) still works.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.outcomes import Outcome


@dataclass(frozen=True)
class Missing:
    reason: str


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if e.name and name.startswith(e.name):  # the module itself is absent, not one of its imports
            return None
        raise


def boundary_fit(db, study: str) -> dict | Missing:
    """{"payload": the fit's payload, "summary": {...}, "headline": one line, "memory": the memory-onset
    fit ({"payload", "headline"}) or Missing, "window": the window as one line or Missing} for the
    study's latest boundary fit."""
    boundary = _module("sweeper.analysis.boundary")
    if boundary is None or not hasattr(boundary, "latest_fit"):
        return Missing(f"no boundary fit yet: run `sweeper boundary {study}` (boundary fitting is not installed)")
    fit = boundary.latest_fit(db, study)
    if fit is None:
        need = getattr(boundary, "MIN_PER_CLASS", None)
        return Missing(f"no boundary fit yet: run `sweeper boundary {study}`"
                       + (f" (it needs at least {need} stable and {need} exploded or stopped members, and more "
                          "than one value of each axis of the study's plane)" if need else ""))
    payload = getattr(fit, "payload", fit)
    if not isinstance(payload, dict):
        return Missing(f"the latest boundary fit of {study} has no readable payload")
    summary = {"kind": getattr(fit, "kind", None) or payload.get("kind")}
    created = getattr(fit, "created_at", None) or payload.get("created_at")
    if created is not None:
        summary["created_at"] = str(created)
    for key, value in payload.items():
        if key in ("memory", "window"):
            continue
        if isinstance(value, (int, float, str, bool)) and key not in summary:
            summary[key] = value
        elif isinstance(value, dict) and all(isinstance(v, (int, float, str, bool)) for v in value.values()):
            summary.update({f"{key}.{k}": v for k, v in value.items()})
    return {"payload": payload, "summary": summary, "headline": _headline(payload, summary),
            **_memory(payload, study, summary)}


def _memory(payload: dict, study: str, summary: dict) -> dict:
    """{"memory": the fit's memory onset or Missing, "window": its window as a line of text or Missing}."""
    memory, window = payload.get("memory"), payload.get("window")
    if not isinstance(memory, dict) or not isinstance(window, dict):
        missing = Missing(f"the stored fit has no memory onset: run `sweeper boundary {study}` again")
        return {"memory": missing, "window": missing}
    if "skipped" in memory:
        return {"memory": Missing(f"no memory onset: {memory['skipped']}"), "window": Missing("no window without a "
                                                                                            "memory onset")}
    from sweeper.analysis.window import headline

    part = {"payload": memory, "headline": _headline(memory, {"kind": summary.get("kind")})}
    return {"memory": part, "window": Missing(window["skipped"]) if "skipped" in window else headline(window)}


def _headline(payload: dict, summary: dict) -> str:
    """One readable line of the fit's headline numbers (`payload["summary"]`), or "" without them."""
    h = payload.get("summary")
    if not isinstance(h, dict) or "slope" not in h:
        return ""

    def interval(key):
        lo, hi = h.get(f"{key}_ci95_low"), h.get(f"{key}_ci95_high")
        return f" [{lo:.3g}, {hi:.3g}]" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else ""

    from sweeper.analysis.boundary import axis_label, payload_plane, product_name

    plane = payload_plane(payload)
    parts = [f"{summary.get('kind') or 'fit'} on {h.get('members', '?')} members",
             f"{axis_label(plane[1])} = {h['slope']:.3g} {axis_label(plane[0])} + {h.get('intercept', float('nan')):.3g}",
             f"slope{interval('slope')}, intercept{interval('intercept')} (95%)"]
    if "cv_accuracy" in h:
        parts.append(f"CV accuracy {h['cv_accuracy']:.3f}" + (f", AUROC {h['cv_auroc']:.3f}" if "cv_auroc" in h else ""))
    if "consistent_with_slope_minus_1" in h:
        verdict = "consistent" if h["consistent_with_slope_minus_1"] else "not consistent"
        parts.append(f"slope {verdict} with -1 ({product_name(plane)})")
    if summary.get("created_at"):
        parts.append(f"fitted {str(summary['created_at'])[:19]}")
    return "; ".join(parts)


def p_stable_grid(fit: dict, plane: tuple[str, str], x: np.ndarray, y: np.ndarray,
                  fixed: dict[str, float]) -> np.ndarray | Missing:
    """P(stable) on the grid of the plane's scaled coordinates `x` (columns) x `y` (rows) (log10, or
    log10(1 - lambda)), the other axes `fixed` (natural units)."""
    boundary = _module("sweeper.analysis.boundary")
    if boundary is None or not hasattr(boundary, "p_stable"):
        return Missing("boundary fitting is not installed")
    xx, yy = np.meshgrid(x, y)
    points = {plane[0]: boundary.from_coord(plane[0], xx.ravel()), plane[1]: boundary.from_coord(plane[1], yy.ravel())}
    points.update({axis: np.full(xx.size, value, dtype=np.float64) for axis, value in fixed.items()})
    try:
        p = np.asarray(boundary.p_stable(fit["payload"], points), dtype=np.float64)
    except Exception as e:  # a fit that cannot score this slice is shown as a reason, not a crash
        return Missing(f"the boundary fit cannot be evaluated here: {type(e).__name__}: {e}")
    return p.reshape(xx.shape)


def analysis_figure(name: str, db, study: str) -> Any:
    """`sweeper.analysis.figures.<name>(db, study)`, a Plotly figure, or Missing."""
    figures = _module("sweeper.analysis.figures")
    if figures is None or not hasattr(figures, name):
        return Missing(f"{name} is not available (sweeper.analysis.figures is not installed)")
    try:
        return getattr(figures, name)(db, study)
    except Exception as e:  # e.g. a study without what that figure needs
        return Missing(f"{name} could not be drawn for {study}: {type(e).__name__}: {e}")


EVAL_COLUMNS = ("auroc", "recall", "precision", "false_stop_rate", "median_lead_time", "compute_saved",
                "alarmed", "true_alarms", "false_alarms")  # fmt: skip


def warning_evaluation(db, study: str, predictor: str = "ratio_rule") -> dict | Missing:
    """`sweeper.warn.evaluate.evaluate` of `predictor` (default: the paper's gradient-ratio rule) on the study.

    Returns {"rows": one dict per detector (the predictor, then each baseline) with EVAL_COLUMNS,
    "note": what was evaluated}, or Missing with the evaluation's own reason (e.g. no explosions).
    """
    evaluate_module = _module("sweeper.warn.evaluate")
    predictors = _module("sweeper.warn.predictors")
    if evaluate_module is None or predictors is None or not hasattr(evaluate_module, "evaluate"):
        return Missing("early-warning evaluation is not available (sweeper.warn provides no evaluation function)")
    try:
        report = evaluate_module.evaluate(db, study, predictors.load_predictor(db, predictor))
    except Exception as e:  # EvalError (no held-out or no exploded members), PredictorError, ...
        return Missing(f"early-warning evaluation of {study} not possible: {e}")
    results = report["results"]
    rows = [{"detector": f"predictor: {predictor}", **{k: results["predictor"].get(k) for k in EVAL_COLUMNS}}]
    rows += [{"detector": f"baseline: {name}", **{k: b.get(k) for k in EVAL_COLUMNS}} for name, b in results["baselines"].items()]
    members = report.get("members", {})
    counts = ", ".join(f"{members.get(o.value)} {o.value}" for o in (Outcome.EXPLODED, Outcome.STABLE))
    note = (f"{members.get('evaluated')} members replayed ({counts}) from batch {report.get('min_step')}; "
            f"targets {report.get('targets')}; see `sweeper warn eval`.")
    return {"rows": rows, "note": note}
