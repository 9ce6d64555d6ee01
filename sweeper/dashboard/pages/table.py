"""The members as a table: filters (sweeper's filter grammar), server-side sort and paging, CSV download."""

from __future__ import annotations

import csv
import io

from dash import Input, Output, State, dash_table, dcc, html

from sweeper.db import member_rows, parse_filter
from sweeper.db.queries import MEMBER_COLUMNS
from sweeper.jsonio import to_strict

PATH = "/table"
TITLE = "Trial table"
NEEDS_STUDY = True
PAGE_SIZE = 50


def _filters(text: str | None) -> list:
    """`outcome=exploded; lr>1e-3` -> parsed filters (ANDed). Raises ValueError with the grammar's message."""
    return [parse_filter(part) for part in (text or "").replace(" and ", ";").split(";") if part.strip()]


def _rows(ctx, study, text, sort_by):
    sort = sort_by[0]["column_id"] if sort_by else None
    descending = bool(sort_by) and sort_by[0]["direction"] == "desc"
    return member_rows(ctx.db, study, where=_filters(text), sort=sort, descending=descending)


def layout(ctx, query):
    study = query["study"]
    return html.Div([
        dcc.Store(id="study-name", data=study),
        html.H2(f"Members: {study}"),
        html.Div([
            dcc.Input(id="table-filter", type="text", debounce=True, placeholder="e.g. outcome=exploded; lr>1e-3",
                      style={"width": "360px"}),
            html.Button("Download CSV", id="table-download-button", style={"marginLeft": "8px"}),
            dcc.Download(id="table-download"),
        ]),
        html.P("Filters: COLUMN OP VALUE (OP one of = != < <= > >=), separated by ';'. Columns: "
               + ", ".join(MEMBER_COLUMNS), className="note"),
        html.Div(id="table-message", className="note"),
        dash_table.DataTable(
            id="members-table", columns=[{"name": c, "id": c} for c in MEMBER_COLUMNS], page_current=0,
            page_size=PAGE_SIZE, page_action="custom", sort_action="custom", sort_mode="single", sort_by=[],
            style_table={"overflowX": "auto"}, style_cell={"fontSize": "12px", "padding": "2px 6px"},
        ),
    ])  # fmt: skip


def register(app, ctx):
    @app.callback(
        Output("members-table", "data"), Output("members-table", "page_count"), Output("table-message", "children"),
        Input("members-table", "page_current"), Input("members-table", "sort_by"), Input("table-filter", "value"),
        State("study-name", "data"),
    )  # fmt: skip
    def _page(page, sort_by, text, study):
        try:
            rows = _rows(ctx, study, text, sort_by)
        except ValueError as e:
            return [], 0, f"filter refused: {e}"
        page = page or 0
        shown = rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        return to_strict(shown, nonfinite=None), max(1, -(-len(rows) // PAGE_SIZE)), f"{len(rows)} members"

    @app.callback(
        Output("table-download", "data"), Input("table-download-button", "n_clicks"),
        State("table-filter", "value"), State("members-table", "sort_by"), State("study-name", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    def _download(_clicks, text, sort_by, study):
        rows = _rows(ctx, study, text, sort_by)  # a refused filter raises: nothing is downloaded
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(MEMBER_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)  # NaN and infinities print as nan, inf, -inf (as `sweeper export`)
        return {"content": buffer.getvalue(), "filename": f"{study}_members.csv"}
