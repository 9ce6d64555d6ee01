"""Fig. 6 style: a metric over batches, stable vs exploding (default: the model's gradient-norm ratio,
ephemeral / slow, or a family's fast-state / rest)."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html

from sweeper.dashboard import data, figures

PATH = "/overlay"
TITLE = "Ratio overlay"
NEEDS_STUDY = True


def layout(ctx, query):
    study = query["study"]
    kind = data.study_meta(ctx.db, study).kind
    return html.Div([
        dcc.Store(id="study-name", data=study),
        html.H2(f"Stable vs exploding members: {study}"),
        html.Label(["metric ", dcc.Dropdown(id="overlay-metric", options=list(data.metric_names(kind)),
                                            value=data.default_metric(kind),
                                            clearable=False, style={"width": "220px"})]),
        html.Label(["members per outcome ", dcc.Input(id="overlay-n", type="number", min=1, max=200, value=20)]),
        dcc.Graph(id="overlay-graph", figure=figures.overlay_figure(data.overlay_info(ctx.db, study))),
    ])  # fmt: skip


def register(app, ctx):
    @app.callback(
        Output("overlay-graph", "figure"), Input("overlay-metric", "value"), Input("overlay-n", "value"),
        State("study-name", "data"), prevent_initial_call=True,
    )  # fmt: skip
    def _update(metric, n, study):
        n = max(1, min(int(n or 20), 200))
        return figures.overlay_figure(data.overlay_info(ctx.db, study, metric=metric, per_outcome=n))
