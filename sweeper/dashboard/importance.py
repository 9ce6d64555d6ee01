"""Hyperparameter importance for the objective and for stability, by Optuna's importance evaluators.

Optuna's evaluators take a study. The study's own Optuna storage holds only what the sampler was
told (no Optuna study at all for grid studies, and exploded configurations are FAIL trials that the
evaluators skip), so the members themselves are copied into an in-memory Optuna study, one trial per
member: its model's hyperparameters as params (by axis name; log-scaled distributions for lr,
plasticity, eta and beta_scale where they are positive) and two
targets, the objective (stable members with a finite value) and stability (1 stable, 0 exploded or
stopped early, every finished member). Nothing is written to the database.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import sqlalchemy as sa

from sweeper.analysis.boundary import column, study_plane
from sweeper.dashboard.data import _study
from sweeper.db import Database, Member, Outcome
from sweeper.outcomes import FINISHED

LOG_AXES = {"lr", "plasticity", "eta", "beta_scale"}
MIN_TRIALS = 4
"""Fewer finished members than this (or a target that never varies) gives a reason, not a ranking."""


def _distributions(rows: list[tuple], axes: tuple[str, ...]) -> dict[str, Any]:
    """A distribution for every axis that takes more than one finite value across the members."""
    import optuna

    out = {}
    for i, axis in enumerate(axes):
        values = {r[i] for r in rows if r[i] is not None and math.isfinite(r[i])}
        if len(values) < 2:
            continue
        low, high = min(values), max(values)
        out[axis] = optuna.distributions.FloatDistribution(low, high, log=axis in LOG_AXES and low > 0)
    return out


def _importance(rows: list[tuple], values: list[float], distributions: dict, evaluator,
                axes: tuple[str, ...]) -> dict[str, float]:
    import optuna

    study = optuna.create_study(direction="maximize")
    trials = []
    for row, value in zip(rows, values, strict=True):
        params = {axis: row[axes.index(axis)] for axis in distributions}
        if any(not math.isfinite(v) for v in params.values()):
            continue
        trials.append(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    study.add_trials(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings of some evaluators
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def importance_info(db: Database, name: str, objective: str | None, evaluator=None) -> dict:
    """{"objective": {...}, "stability": {...}}, each {"importances": {param: share}} or {"reason": text}.

    `evaluator` is any Optuna importance evaluator (default: Optuna's default, PedAnova in Optuna 5).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with db.read_session() as s:
        study = _study(s, db, name)
        axes = study_plane(s, study.id).axes
        columns = [getattr(Member, column(axis)) for axis in axes]
        target = getattr(Member, objective) if objective and hasattr(Member, objective) else None
        extra = [target] if target is not None else []
        rows = s.execute(
            sa.select(*columns, Member.outcome, *extra).where(Member.study_id == study.id, Member.outcome.in_(FINISHED))
        ).all()
    distributions = _distributions(rows, axes)
    out = {}

    def attempt(key: str, subset: list[tuple], values: list[float]) -> None:
        if not distributions:
            out[key] = {"reason": "no hyperparameter varies across the members"}
        elif len(subset) < MIN_TRIALS:
            out[key] = {"reason": f"{len(subset)} member(s) to learn from; at least {MIN_TRIALS} are needed"}
        elif len(set(values)) < 2:
            out[key] = {"reason": f"every member has the same value ({values[0]:g}): nothing to attribute"}
        else:
            try:
                out[key] = {"importances": _importance(subset, values, distributions, evaluator, axes), "n": len(subset)}
            except Exception as e:  # an evaluator's own limits (e.g. too few distinct values)
                out[key] = {"reason": f"the importance evaluator failed: {type(e).__name__}: {e}"}

    stability = [1.0 if r[len(axes)] == Outcome.STABLE else 0.0 for r in rows]
    attempt("stability", list(rows), stability)
    if target is None:
        out["objective"] = {"reason": f"the study has no objective column ({objective or 'none'})"}
    else:
        kept = [r for r in rows if r[len(axes)] == Outcome.STABLE and r[-1] is not None and math.isfinite(r[-1])]
        attempt("objective", kept, [r[-1] for r in kept])
        out["objective"]["metric"] = objective
    return out
