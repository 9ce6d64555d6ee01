"""One member: its model's hyperparameters, result, and its traces with the early-warning alarm marked."""

from __future__ import annotations

import math

from dash import dcc, html

from sweeper.dashboard import data, figures

PATH = "/member"
TITLE = "Member"
NEEDS_STUDY = False
SHOWN = ("study", "trial", "pack_index", "config_index", "model_kind", "seed", "outcome", "steps_done", "explode_step",
         "stop_step", "final_loss", "mem_acc", "baseline", "eval_mem_acc", "memory", "memory_threshold",
         "eval_mem_positions", "eval_mem_acc_frozen", "error")  # fmt: skip
"""The rows of a member's table after its model's own axes (`member["axes"]`)."""


def _text(v, key: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isinf(v) and key == "clip":
            return "no clip"
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def panel(ctx, member_id: int):
    try:
        info = data.member_info(ctx.db, member_id)
    except LookupError as e:
        return html.P(str(e))
    m = info["member"]
    keys = [*m["axes"], *SHOWN]
    rows = [html.Tr([html.Th(k), html.Td(_text(m[k], k))]) for k in keys if m.get(k) is not None]
    alarms = info["warnings"]
    alarm_text = (
        f"{len(alarms)} early-warning alarm(s); first at batch {alarms[0]['step']} "
        f"(score {alarms[0]['score']:.3g}, {alarms[0]['predictor']}, {alarms[0]['action']})"
        if alarms else "no early-warning alarm recorded"
    )
    return html.Div([
        html.H3([f"Member {m['id']} ", html.A("(own page)", href=f"/member?id={m['id']}")]),
        html.P(f"{alarm_text}; {info['metric_rows']} metric rows", id="member-alarms"),
        html.Div([
            html.Table(rows, className="sw-table", style={"marginRight": "16px"}),
            dcc.Graph(id="member-graph", figure=figures.member_figure(info), style={"flex": "1"},
                      config={"displaylogo": False}),
        ], style={"display": "flex", "alignItems": "flex-start"}),
    ], id="member-detail")  # fmt: skip


def layout(ctx, query):
    try:
        member_id = int(query.get("id", ""))
    except ValueError:
        return html.P("which member? /member?id=N")
    return panel(ctx, member_id)


def register(app, ctx):
    pass
