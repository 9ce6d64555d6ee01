"""Views shared by the dashboard pages and the report: data + optional parts -> figure and summary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweeper.dashboard import data, figures, optional

GRID = 60
"""P(stable) is evaluated on GRID x GRID points of the plotted plane."""


@dataclass
class FrontierView:
    figure: object
    fit: dict | optional.Missing
    """The boundary fit ({"payload", "summary"}) or why there is none."""
    note: str
    """Where P(stable) was evaluated (the slice's values), or why it could not be."""
    running: bool
    members: int


def frontier_view(db, study: str, slices: dict | None = None) -> FrontierView:
    slices = {axis: v for axis, v in (slices or {}).items() if v is not None}
    meta = data.study_meta(db, study)
    info = data.frontier_info(db, study, slices)
    m = info["members"]
    fit = optional.boundary_fit(db, study)
    p, grid, note = None, None, ""
    if not isinstance(fit, optional.Missing) and m["id"].size:
        x, y = np.log10(m["lr"]), np.log10(m["plasticity"])
        grid = (np.linspace(x.min() - 0.1, x.max() + 0.1, GRID), np.linspace(y.min() - 0.1, y.max() + 0.1, GRID))
        fixed = {}
        for axis in data.SLICE_AXES:  # the slice's own value, else the study's most common one
            value = slices.get(axis)
            if value is None:
                values, counts = np.unique(m[axis], return_counts=True)
                value = float(values[counts.argmax()])
            fixed[axis] = value
        p = optional.p_stable_grid(fit, grid[0], grid[1], fixed)
        if isinstance(p, optional.Missing):
            note, p, grid = p.reason, None, None
        else:
            note = "P(stable) contours at " + ", ".join(f"{k} {v:g}" for k, v in fixed.items())
    sliced = ", ".join(f"{k}={v:g}" for k, v in slices.items())
    title = f"{study}: {m['id'].size} members" + (f" ({sliced})" if sliced else "")
    figure = figures.frontier_figure(info, p, grid, title=title)
    return FrontierView(figure, fit, note, meta.status == "RUNNING", int(m["id"].size))


def warm_up() -> None:
    """Build a frontier figure of made-up members once, so a server's first visitor does not wait for
    the imports and Plotly validators a first figure loads (about 0.1 s on a small machine)."""
    n = figures.WEBGL_ABOVE + 1  # Scattergl, the trace type of a large study
    ones = np.ones(n)
    members = {c: ones for c in data.FRONTIER_COLUMNS}
    members.update(id=np.arange(n), seed=np.arange(n), outcome=np.array(["stable", "exploded"] * (n // 2) + ["stable"], dtype=object))
    edges = np.array([0.0, 1.0, 2.0])
    info = {"members": members, "cells": {"x_edges": edges, "y_edges": edges, "rate": np.zeros((2, 2)), "count": ones[:4].reshape(2, 2)}}
    axis = np.array([0.0, 1.0])
    figures.frontier_figure(info, np.zeros((2, 2)), (axis, axis)).to_json()
