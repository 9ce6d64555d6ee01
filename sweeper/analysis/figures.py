"""The paper's Fig. 6 and Fig. 7 as outputs of a study, as Plotly figures.

    fig7(db, study) -> go.Figure   # members in the study's plane (log10 lr, log10 plasticity for the
                                   # ephemeral model) by outcome, per-cell explosion rates, the fitted
                                   # boundary (P = 0.5) and a slope -1 line
    fig6(db, study) -> go.Figure   # grad_ratio and ephemeral / slow gradient norms over training (a
                                   # family's grad_fast_ratio, grad_fast, grad_rest), stable vs
                                   # exploding members (downsampled)
    write_figures(db, study, "out/")   # fig6.html, fig7.html (plotly.js inlined: open offline)

Each figure is a pure data function (`fig7_info`, `fig6_info`: plain dicts, tested) and a builder
(`fig7_figure`, `fig6_figure`). Fig. 7 draws the study's latest stored boundary fit
(`sweeper boundary STUDY`) when it is in the study's plane, else a point-estimate fit made on the
spot (not stored), else no line. Its axes are the plane's scaled axes (`boundary.to_coord`: log10, or
log10(1 - lambda)), an end value (clip inf, eta 0, lambda 1) one decade beyond the rest.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.jsonio import to_strict
from sweeper.outcomes import FINISHED, Outcome

from .boundary import (
    BoundaryError,
    axis_label,
    column,
    fit_members,
    latest_fit,
    limit_coord,
    load_members,
    payload_plane,
    product_name,
    to_coord,
)

STABLE_COLOR = "#1f77b4"  # blue, as in the paper's Fig. 6
EXPLODED_COLOR = "#8c564b"  # brown
STOPPED_COLOR = "#ff7f0e"
MAX_POINTS = 200
"""Fig. 6: at most this many points per trace (evenly strided)."""
PER_CLASS = 5
"""Fig. 6: members drawn per class."""
JITTER = 0.03
"""Fig. 7: members of one configuration are spread by this much (log10 units) so seeds are visible."""
_END = {"clip": "no clip", "eta": "eta 0", "lambda": "lambda 1"}
"""How Fig. 7's axis titles name an axis's end value (drawn one decade beyond the rest)."""
FIG6_METRICS = ("grad_ratio", "grad_eph", "grad_slow")
"""Fig. 6's panels for the ephemeral model (and the RNN)."""
FAMILY_FIG6_METRICS = ("grad_fast_ratio", "grad_fast", "grad_rest")
"""Fig. 6's panels for a fast-weight family: the fast-state / rest gradient-norm ratio and its two norms."""
FIG6_TITLES = {
    FIG6_METRICS: ("ephemeral / slow gradient-norm ratio", "ephemeral gradient norm", "slow gradient norm"),
    FAMILY_FIG6_METRICS: ("fast-state / rest gradient-norm ratio", "fast-state gradient norm", "rest gradient norm"),
}


# ---------------------------------------------------------------------------------------------------
# Fig. 7


def fig7_info(db, study: str, *, seed: int = 0) -> dict[str, Any]:
    """Members, cells and the boundary line of Fig. 7, in the study's plane's scaled coordinates."""
    members = load_members(db, study)
    if members.stable.size == 0:
        raise BoundaryError(f"study {study!r} has no finished members (stable, exploded or stopped early)")
    xa, ya = members.plane
    limits = {a: limit_coord(a, members.hypers[a]) for a in members.plane}
    x, y = to_coord(xa, members.hypers[xa], limits[xa]), to_coord(ya, members.hypers[ya], limits[ya])
    rng = np.random.default_rng(seed)
    jx = x + rng.uniform(-JITTER, JITTER, x.size)
    jy = y + rng.uniform(-JITTER, JITTER, y.size)
    groups = {}
    for outcome in FINISHED:
        at = members.outcome == outcome.value
        groups[outcome.value] = {"x": to_strict(jx[at].tolist(), nonfinite=None),
                                 "y": to_strict(jy[at].tolist(), nonfinite=None), "count": int(at.sum())}
    fit, source = None, None
    stored = latest_fit(db, study)
    if stored is not None and payload_plane(stored.payload) == members.plane:
        fit, source = stored.payload, f"stored fit {stored.id} ({stored.kind})"
    else:
        try:
            fit, source = fit_members(members, bootstrap=0, cv=False), "fitted now (not stored)"
        except BoundaryError as e:
            source = f"no boundary: {e.message}"
    line = None
    finite_x, finite_y = x[np.isfinite(x)], y[np.isfinite(y)]
    if fit is not None and fit["boundary"]["slope"] is not None and finite_x.size:
        b = fit["boundary"]
        xs = [float(finite_x.min()) - 0.1, float(finite_x.max()) + 0.1]
        median = fit["medians"].get(xa)
        x_mid = float(np.median(finite_x)) if median is None else float(to_coord(xa, median, limits[xa]))
        y_mid = b["slope"] * x_mid + b["intercept"]
        line = {"x": xs, "y": [b["slope"] * v + b["intercept"] for v in xs], "slope": b["slope"],
                "intercept": b["intercept"], "slope_ci95": b["slope_ci95"],
                "product": {"x": xs, "y": [y_mid - (v - x_mid) for v in xs], "name": product_name(members.plane)}}
    cells = []
    hx, hy = members.hypers[xa], members.hypers[ya]
    for cx, cy in sorted({(float(a), float(b)) for a, b in zip(hx, hy)}):
        at = (hx == cx) & (hy == cy)
        cells.append({"x": float(to_coord(xa, cx, limits[xa])), "y": float(to_coord(ya, cy, limits[ya])),
                      "members": int(at.sum()), "explosion_rate": float((~members.stable[at]).mean())})
    titles = {a: axis_label(a) + ("" if limits[a] is None else f" ({_END[a]} at {limits[a]:g})") for a in members.plane}
    return {"study": study, "plane": [xa, ya], "x_title": titles[xa], "y_title": titles[ya], "members": groups,
            "cells": to_strict(cells, nonfinite=None), "boundary": line, "boundary_source": source,
            "y_range": [float(finite_y.min()) - 0.2, float(finite_y.max()) + 0.2] if finite_y.size else None}


