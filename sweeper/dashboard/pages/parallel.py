"""Parallel coordinates over the members' hyperparameters (their model's axes) and objective, coloured by outcome."""

from __future__ import annotations

from dash import dcc, html

from sweeper.dashboard import data, figures
from sweeper.db import member_rows

PATH = "/parallel"
TITLE = "Parallel coordinates"
NEEDS_STUDY = True


def layout(ctx, query):
    study = query["study"]
    meta = data.study_meta(ctx.db, study)
    rows = member_rows(ctx.db, study)
    return html.Div([
        html.H2(f"Parallel coordinates: {study}"),
        dcc.Graph(id="parallel-graph", figure=figures.parallel_figure(rows, meta.objective, meta.axes)),
    ])  # fmt: skip


def register(app, ctx):
    pass
