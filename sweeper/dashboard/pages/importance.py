"""Hyperparameter importance (Optuna's evaluators) for the objective and for stability."""

from __future__ import annotations

from dash import dcc, html

from sweeper.dashboard import data, figures
from sweeper.dashboard.importance import importance_info

PATH = "/importance"
TITLE = "Importance"
NEEDS_STUDY = True


def layout(ctx, query):
    study = query["study"]
    meta = data.study_meta(ctx.db, study)
    info = importance_info(ctx.db, study, meta.objective)
    objective = f"objective: {meta.objective or 'none'} (stable members)"
    return html.Div([
        html.H2(f"Parameter importance: {study}"),
        html.P("Optuna's default importance evaluator over the study's members (one in-memory Optuna trial each); "
               "stability is 1 for stable, 0 for exploded or stopped early.", className="note"),
        dcc.Graph(id="importance-objective", figure=figures.importance_figure(info, "objective", objective)),
        dcc.Graph(id="importance-stability", figure=figures.importance_figure(info, "stability", "stability")),
    ])  # fmt: skip


def register(app, ctx):
    pass
