"""`sweeper report STUDY -o report.html`: one HTML file that opens offline (plotly.js inlined, no CDN).

Sections: progress (stable members counted by their memory judgement); the stability frontier in the
study's plane, coloured by exploded / stable without memory / stable and remembering, with the
boundary fit and its memory onset (if one exists); the boundary fit's summary, the memory onset's and
the window between them; the early-warning evaluation (if `sweeper.warn` provides one);
Table 1 (one row per configuration: the model's hyperparameters, seeds, explosion rate, eval memory
accuracy); Fig. 6 (gradient-ratio traces, stable vs exploding) and Fig. 7 (from
`sweeper.analysis.figures` when installed); parameter importance. A study of a fast-weight family is
drawn in its own axes (its plane, e.g. (lr, beta_scale); its gradient signals) as the ephemeral
model's is in (lr, plasticity).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
from pathlib import Path
from typing import Any

from sweeper.dashboard import data, figures, optional, views
from sweeper.dashboard.importance import importance_info
from sweeper.db import study_progress
from sweeper.outcomes import MEMORY_OUTCOMES, STABLE_MEMORY, STABLE_NO_MEMORY, Outcome

TABLE_ROWS = 200
"""Configurations listed in the report's Table 1 (a 10,000-member study may have thousands)."""
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 0 auto; padding: 16px; color: #222; }
table { border-collapse: collapse; font-size: 13px; } th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; }
th { text-align: left; } .note { color: #666; font-size: 13px; } section { margin-bottom: 28px; }
"""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "none" if v > 0 else "-inf"
        return f"{v:.4g}"
    return str(v)


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Figures:
    """Figures as <div>s sharing the one inlined plotly.js."""

    def __init__(self):
        self.count = 0

    def __call__(self, fig) -> str:
        self.count += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig{self.count}",
                           config={"displaylogo": False})  # fmt: skip


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _missing(reason: str) -> str:
    return f'<p class="note missing">{html.escape(reason)}</p>'


def _rendered(value: Any, figure) -> str:
    """An optional part's result: a figure, a table of a dict's scalars, or the reason it is missing."""
    if isinstance(value, optional.Missing):
        return _missing(value.reason)
    if hasattr(value, "to_plotly_json"):
        return figure(value)
    if isinstance(value, dict):
        scalars = [{"quantity": k, "value": v} for k, v in value.items() if isinstance(v, (int, float, str, bool))]
        parts = [_table(scalars, ["quantity", "value"])] if scalars else []
        parts += [figure(v) for v in value.values() if hasattr(v, "to_plotly_json")]
        return "".join(parts) or _missing("the evaluation returned nothing to show")
    return f"<pre>{html.escape(str(value))}</pre>"


def _by_outcome(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Members by `memory_outcome`: stable ones by their memory judgement; "stable (not judged)" beside
    judged ones only when there are such, plain "stable" in a study that judges none."""
    judged = any(counts.get(label) for label in (STABLE_MEMORY, STABLE_NO_MEMORY))
    rows = []
    for label in MEMORY_OUTCOMES:
        n = counts.get(label, 0)
        if label == Outcome.STABLE.value and judged:
            if not n:
                continue
            label = "stable (not judged)"
        elif label in (STABLE_MEMORY, STABLE_NO_MEMORY) and not judged:
            continue
        rows.append((label.replace("_", " "), n))
    return rows


def build_report(db, study: str, path: str | os.PathLike) -> dict:
    """Write the report for `study` to `path` (replaced only once complete); return what went in it."""
    import plotly.offline

    figure = _Figures()
    progress = study_progress(db, study)[0]
    meta = data.study_meta(db, study)
    parts, included = [], {}

    m = progress["members"]
    summary = [{"quantity": k, "value": v} for k, v in (
        ("status", progress["status"]), ("members", m["total"]), *_by_outcome(progress["memory_outcomes"]),
        ("objective", f"{meta.objective} ({meta.direction})" if meta.objective else "none"),
        ("best eval_mem_acc (stable)", progress["best_eval_mem_acc"]),
    )]  # fmt: skip
    parts.append(_section("Progress", _table(summary, ["quantity", "value"])))

    view = views.frontier_view(db, study)
    plane = f" ({meta.plane[0]}, {meta.plane[1]})"
    parts.append(_section("Stability frontier" + plane, figure(view.figure) + f'<p class="note">{html.escape(view.note)}</p>'))
    included["memory_onset"] = included["window"] = False
    if isinstance(view.fit, optional.Missing):
        fit_html, included["boundary_fit"] = _missing(view.fit.reason), False
    else:
        rows = [{"quantity": k, "value": v} for k, v in view.fit["summary"].items()]
        fit_html, included["boundary_fit"] = _table(rows, ["quantity", "value"]), True
        memory, window = view.fit["memory"], view.fit["window"]
        if isinstance(memory, optional.Missing):
            fit_html += "<h3>Memory onset</h3>" + _missing(memory.reason)
        else:
            rows = [{"quantity": k, "value": v} for k, v in memory["payload"]["summary"].items()]
            fit_html += ("<h3>Memory onset: P(remembers | stable) = 0.5</h3>"
                         + f'<p class="note">{html.escape(memory["headline"])}</p>' + _table(rows, ["quantity", "value"]))
            included["memory_onset"] = True
        if isinstance(window, optional.Missing):
            fit_html += "<h3>Window</h3>" + _missing(window.reason)
        else:
            definition = view.fit["payload"]["window"]["definition"]
            fit_html += (f"<h3>Window</h3><p>{html.escape(window)}</p>"
                         f'<p class="note">{html.escape(definition)}</p>')
            included["window"] = True
    parts.append(_section("Boundary fit", fit_html))

    evaluation = optional.warning_evaluation(db, study)
    included["early_warning"] = not isinstance(evaluation, optional.Missing)
    if isinstance(evaluation, optional.Missing):
        warn_html = _missing(evaluation.reason)
    else:
        warn_html = (_table(evaluation["rows"], ["detector", *optional.EVAL_COLUMNS])
                     + f'<p class="note">{html.escape(evaluation["note"])}</p>')
    parts.append(_section("Early-warning evaluation", warn_html))

    table1 = data.config_table(db, study)
    columns = ["config", *meta.axes, "seeds", "finished", "exploded", "explosion_rate", "eval_mem_acc_mean",
               "eval_mem_acc_sd", "baseline"]  # fmt: skip
    shown = table1[:TABLE_ROWS]
    more = (f" Showing {len(shown)} of {len(table1)} configurations; `sweeper export` writes them all."
            if len(table1) > len(shown) else "")
    parts.append(_section("Table 1: configurations", _table(shown, columns)
                          + f'<p class="note">eval_mem_acc over stable members; clip "none" = no clipping.{more}</p>'))

    fig6 = optional.analysis_figure("fig6", db, study)
    included["fig6_source"] = "sweeper.analysis.figures" if not isinstance(fig6, optional.Missing) else "dashboard overlay"
    if isinstance(fig6, optional.Missing):
        fig6 = figures.overlay_figure(data.overlay_info(db, study))
    ratio = "fast-state / rest" if meta.kind in data.FAMILY_KINDS else "ephemeral / slow"
    parts.append(_section(f"Fig. 6: {ratio} gradient ratio, stable vs exploding", _rendered(fig6, figure)))
    fig7 = optional.analysis_figure("fig7", db, study)
    included["fig7"] = not isinstance(fig7, optional.Missing)
    parts.append(_section("Fig. 7", _rendered(fig7, figure)))

    importance = importance_info(db, study, meta.objective)
    objective = figure(figures.importance_figure(importance, "objective", f"objective: {meta.objective}"))
    parts.append(_section("Parameter importance",
                          objective + figure(figures.importance_figure(importance, "stability", "stability"))))

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    document = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>sweeper report: {html.escape(study)}</title><style>{STYLE}</style>"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>sweeper report: {html.escape(study)}</h1><p class='note'>written {now}; self-contained, works offline</p>"
        + "".join(parts) + "</body></html>"
    )  # fmt: skip
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(document, encoding="utf-8")
    os.replace(tmp, path)
    return {"path": str(path), "bytes": len(document.encode()), "figures": figure.count, **included}
