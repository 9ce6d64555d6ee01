"""Plotly figures from the dicts of `sweeper.dashboard.data` (no database access here).

Non-finite values become None (JSON null) before they reach a figure, so every figure's JSON is
strict. Each figure shows the study's own model: its plane's axes, its hyperparameters (a fwp
member's lr, beta_scale, lambda and clip; never the ephemeral model's plasticity), its gradient
signals; hover text shows an infinite clip as "no clip" and shows only what applies to a member's
outcome and what it has (no "exploded at" for a stable member, no memory accuracy for an exploded
one, no NaN).

The frontier colours members by the outcome the user sees (`sweeper.outcomes.memory_outcome`):
exploded, stable without memory, stable and remembering (the memory window), and muted colours for
the rest (stopped early, failed, running, and stable members without a judgement); it draws the
stability boundary and, when the fit has one, the memory onset.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sweeper.analysis.boundary import axis_label
from sweeper.jsonio import to_strict
from sweeper.outcomes import STABLE_MEMORY, STABLE_NO_MEMORY, Outcome

OUTCOME_COLORS = {
    Outcome.STABLE.value: "#2ca02c",
    Outcome.EXPLODED.value: "#d62728",
    Outcome.STOPPED_EARLY.value: "#ff7f0e",
    Outcome.FAILED.value: "#7f7f7f",
    Outcome.RUNNING.value: "#1f77b4",
}
FRONTIER_COLORS = {
    Outcome.EXPLODED.value: "#d62728",
    STABLE_NO_MEMORY: "#1f77b4",
    STABLE_MEMORY: "#2ca02c",
    Outcome.STABLE.value: "#a5a5a5",
    Outcome.STOPPED_EARLY.value: "#ff7f0e",
    Outcome.FAILED.value: "#7f7f7f",
    Outcome.RUNNING.value: "#c7c7c7",
}
"""The frontier's colour per `memory_outcome`, in drawing and legend order: the window's three (exploded red,
stable without memory blue, stable and remembering green), then the rest muted. `stable` is a stable member
without a judgement: grey beside judged ones, green (`OUTCOME_COLORS`) in a study that judges none."""
HOVER_PARTS = {
    Outcome.EXPLODED.value: ("clip", "explode_step", "explode_onset", "final_loss"),
    STABLE_NO_MEMORY: ("clip", "final_loss", "eval_mem_acc", "memory_threshold"),
    STABLE_MEMORY: ("clip", "final_loss", "eval_mem_acc", "memory_threshold"),
    Outcome.STABLE.value: ("clip", "final_loss", "eval_mem_acc"),
    Outcome.STOPPED_EARLY.value: ("clip", "stop_step", "final_loss"),
    Outcome.FAILED.value: ("clip",),
    Outcome.RUNNING.value: ("clip",),
}
"""The optional parts of a frontier point's hover that apply to each outcome (shown when the member has
them): an explosion batch only for an exploded member, memory accuracy and its threshold only for a
stable one."""
MEMORY_LINE = "#1b6e1b"
"""The memory onset's line on the frontier (the stability boundary's is black)."""
WEBGL_ABOVE = 2000
"""Above this many points the frontier is drawn with WebGL (Scattergl) rather than SVG."""
JITTER_DECADES = 0.03
"""Seeds of one configuration share a point; each is moved by up to +-half this (log10 units)."""


RESULT_COLUMNS = ("seed", "steps_done", "explode_step", "explode_onset", "stop_step", "final_loss", "eval_mem_acc",
                  "memory_threshold")
WHOLE_COLUMNS = ("id", "seed", "steps_done", "explode_step", "explode_onset", "stop_step")
"""The whole numbers among a point's customdata: shown exactly, never rounded."""
END_NAMES = {"clip": "no clip", "eta": "eta 0", "lambda": "lambda 1"}
"""How an axis's end value (drawn one decade beyond the rest) is named on the frontier's axis titles."""