def fig7_figure(info: dict[str, Any]):
    import plotly.graph_objects as go

    fig = go.Figure()
    cells = info["cells"]
    if cells:
        fig.add_trace(go.Scatter(
            x=[c["x"] for c in cells], y=[c["y"] for c in cells], mode="markers", name="cell explosion rate",
            marker={"symbol": "square", "size": 26, "opacity": 0.35, "color": [c["explosion_rate"] for c in cells],
                    "colorscale": [[0, STABLE_COLOR], [1, EXPLODED_COLOR]], "cmin": 0, "cmax": 1,
                    "colorbar": {"title": "explosion rate"}},
            text=[f"{c['members']} members, explosion rate {c['explosion_rate']:.2f}" for c in cells],
            hoverinfo="text"))
    colors = {Outcome.STABLE.value: STABLE_COLOR, Outcome.EXPLODED.value: EXPLODED_COLOR,
              Outcome.STOPPED_EARLY.value: STOPPED_COLOR}
    for outcome, g in info["members"].items():
        if g["count"]:
            fig.add_trace(go.Scatter(x=g["x"], y=g["y"], mode="markers", name=f"{outcome} ({g['count']})",
                                     marker={"size": 6, "color": colors[outcome],
                                             "symbol": "circle" if outcome == Outcome.STABLE else "x"}))
    line = info["boundary"]
    if line is not None:
        ci = line["slope_ci95"]
        label = f"boundary P=0.5: slope {line['slope']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        fig.add_trace(go.Scatter(x=line["x"], y=line["y"], mode="lines", name=label,
                                 line={"color": "black", "width": 2}))
        fig.add_trace(go.Scatter(x=line["product"]["x"], y=line["product"]["y"], mode="lines",
                                 name=f"slope -1 ({line['product']['name']}) through it",
                                 line={"color": "gray", "dash": "dash"}))
    xa, ya = info["plane"]
    fig.update_layout(title=f"Fig. 7 - {info['study']}: stability over {xa} x {ya} ({info['boundary_source']})",
                      xaxis_title=info["x_title"], yaxis_title=info["y_title"],
                      yaxis_range=info["y_range"], template="plotly_white", legend={"orientation": "h", "y": -0.2})
    return fig


def fig7(db, study: str):
    """Fig. 7 of the study: a `plotly.graph_objects.Figure`."""
    return fig7_figure(fig7_info(db, study))


# ---------------------------------------------------------------------------------------------------
# Fig. 6


