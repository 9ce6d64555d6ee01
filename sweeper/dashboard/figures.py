"""Plotly figures from the dicts of `sweeper.dashboard.data` (no database access here).

Non-finite values become None (JSON null) before they reach a figure, so every figure's JSON is
strict; an infinite clip threshold is shown as "none".
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sweeper.jsonio import to_strict
from sweeper.outcomes import Outcome

OUTCOME_COLORS = {
    Outcome.STABLE.value: "#2ca02c",
    Outcome.EXPLODED.value: "#d62728",
    Outcome.STOPPED_EARLY.value: "#ff7f0e",
    Outcome.FAILED.value: "#7f7f7f",
    Outcome.RUNNING.value: "#1f77b4",
}
WEBGL_ABOVE = 2000
"""Above this many points the frontier is drawn with WebGL (Scattergl) rather than SVG."""
JITTER_DECADES = 0.03
"""Seeds of one configuration share a point; each is moved by up to +-half this (log10 units)."""


HOVER_COLUMNS = ("id", "lr", "plasticity", "ratio", "gamma", "clip", "seed", "steps_done", "explode_step",
                 "final_loss", "eval_mem_acc", "explode_onset")
"""A frontier point's customdata, in this order (its hover template indexes it)."""
WHOLE_COLUMNS = ("id", "seed", "steps_done", "explode_step", "explode_onset")
"""The whole numbers among them: shown exactly, never rounded."""


def _nulls(values) -> np.ndarray:
    """Floats as a numpy array: Plotly's JSON encoder writes NaN and +-inf as null (strict JSON), and
    validating an array is far cheaper than validating a list of 10,000 numbers."""
    return np.asarray(values, dtype=np.float64)