def hover_columns(axes) -> tuple[str, ...]:
    """A frontier point's customdata, in this order (its hover template indexes it): the member id,
    the model's axes, then `RESULT_COLUMNS`."""
    return ("id", *axes, *RESULT_COLUMNS)


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
    return "no clip" if clip is None or math.isinf(clip) else f"clip {clip:.3g}"


def axis_title(axis: str, limit: float | None = None) -> str:
    """A frontier axis's title: its scale ("log10 lr", "log10(1 - lambda)"), and where its end value
    is drawn when the members have it."""
    return axis_label(axis) + ("" if limit is None else f" ({END_NAMES[axis]} at {limit:g})")


def hover_parts(outcome: str, finite: dict[str, bool]) -> dict[str, bool]:
    """Which optional parts a frontier point's hover shows: those that apply to its `outcome` (a
    `memory_outcome` value, `HOVER_PARTS`) and that its members have (`finite`: column -> finite)."""
    applies = HOVER_PARTS.get(outcome, ("clip",))
    return {c: bool(v) and c in applies for c, v in finite.items()}


def _hover(outcome: str, axes, has: dict[str, bool]) -> str:
    """The hover template of a frontier trace: the member's own hyperparameters and result, with only
    the parts that apply to its outcome and that its members have (`has`, from `hover_parts`)."""
    at = {c: i for i, c in enumerate(hover_columns(axes))}

    def cd(c: str, fmt: str = "") -> str:
        return f"%{{customdata[{at[c]}]{fmt}}}"

    hyper = [("no clip" if not has["clip"] else f"clip {cd('clip', ':.3g')}") if a == "clip" else f"{a} {cd(a, ':.3g')}"
             for a in axes]
    steps = f"steps {cd('steps_done')}"
    if has["explode_step"]:
        steps += f", exploded at {cd('explode_step')}" + (f" (onset {cd('explode_onset')})" if has["explode_onset"] else "")
    if has["stop_step"]:
        steps += f", stopped at {cd('stop_step')}"
    parts = []
    if has["final_loss"]:
        parts.append(f"final loss {cd('final_loss', ':.4g')}")
    elif outcome == Outcome.EXPLODED.value:
        parts.append("loss not finite")
    if has["eval_mem_acc"]:
        memory = f"eval mem acc {cd('eval_mem_acc', ':.3f')}"
        if has["memory_threshold"] and outcome == STABLE_MEMORY:
            memory += f" > {cd('memory_threshold', ':.3f')}: remembers"
        elif has["memory_threshold"] and outcome == STABLE_NO_MEMORY:
            memory += f", needs > {cd('memory_threshold', ':.3f')}: no memory"
        parts.append(memory)
    result = "".join(f"<br>{p}" for p in ([", ".join(parts)] if parts else []))
    return (f"<b>member {cd('id')}</b> ({outcome})<br>{', '.join(hyper)}, seed {cd('seed')}<br>{steps}{result}"
            "<extra></extra>")


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=300, template="plotly_white")
    return fig


# ---------------------------------------------------------------------------------------------------
# Stability frontier


