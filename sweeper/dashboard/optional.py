"""What the dashboard takes from other subpackages when they are there, imported lazily.

- the stability boundary fit: `sweeper.analysis.boundary.latest_fit(db, study)` and
  `p_stable(payload, {"lr": array, "plasticity": array, ...})`;
- the paper's figures: `sweeper.analysis.figures.fig6(db, study)`, `fig7(db, study)`;
- the early-warning evaluation: `sweeper.warn`'s evaluation function.

Each helper returns either its result or `Missing(reason)`, a sentence to show in place of the view,
so a dashboard over a study without a fit (or an install without these parts) still works.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np


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
    """{"payload": the fit's payload, "summary": {...}} for the study's latest boundary fit."""
    boundary = _module("sweeper.analysis.boundary")
    if boundary is None or not hasattr(boundary, "latest_fit"):
        return Missing(f"no boundary fit yet: run `sweeper boundary {study}` (boundary fitting is not installed)")
    fit = boundary.latest_fit(db, study)
    if fit is None:
        return Missing(f"no boundary fit yet: run `sweeper boundary {study}`")
    payload = getattr(fit, "payload", fit)
    if not isinstance(payload, dict):
        return Missing(f"the latest boundary fit of {study} has no readable payload")
    summary = {"kind": getattr(fit, "kind", None) or payload.get("kind")}
    created = getattr(fit, "created_at", None) or payload.get("created_at")
    if created is not None:
        summary["created_at"] = str(created)
    for key, value in payload.items():
        if isinstance(value, (int, float, str, bool)) and key not in summary:
            summary[key] = value
        elif isinstance(value, dict) and all(isinstance(v, (int, float, str, bool)) for v in value.values()):
            summary.update({f"{key}.{k}": v for k, v in value.items()})
    return {"payload": payload, "summary": summary}


def p_stable_grid(fit: dict, x: np.ndarray, y: np.ndarray, fixed: dict[str, float]) -> np.ndarray | Missing:
    """P(stable) on the grid log10 lr = `x` (columns) x log10 plasticity = `y` (rows), other axes `fixed`."""
    boundary = _module("sweeper.analysis.boundary")
    if boundary is None or not hasattr(boundary, "p_stable"):
        return Missing("boundary fitting is not installed")
    xx, yy = np.meshgrid(x, y)
    points = {"lr": 10.0**xx.ravel(), "plasticity": 10.0**yy.ravel()}
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


WARN_EVALUATORS = ("evaluate_study", "evaluate", "evaluation")


def warning_evaluation(db, study: str) -> Any:
    """The early-warning evaluation of `sweeper.warn` for the study (a dict or a figure), or Missing."""
    warn = _module("sweeper.warn")
    function = next((getattr(warn, n) for n in WARN_EVALUATORS if warn is not None and hasattr(warn, n)), None)
    if function is None:
        return Missing("early-warning evaluation is not available (sweeper.warn provides no evaluation function)")
    try:
        return function(db, study)
    except Exception as e:
        return Missing(f"early-warning evaluation failed for {study}: {type(e).__name__}: {e}")