def _round(values: np.ndarray, digits: int) -> np.ndarray:
    """`values` rounded to `digits` significant digits (non-finite values kept)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.isfinite(values) & (values != 0), 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(values)))), 1.0)
        return np.where(np.isfinite(values), np.round(values * scale) / scale, values)


def _clip_text(clip: float) -> str:
    return "none" if clip is None or math.isinf(clip) else f"{clip:g}"


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=300, template="plotly_white")
    return fig


# ---------------------------------------------------------------------------------------------------
# Stability frontier


def frontier_figure(info: dict, p_stable: np.ndarray | None = None, grid: tuple | None = None, title: str = "") -> go.Figure:
    """Members as points (one trace per outcome), per-cell explosion rate beneath, P(stable) contours.

    Each point's id is its member id (what a click reports: dcc.Graph drops a binary customdata row
    from click events); its customdata, for the hover text, is its `HOVER_COLUMNS`.
    """
    m = info["members"]
    fig = go.Figure()
    cells = info["cells"]
    if cells["rate"].size:
        xc = (cells["x_edges"][:-1] + cells["x_edges"][1:]) / 2
        yc = (cells["y_edges"][:-1] + cells["y_edges"][1:]) / 2
        fig.add_trace(go.Heatmap(
            x=xc.tolist(), y=yc.tolist(), z=_nulls(cells["rate"]), customdata=_nulls(cells["count"]),
            zmin=0, zmax=1, colorscale=[[0, "rgba(255,255,255,0)"], [1, "rgba(214,39,40,0.45)"]],
            colorbar={"title": {"text": "explosion<br>rate"}, "len": 0.5, "y": 0.25},
            hovertemplate="cell explosion rate %{z:.0%} of %{customdata:.0f} members<extra></extra>",
            name="explosion rate", hoverongaps=False,
        ))  # fmt: skip
    if p_stable is not None and grid is not None:
        fig.add_trace(go.Contour(
            x=grid[0].tolist(), y=grid[1].tolist(), z=_nulls(p_stable), contours={"coloring": "lines",
            "showlabels": True, "start": 0.1, "end": 0.9, "size": 0.2}, line={"width": 1, "dash": "dot"},
            colorscale=[[0, "#555"], [1, "#555"]], showscale=False, name="P(stable)",
            hovertemplate="P(stable) %{z:.2f}<extra></extra>",
        ))  # fmt: skip
        fig.add_trace(go.Contour(
            x=grid[0].tolist(), y=grid[1].tolist(), z=_nulls(p_stable),
            contours={"coloring": "lines", "start": 0.5, "end": 0.5, "size": 1}, line={"width": 3},
            colorscale=[[0, "black"], [1, "black"]], showscale=False, name="boundary (P = 0.5)", showlegend=True,
            hoverinfo="skip",
        ))  # fmt: skip

    n = len(m["id"])
    scatter = go.Scattergl if n > WEBGL_ABOVE else go.Scatter
    x = np.log10(m["lr"]) + JITTER_DECADES * (((m["seed"] * 0.6180339887) % 1.0) - 0.5)
    y = np.log10(m["plasticity"]) + JITTER_DECADES * (((m["seed"] * 0.7548776662) % 1.0) - 0.5)
    custom = np.column_stack([m[c] for c in HOVER_COLUMNS]) if n else np.zeros((0, len(HOVER_COLUMNS)))
    real = [i for i, c in enumerate(HOVER_COLUMNS) if c not in WHOLE_COLUMNS]
    custom[:, real] = _round(custom[:, real], 5)  # what hover shows of the reals; whole numbers stay exact
    if n and max(np.abs(m[c]).max() for c in ("id", "seed", "steps_done")) < 2**24:  # explode_step <= steps_done
        # float32 holds these whole numbers exactly and halves the binary arrays Plotly sends (a
        # 10,000-member figure: 1.75 -> 0.98 MB); its 7 significant digits are more than hover shows,
        # and far finer than a pixel on the axes.
        custom, x, y = custom.astype(np.float32), x.astype(np.float32), y.astype(np.float32)
    hover = (
        "<b>member %{customdata[0]}</b> (%{meta})<br>lr %{customdata[1]:.3g}, plasticity %{customdata[2]:.3g}<br>"
        "ratio %{customdata[3]:.3g}, gamma %{customdata[4]:.3g}, clip %{customdata[5]:.3g}, seed %{customdata[6]}<br>"
        "steps %{customdata[7]}, exploded at %{customdata[8]} (onset %{customdata[11]})<br>final loss %{customdata[9]:.4g}, "
        "eval mem acc %{customdata[10]:.3f}<extra></extra>"
    )
    for outcome, color in OUTCOME_COLORS.items():
        keep = m["outcome"] == outcome
        if not keep.any():
            continue
        fig.add_trace(scatter(
            x=x[keep], y=y[keep], mode="markers", name=f"{outcome} ({int(keep.sum())})",
            marker={"color": color, "size": 9, "line": {"width": 0.5, "color": "white"}} if n <= WEBGL_ABOVE
            else {"color": color, "size": 5},
            customdata=custom[keep], hovertemplate=hover, meta=outcome, ids=m["id"][keep].astype(str),
        ))  # fmt: skip
    fig.update_layout(
        title=title, template="plotly_white", height=560, clickmode="event", hovermode="closest",
        xaxis_title="log10 base learning rate", yaxis_title="log10 plasticity",
        legend={"orientation": "h", "y": -0.15}, uirevision="frontier",
    )
    return fig


# ---------------------------------------------------------------------------------------------------
# One member


def member_figure(info: dict) -> go.Figure:
    """Loss; accuracy and memory accuracy with the no-memory baseline; gradient norms; their ratio."""
    m, mm = info["metrics"], info["member"]
    step = m["step"].tolist()
    fig = make_subplots(
        rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
        subplot_titles=("loss", "accuracy / memory accuracy", "gradient norms", "ephemeral / slow gradient ratio"),
    )  # fmt: skip
    line = {"width": 1.5}
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["loss"]), name="loss", line=line), 1, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["acc"]), name="acc", line=line), 2, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["mem_acc"]), name="mem_acc", line=line), 2, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["baseline"]), name="baseline (no memory)",
                             line={"dash": "dash", "color": "grey"}), 2, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["grad_eph"]), name="grad_eph", line=line), 3, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["grad_slow"]), name="grad_slow", line=line), 3, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["grad_ratio"]), name="grad_ratio", line=line), 4, 1)
    fig.update_yaxes(type="log", row=3, col=1)
    fig.update_yaxes(type="log", row=4, col=1)
    for w in info["warnings"]:
        fig.add_vline(x=w["step"], line={"color": "#ff7f0e", "width": 2, "dash": "dot"})
    if info["warnings"]:
        first = info["warnings"][0]
        fig.add_annotation(x=first["step"], y=1, yref="paper", text=f"alarm ({first['action']}) step {first['step']}",
                           showarrow=False, font={"color": "#ff7f0e"}, yanchor="bottom")
    marks = (("explode_onset", "#d62728", "onset", "dash"), ("explode_step", "#d62728", "exploded", "solid"),
             ("stop_step", "#ff7f0e", "stopped", "solid"))
    for key, color, text, dash in marks:
        if mm.get(key) is not None:
            fig.add_vline(x=mm[key], line={"color": color, "width": 2, "dash": dash})
            fig.add_annotation(x=mm[key], y=0.5, yref="paper", text=f"{text} @ {mm[key]}", showarrow=False,
                               font={"color": color}, textangle=-90, xshift=-8)
    fig.update_layout(
        template="plotly_white", height=820, hovermode="x unified",
        title=f"member {mm['id']}: lr {mm['lr']:.3g}, plasticity {mm['plasticity']:.3g}, ratio {mm['ratio']:.3g}, "
        f"gamma {mm['gamma']:.3g}, clip {_clip_text(mm['clip'])}, seed {mm['seed']} ({mm['outcome']})",
    )
    fig.update_xaxes(title_text="batch", row=4, col=1)
    return fig


# ---------------------------------------------------------------------------------------------------
# Overlay, importance, parallel coordinates


def overlay_figure(info: dict) -> go.Figure:
    """Fig. 6 style: the metric over batches, stable members green, exploded ones red (each to its explosion)."""
    fig = go.Figure()
    for outcome, traces in info["traces"].items():
        color = OUTCOME_COLORS[outcome]
        for i, t in enumerate(traces):
            fig.add_trace(go.Scatter(
                x=t["step"].tolist(), y=_nulls(t["value"]), mode="lines", line={"color": color, "width": 1},
                opacity=0.6, name=f"{outcome} ({info['counts'][outcome]})", legendgroup=outcome, showlegend=i == 0,
                hovertemplate=f"member {t['id']}<br>batch %{{x}}<br>{info['metric']} %{{y:.3g}}<extra>{outcome}</extra>",
            ))  # fmt: skip
    shown = {k: len(v) for k, v in info["traces"].items()}
    fig.update_layout(
        template="plotly_white", height=480, yaxis_type="log", xaxis_title="batch", yaxis_title=info["metric"],
        title=f"{info['metric']}: stable vs exploding members (showing " + ", ".join(
            f"{shown.get(o.value, 0)} of {info['counts'].get(o.value, 0)} {o.value}" for o in (Outcome.STABLE, Outcome.EXPLODED)
        ) + ")",
    )
    return fig


def importance_figure(info: dict, key: str, title: str) -> go.Figure:
    part = info[key]
    if "importances" not in part:
        return empty_figure(f"{title}: {part['reason']}")
    names = list(part["importances"])[::-1]
    values = [part["importances"][n] for n in names]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color="#1f77b4"))
    fig.update_layout(template="plotly_white", height=320, title=f"{title} ({part['n']} members)", xaxis_title="importance")
    return fig


def parallel_figure(rows: list[dict], objective: str | None) -> go.Figure:
    """Parallel coordinates over the hyperparameters (lr and plasticity in log10) and the objective."""
    if not rows:
        return empty_figure("no members yet")
    codes = {o: i for i, o in enumerate(OUTCOME_COLORS)}
    dims = []
    for name, label, transform in (
        ("lr", "log10 lr", math.log10), ("plasticity", "log10 plasticity", math.log10),
        ("ratio", "ratio", float), ("gamma", "gamma", float), ("clip", "clip (none = top)", float),
    ):  # fmt: skip
        values = [r[name] for r in rows]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if name == "clip" and len(finite) < len(values):  # no clipping drawn above the largest threshold
            top = (max(finite) * 2) if finite else 1.0
            values = [top if v is not None and math.isinf(v) else v for v in values]
        values = [transform(v) if v is not None and v > 0 else None for v in values]
        dims.append({"label": label, "values": to_strict(values, nonfinite=None)})
    if objective and objective in rows[0]:
        dims.append({"label": objective, "values": to_strict([r[objective] for r in rows], nonfinite=None)})
    color = [codes.get(r["outcome"], 0) for r in rows]
    scale = []
    for i, c in enumerate(OUTCOME_COLORS.values()):
        scale += [[i / len(codes), c], [(i + 1) / len(codes), c]]
    fig = go.Figure(go.Parcoords(
        line={"color": color, "colorscale": scale, "cmin": -0.5, "cmax": len(codes) - 0.5}, dimensions=dims,
    ))  # fmt: skip
    fig.update_layout(
        height=480, template="plotly_white",
        title="parallel coordinates (colour: "
        + ", ".join(f"{o} {c}" for o, c in zip(OUTCOME_COLORS, ["green", "red", "orange", "grey", "blue"], strict=True)) + ")",
    )  # fmt: skip
    return fig