def frontier_figure(info: dict, p_stable: np.ndarray | None = None, grid: tuple | None = None, title: str = "",
                    p_remembers: np.ndarray | None = None) -> go.Figure:
    """Members as points in the info's plane (traces by `memory_outcome`, `FRONTIER_COLORS`), per-cell
    explosion rate beneath, P(stable) contours and the stability boundary (`grid`: the plane's scaled x
    and y coordinates of `p_stable`'s columns and rows), and the memory onset where
    P(remembers | stable) (`p_remembers`, on the same grid) is 0.5.

    Each point's id is its member id (what a click reports: dcc.Graph drops a binary customdata row
    from click events); its customdata, for the hover text, is its `hover_columns(info["axes"])`.
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
            colorscale=[[0, "black"], [1, "black"]], showscale=False, name="stability boundary (P(stable) = 0.5)",
            showlegend=True, hoverinfo="skip",
        ))  # fmt: skip
    if p_remembers is not None and grid is not None:
        fig.add_trace(go.Contour(
            x=grid[0].tolist(), y=grid[1].tolist(), z=_nulls(p_remembers),
            contours={"coloring": "lines", "start": 0.5, "end": 0.5, "size": 1}, line={"width": 3, "dash": "dash"},
            colorscale=[[0, MEMORY_LINE], [1, MEMORY_LINE]], showscale=False,
            name="memory onset (P(remembers | stable) = 0.5)", showlegend=True, hoverinfo="skip",
        ))  # fmt: skip

    n = len(m["id"])
    axes, (xa, ya) = info["axes"], info["plane"]
    columns = hover_columns(axes)
    scatter = go.Scattergl if n > WEBGL_ABOVE else go.Scatter
    x = info["x"] + JITTER_DECADES * (((m["seed"] * 0.6180339887) % 1.0) - 0.5)
    y = info["y"] + JITTER_DECADES * (((m["seed"] * 0.7548776662) % 1.0) - 0.5)
    custom = np.column_stack([m[c] for c in columns]) if n else np.zeros((0, len(columns)))
    real = [i for i, c in enumerate(columns) if c not in WHOLE_COLUMNS]
    custom[:, real] = _round(custom[:, real], 5)  # what hover shows of the reals; whole numbers stay exact
    if n and max(np.abs(m[c]).max() for c in ("id", "seed", "steps_done")) < 2**24:  # explode_step <= steps_done
        # float32 holds these whole numbers exactly and halves the binary arrays Plotly sends (a
        # 10,000-member figure: 1.75 -> 0.98 MB); its 7 significant digits are more than hover shows,
        # and far finer than a pixel on the axes.
        custom, x, y = custom.astype(np.float32), x.astype(np.float32), y.astype(np.float32)
    # One trace per outcome and per set of parts the hover shows (a hover template cannot test a
    # value): a clip or none, an explosion batch and onset or none, ... One legend entry per outcome.
    optional = ("clip", "explode_step", "explode_onset", "stop_step", "final_loss", "eval_mem_acc", "memory_threshold")
    finite = np.column_stack([np.isfinite(m[c]) if c in m else np.zeros(n, bool) for c in optional]) if n \
        else np.zeros((0, len(optional)), bool)
    signature = finite @ (1 << np.arange(len(optional)))  # (n,) one code per combination
    labels = info.get("memory_outcome", m["outcome"])
    judged = bool(np.isin(labels, (STABLE_MEMORY, STABLE_NO_MEMORY)).any())
    for outcome, color in FRONTIER_COLORS.items():
        keep = labels == outcome
        if not keep.any():
            continue
        name = outcome
        if outcome == Outcome.STABLE.value:  # without a judgement: grey beside judged members, else as always
            color, name = (color, "stable (not judged)") if judged else (OUTCOME_COLORS[outcome], outcome)
        for k, code in enumerate(np.unique(signature[keep])):
            part = keep & (signature == code)
            has = hover_parts(outcome, {c: bool(code >> i & 1) for i, c in enumerate(optional)})
            fig.add_trace(scatter(
                x=x[part], y=y[part], mode="markers", name=f"{name} ({int(keep.sum())})", legendgroup=outcome,
                showlegend=k == 0,
                marker={"color": color, "size": 9, "line": {"width": 0.5, "color": "white"}} if n <= WEBGL_ABOVE
                else {"color": color, "size": 5},
                customdata=custom[part], hovertemplate=_hover(outcome, axes, has), meta=outcome,
                ids=m["id"][part].astype(str),
            ))  # fmt: skip
    limits = info.get("limits", {})
    fig.update_layout(
        title=title, template="plotly_white", height=560, clickmode="event", hovermode="closest",
        xaxis_title=axis_title(xa, limits.get(xa)), yaxis_title=axis_title(ya, limits.get(ya)),
        legend={"orientation": "h", "y": -0.15}, uirevision=f"frontier {xa} {ya}",
    )
    return fig


# ---------------------------------------------------------------------------------------------------
# One member


GRADIENTS = {
    "ephemeral": ("grad_eph", "grad_slow", "grad_ratio", "ephemeral / slow gradient ratio"),
    "family": ("grad_fast", "grad_rest", "grad_fast_ratio", "fast-state / rest gradient ratio"),
}
"""The gradient norms a member's figure draws, and their ratio: the ephemeral model's (and the RNN's),
or the fast-weight families' (docs/families.md)."""


def _member_title(mm: dict) -> str:
    """"member 7: lr 0.01, beta_scale 1, lambda 0.9, no clip, seed 0 (stable)": the member's own axes."""
    parts = [_clip_text(mm["clip"]) if a == "clip" else f"{a} {mm[a]:.3g}"
             for a in mm["axes"] if a == "clip" or mm.get(a) is not None]
    return f"member {mm['id']}: {', '.join(parts)}, seed {mm['seed']} ({mm['outcome']})"


def member_figure(info: dict) -> go.Figure:
    """Loss; accuracy and memory accuracy with the no-memory baseline; gradient norms; their ratio
    (the ephemeral and slow weights', or a family's fast-state and other parameters')."""
    m, mm = info["metrics"], info["member"]
    step = m["step"].tolist()
    first, second, ratio, ratio_title = GRADIENTS["family" if mm.get("model_kind") in ("fastweights", "fwp") else "ephemeral"]
    fig = make_subplots(
        rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
        subplot_titles=("loss", "accuracy / memory accuracy", "gradient norms", ratio_title),
    )  # fmt: skip
    line = {"width": 1.5}
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["loss"]), name="loss", line=line), 1, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["acc"]), name="acc", line=line), 2, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["mem_acc"]), name="mem_acc", line=line), 2, 1)
    fig.add_trace(go.Scatter(x=step, y=_nulls(m["baseline"]), name="baseline (no memory)",
                             line={"dash": "dash", "color": "grey"}), 2, 1)
    for name, row in ((first, 3), (second, 3), (ratio, 4)):
        fig.add_trace(go.Scatter(x=step, y=_nulls(m[name]), name=name, line=line), row, 1)
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
    fig.update_layout(template="plotly_white", height=820, hovermode="x unified", title=_member_title(mm))
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


