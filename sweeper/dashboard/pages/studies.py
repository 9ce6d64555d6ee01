"""The studies list: progress of every study, refreshed while any of them runs."""

from __future__ import annotations

from urllib.parse import quote

from dash import Input, Output, dcc, html

from sweeper.dashboard.figures import FRONTIER_COLORS
from sweeper.db import study_progress

PATH = "/"
TITLE = "Studies"
NEEDS_STUDY = False
OUTCOMES = tuple(FRONTIER_COLORS)
"""The `memory_outcome` values (stable members by their memory judgement; "stable" alone: without
one), in the order of the columns and the bar, coloured as on the frontier."""
HEADERS = {"stable": "stable (not judged)"}


def layout(ctx, query):
    return html.Div([
        html.H2("Studies"),
        html.Div(id="studies-table", children=studies_table(ctx)),
        dcc.Interval(id="studies-interval", interval=ctx.refresh_ms),
    ])  # fmt: skip


def _bar(members: dict, by: dict) -> html.Div:
    total = max(members.get("total", 0), 1)
    return html.Div(
        [html.Div(style={"width": f"{100 * by.get(o, 0) / total:.2f}%", "background": FRONTIER_COLORS[o], "height": "12px"},
                  title=f"{HEADERS.get(o, o)}: {by.get(o, 0)}") for o in OUTCOMES],
        style={"display": "flex", "width": "220px", "background": "#eee"},
    )  # fmt: skip


def studies_table(ctx):
    rows = study_progress(ctx.db)
    if not rows:
        return html.P("The database has no studies yet: run `sweeper submit STUDY.toml`.")
    head = ["study", "status", "trials done / planned", "members", *(HEADERS.get(o, o) for o in OUTCOMES), "",
            "best eval_mem_acc", "views"]
    body = []
    for r in rows:
        t, m, by = r["trials"], r["members"], r["memory_outcomes"]
        done = t["COMPLETE"] + t["FAILED"] + t["PRUNED"]
        name = quote(r["name"])
        best = r["best_eval_mem_acc"]
        body.append(html.Tr([
            html.Td(html.A(r["name"], href=f"/frontier?study={name}")), html.Td(r["status"], className=f"status-{r['status']}"),
            html.Td(f"{done} / {t['planned'] if t['planned'] is not None else '?'} (running {t['RUNNING']})"),
            html.Td(m["total"]), *(html.Td(by[o]) for o in OUTCOMES), html.Td(_bar(m, by)),
            html.Td("" if best is None else f"{best:.3f}"),
            html.Td([html.A(v, href=f"/{v}?study={name}", style={"marginRight": "6px"})
                     for v in ("frontier", "overlay", "importance", "parallel", "table")]),
        ]))  # fmt: skip
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)], className="sw-table")


def register(app, ctx):
    @app.callback(Output("studies-table", "children"), Input("studies-interval", "n_intervals"), prevent_initial_call=True)
    def _refresh(_n):
        return studies_table(ctx)