def fig6_info(db, study: str, *, per_class: int = PER_CLASS, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """Traces of Fig. 6: up to `per_class` stable members (the highest product of the plane's axes
    where both are rates or scales (lr, plasticity, eta, beta_scale), else the highest lr: nearest the
    boundary) and exploding ones (the latest explosions, the longest traces), downsampled. The
    metrics are the model's gradient-norm ratio and its two norms (`FIG6_METRICS`, or
    `FAMILY_FIG6_METRICS` for a fast-weight family)."""
    import sqlalchemy as sa

    from sweeper.db import Member, MemberMetric

    from .boundary import _study_id_or_refuse, study_plane

    with db.read_session() as s:
        study_id = _study_id_or_refuse(s, db, study)
        where = study_plane(s, study_id)
        names = FAMILY_FIG6_METRICS if where.kind in ("fastweights", "fwp") else FIG6_METRICS
        ratio = getattr(MemberMetric, names[0])
        x, y = (getattr(Member, column(a)) for a in where.plane)
        scales = {"lr", "plasticity", "eta", "beta_scale"}
        nearness = x * y if set(where.plane) <= scales else Member.lr
        has_trace = sa.exists().where(MemberMetric.member_id == Member.id, ratio.is_not(None))
        base = sa.select(Member.id, x.label("x"), y.label("y"), Member.seed, Member.explode_step).where(
            Member.study_id == study_id, has_trace)
        stable = s.execute(base.where(Member.outcome == Outcome.STABLE)
                           .order_by(nearness.desc(), Member.id).limit(per_class)).all()
        exploded = s.execute(base.where(Member.outcome == Outcome.EXPLODED)
                             .order_by(Member.explode_step.desc(), Member.id).limit(per_class)).all()
        chosen = [(Outcome.STABLE.value, m) for m in stable] + [(Outcome.EXPLODED.value, m) for m in exploded]
        ids = [m.id for _, m in chosen]
        rows = s.execute(sa.select(MemberMetric.member_id, MemberMetric.step,
                                   *(getattr(MemberMetric, k) for k in names))
                         .where(MemberMetric.member_id.in_(ids), ratio.is_not(None))
                         .order_by(MemberMetric.member_id, MemberMetric.step)).all()
    by_member: dict[int, list] = {i: [] for i in ids}
    for r in rows:
        by_member[r.member_id].append(r)
    traces = []
    for outcome, m in chosen:
        series = by_member[m.id]
        stride = max(1, math.ceil(len(series) / max_points))
        series = series[::stride]
        traces.append({"outcome": outcome, "member_id": m.id, where.plane[0]: m.x, where.plane[1]: m.y,
                       "seed": m.seed, "explode_step": m.explode_step, "step": [r.step for r in series],
                       **{k: to_strict([getattr(r, k) for r in series], nonfinite=None) for k in names}})
    if not traces:
        raise BoundaryError(f"study {study!r} has no stable or exploded member with gradient-norm metrics "
                            f"({names[0]})")
    return {"study": study, "plane": list(where.plane), "metrics": list(names), "traces": traces}


def fig6_figure(info: dict[str, Any]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = tuple(info.get("metrics", FIG6_METRICS))
    xa, ya = info.get("plane", ("lr", "plasticity"))
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, subplot_titles=FIG6_TITLES[names], vertical_spacing=0.06)
    shown = set()
    for t in info["traces"]:
        color = STABLE_COLOR if t["outcome"] == Outcome.STABLE else EXPLODED_COLOR
        values = ", ".join("no clip" if a == "clip" and t[a] == math.inf else f"{a} {t[a]:.3g}" for a in (xa, ya))
        name = (f"{t['outcome']}: {values}, seed {t['seed']}"
                + (f", exploded at {t['explode_step']}" if t["explode_step"] is not None else ""))
        for row, metric in enumerate(names, start=1):
            fig.add_trace(go.Scatter(x=t["step"], y=t[metric], mode="lines", name=name, legendgroup=name,
                                     showlegend=row == 1, line={"color": color, "width": 1.2}, opacity=0.8),
                          row=row, col=1)
        shown.add(t["outcome"])
    for row in (1, 2, 3):
        fig.update_yaxes(type="log", row=row, col=1)
    fig.update_xaxes(title_text="training batch", row=3, col=1)
    fig.update_layout(title=f"Fig. 6 - {info['study']}: gradient norms, stable (blue) vs exploding (brown)",
                      template="plotly_white", height=900)
    return fig


def fig6(db, study: str):
    """Fig. 6 of the study: a `plotly.graph_objects.Figure`."""
    return fig6_figure(fig6_info(db, study))


# ---------------------------------------------------------------------------------------------------


def write_figures(db, study: str, directory: str | Path) -> list[str]:
    """Write fig6.html and fig7.html (plotly.js inlined) into `directory`; PNGs too when kaleido is
    installed. Returns the paths written."""
    import importlib.util

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    png = importlib.util.find_spec("kaleido") is not None
    written = []
    for name, build in (("fig6", fig6), ("fig7", fig7)):
        figure = build(db, study)
        path = out / f"{name}.html"
        figure.write_html(path, include_plotlyjs=True)
        written.append(str(path))
        if png:
            figure.write_image(out / f"{name}.png")
            written.append(str(out / f"{name}.png"))
    return written