def _parallel_dimension(axis: str, values: list) -> dict:
    """One axis of the parallel plot: log10 for lr, plasticity, eta and beta_scale (eta 0 drawn one
    decade below the smallest positive eta), linear for ratio, gamma and lambda, clip linear with no
    clipping drawn above the largest threshold."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    label = axis
    if axis == "clip" and len(finite) < len(values):  # no clipping drawn above the largest threshold
        top = (max(finite) * 2) if finite else 1.0
        values = [top if v is not None and math.isinf(v) else v for v in values]
        label = "clip (none = top)"
    if axis in ("lr", "plasticity", "eta", "beta_scale"):
        positive = [v for v in finite if v > 0]
        zero = math.log10(min(positive)) - 1 if positive else 0.0
        label = f"log10 {axis}" + (" (0 = bottom)" if axis == "eta" and len(positive) < len(finite) else "")
        values = [None if v is None or not math.isfinite(v) else (math.log10(v) if v > 0 else zero) for v in values]
    return {"label": label, "values": to_strict(values, nonfinite=None)}


def parallel_figure(rows: list[dict], objective: str | None, axes=("lr", "plasticity", "ratio", "gamma", "clip")) -> go.Figure:
    """Parallel coordinates over the model's hyperparameters (`axes`, by axis name; a row holds lambda
    as `lam`, as `sweeper.db.member_rows` gives it) and the objective, coloured by outcome."""
    if not rows:
        return empty_figure("no members yet")
    codes = {o: i for i, o in enumerate(OUTCOME_COLORS)}
    dims = [_parallel_dimension(a, [r["lam" if a == "lambda" else a] for r in rows]) for a in axes]
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
