"""The stability frontier: members in the study's plane (two axes of its model, chosen here; by default
its own: (lr, plasticity), (lr, eta), (lr, beta_scale) or its file's `[search] plane`), coloured by
exploded / stable without memory / stable and remembering; the boundary fit and its memory onset (the
memory window between them), per-cell explosion rates, slices by the model's other axes; a click
shows a member."""

from __future__ import annotations

import math

from dash import ALL, Input, Output, State, callback_context, dcc, html, no_update
from dash.exceptions import PreventUpdate

from sweeper.dashboard import data, figures, optional

PATH = "/frontier"
TITLE = "Frontier"
NEEDS_STUDY = True
SLICE = "frontier-slice"
"""The pattern-matching id type of the slice dropdowns: {"type": SLICE, "axis": axis}."""


def _value_text(v: float) -> str:
    return format(v, ".17g")  # 'inf' for no clipping: dropdown values must be JSON, and inf is not


def _slices(values: dict) -> dict:
    return {axis: (None if v in (None, "all") else float(v)) for axis, v in values.items()}


def build(ctx, study: str, slices: dict, fingerprint: list | None = None, plane: tuple[str, str] | None = None) -> tuple:
    """(figure, boundary summary component, whether the study is still running, fingerprint)."""
    fingerprint, view = ctx.frontier_cache.get(study, slices, fingerprint, plane)
    if isinstance(view.fit, optional.Missing):
        summary = html.P(view.fit.reason, id="boundary-missing", className="note")
    else:
        details = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                            for k, v in view.fit["summary"].items())
        memory, window = view.fit["memory"], view.fit["window"]
        summary = html.Div([
            html.B("boundary fit: "),
            view.fit.get("headline") or details,
            html.Div([html.B("memory onset: "), memory.reason if isinstance(memory, optional.Missing)
                      else memory["headline"]], id="memory-summary"),
            html.Div([html.B("window: "), window.reason if isinstance(window, optional.Missing) else window],
                     id="window-summary"),
            html.Details([html.Summary("every stored number"), html.Div(details, className="note")]),
            html.Div(view.note, className="note"),
        ], id="boundary-summary")  # fmt: skip
    return view.figure, summary, view.running, fingerprint


def _axis_options(meta) -> list[dict]:
    """The axes the plane can be made of: those that vary, and the study's own plane's."""
    axes = [a for a in meta.axes if a in meta.varying or a in meta.plane]
    return [{"label": a, "value": a} for a in (axes if len(axes) >= 2 else meta.axes)]


def layout(ctx, query):
    study = query["study"]
    meta = data.study_meta(ctx.db, study)
    style = {"display": "inline-block", "marginRight": "16px"}
    x, y = meta.plane
    picker = [
        html.Label(["x ", dcc.Dropdown(id="frontier-x", options=_axis_options(meta), value=x, clearable=False,
                                       style={"width": "140px"})], style=style),
        html.Label(["y ", dcc.Dropdown(id="frontier-y", options=_axis_options(meta), value=y, clearable=False,
                                       style={"width": "140px"})], style=style),
    ]  # fmt: skip
    controls = []
    for axis in meta.varying:  # every varying axis; those on the plotted plane are disabled
        options = [{"label": "all", "value": "all"}] + [
            {"label": ("none" if axis == "clip" and math.isinf(v) else f"{v:g}"), "value": _value_text(v)}
            for v in meta.slices[axis]
        ]
        controls.append(html.Label([f"{axis} ", dcc.Dropdown(id={"type": SLICE, "axis": axis}, options=options,
                                                              value="all", clearable=False, disabled=axis in meta.plane,
                                                              style={"width": "140px"})],
                                   style=style))  # fmt: skip
    figure, summary, running, fingerprint = build(ctx, study, {})
    return html.Div([
        dcc.Store(id="study-name", data=study),
        dcc.Store(id="frontier-fingerprint", data=fingerprint),
        dcc.Store(id="frontier-default-plane", data=list(meta.plane)),
        html.H2(f"Stability frontier: {study}"),
        html.Div([html.Span("plane: ", className="note"), *picker,
                  html.Span("slices: " if controls else "", className="note"), *controls]),
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
        Output("frontier-fingerprint", "data"), Output({"type": SLICE, "axis": ALL}, "disabled"),
        Input("frontier-x", "value"), Input("frontier-y", "value"), Input({"type": SLICE, "axis": ALL}, "value"),
        Input("frontier-interval", "n_intervals"), State({"type": SLICE, "axis": ALL}, "id"),
        State("study-name", "data"), State("frontier-fingerprint", "data"), State("frontier-default-plane", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    def _update(x, y, values, _n, ids, study, shown, default):
        # A live study's page polls every refresh period; it redraws only when the members, their
        # outcomes, the study's status or its boundary fit changed (a 10,000-member figure is 1.0 MB).
        fingerprint = data.frontier_fingerprint(ctx.db, study)
        if callback_context.triggered_id == "frontier-interval" and fingerprint == shown:
            raise PreventUpdate  # HTTP 204: nothing is sent, nothing redrawn
        disabled = [i["axis"] in (x, y) for i in ids]
        if x == y:
            message = figures.empty_figure(f"x and y are both {x}: pick two different axes")
            return message, no_update, no_update, fingerprint, disabled
        plane = None if [x, y] == list(default or []) else (x, y)
        slices = _slices({i["axis"]: v for i, v in zip(ids, values) if i["axis"] not in (x, y)})
        figure, summary, running, _ = build(ctx, study, slices, fingerprint, plane)
        return figure, summary, not running, fingerprint, disabled

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
