"""The stability frontier: members in (log10 lr, log10 plasticity), boundary fit, cells; a click shows a member."""

from __future__ import annotations

import math

from dash import Input, Output, State, callback_context, dcc, html, no_update
from dash.exceptions import PreventUpdate

from sweeper.dashboard import data, figures, optional

PATH = "/frontier"
TITLE = "Frontier"
NEEDS_STUDY = True


def _value_text(v: float) -> str:
    return format(v, ".17g")  # 'inf' for no clipping: dropdown values must be JSON, and inf is not


def _slices(values: dict) -> dict:
    return {axis: (None if v in (None, "all") else float(v)) for axis, v in values.items()}


def build(ctx, study: str, slices: dict, fingerprint: list | None = None) -> tuple:
    """(figure, boundary summary component, whether the study is still running, fingerprint)."""
    fingerprint, view = ctx.frontier_cache.get(study, slices, fingerprint)
    if isinstance(view.fit, optional.Missing):
        summary = html.P(view.fit.reason, id="boundary-missing", className="note")
    else:
        details = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                            for k, v in view.fit["summary"].items())
        summary = html.Div([
            html.B("boundary fit: "),
            view.fit.get("headline") or details,
            html.Details([html.Summary("every stored number"), html.Div(details, className="note")]),
            html.Div(view.note, className="note"),
        ], id="boundary-summary")  # fmt: skip
    return view.figure, summary, view.running, fingerprint


def layout(ctx, query):
    study = query["study"]
    meta = data.study_meta(ctx.db, study)
    controls = []
    for axis in data.SLICE_AXES:
        options = [{"label": "all", "value": "all"}] + [
            {"label": ("none" if axis == "clip" and math.isinf(v) else f"{v:g}"), "value": _value_text(v)}
            for v in meta.slices[axis]
        ]
        controls.append(html.Label([f"{axis} ", dcc.Dropdown(id=f"slice-{axis}", options=options, value="all",
                                                              clearable=False, style={"width": "140px"})],
                                   style={"display": "inline-block", "marginRight": "16px"}))  # fmt: skip
    figure, summary, running, fingerprint = build(ctx, study, {})
    return html.Div([
        dcc.Store(id="study-name", data=study),
        dcc.Store(id="frontier-fingerprint", data=fingerprint),
        html.H2(f"Stability frontier: {study}"),
        html.Div(controls),
        html.Div(summary, id="boundary-box"),
        dcc.Graph(id="frontier-graph", figure=figure, config={"displaylogo": False}),
        html.P("Click a point to see that member's traces below. Points of one configuration's seeds are "
               f"jittered by up to {figures.JITTER_DECADES / 2:g} decade so none hides another.", className="note"),
        html.Div(id="member-box"),
        dcc.Interval(id="frontier-interval", interval=ctx.refresh_ms, disabled=not running),
    ])  # fmt: skip


def register(app, ctx):
    @app.callback(
        Output("frontier-graph", "figure"), Output("boundary-box", "children"), Output("frontier-interval", "disabled"),
        Output("frontier-fingerprint", "data"),
        Input("slice-gamma", "value"), Input("slice-ratio", "value"), Input("slice-clip", "value"),
        Input("frontier-interval", "n_intervals"), State("study-name", "data"), State("frontier-fingerprint", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    def _update(gamma, ratio, clip, _n, study, shown):
        # A live study's page polls every refresh period; it redraws only when the members, their
        # outcomes, the study's status or its boundary fit changed (a 10,000-member figure is 1.0 MB).
        fingerprint = data.frontier_fingerprint(ctx.db, study)
        if callback_context.triggered_id == "frontier-interval" and fingerprint == shown:
            raise PreventUpdate  # HTTP 204: nothing is sent, nothing redrawn
        slices = _slices({"gamma": gamma, "ratio": ratio, "clip": clip})
        figure, summary, running, _ = build(ctx, study, slices, fingerprint)
        return figure, summary, not running, fingerprint

    @app.callback(Output("member-box", "children"), Input("frontier-graph", "clickData"), prevent_initial_call=True)
    def _member(click):
        ids = [i for i in map(_member_id, (click or {}).get("points") or []) if i is not None]
        if not ids:
            return no_update
        from sweeper.dashboard.pages import member

        return member.panel(ctx, ids[0])


def _member_id(point: dict) -> int | None:
    """The member id of a clicked point (its Plotly `id`); the explosion-rate cell under it has none."""
    text = point.get("id")
    return int(text) if isinstance(text, str) and text.isdigit() else None
