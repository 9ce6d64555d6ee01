"""Views shared by the dashboard pages and the report: data + optional parts -> figure and summary."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from sweeper.dashboard import data, figures, optional
from sweeper.outcomes import Outcome

GRID = 60
"""P(stable) is evaluated on GRID x GRID points of the plotted plane."""


@dataclass
class FrontierView:
    figure: object
    fit: dict | optional.Missing
    """The boundary fit ({"payload", "summary", "headline", "memory", "window"}) or why there is none;
    its "memory" is the memory-onset fit ({"payload", "headline"}) or why there is none, its "window"
    the window's line of text or why there is none."""
    note: str
    """Where P(stable) was evaluated (the slice's values), or why it could not be."""
    running: bool
    members: int


def _value_text(axis: str, value: float) -> str:
    return "no clip" if axis == "clip" and np.isinf(value) else f"{axis} {value:g}"


def frontier_view(db, study: str, slices: dict | None = None, plane: tuple[str, str] | None = None) -> FrontierView:
    """The frontier of `study` in its plane (or `plane`, two axes of its model), sliced by `slices`
    ({other axis: value}); P(stable) contours of its latest fit and its memory onset (when the fit has
    one), the other axes at the slice's value, else the most common one among the slice's members."""
    slices = {axis: v for axis, v in (slices or {}).items() if v is not None}
    meta = data.study_meta(db, study)
    info = data.frontier_info(db, study, slices, plane=plane)
    m, plane = info["members"], info["plane"]
    fit = optional.boundary_fit(db, study)
    p, p_memory, grid, note = None, None, None, ""
    if not isinstance(fit, optional.Missing) and m["id"].size:
        x, y = info["x"][np.isfinite(info["x"])], info["y"][np.isfinite(info["y"])]
        if x.size and y.size:
            grid = (np.linspace(x.min() - 0.1, x.max() + 0.1, GRID), np.linspace(y.min() - 0.1, y.max() + 0.1, GRID))
        fixed = {}
        for axis in info["axes"]:  # the slice's own value, else the study's most common one
            if axis in plane:
                continue
            value = slices.get(axis)
            if value is None:
                values, counts = np.unique(m[axis], return_counts=True)
                value = float(values[counts.argmax()])
            fixed[axis] = value
        p = optional.p_stable_grid(fit, plane, grid[0], grid[1], fixed) if grid is not None else optional.Missing(
            "no member has a finite coordinate in this plane")
        if isinstance(p, optional.Missing):
            note, p, grid = p.reason, None, None
        else:
            note = "P(stable) contours at " + (", ".join(_value_text(k, v) for k, v in fixed.items()) or "the fit's medians")
            memory = fit["memory"]
            if not isinstance(memory, optional.Missing):
                p_memory = optional.p_stable_grid(memory, plane, grid[0], grid[1], fixed)
                if isinstance(p_memory, optional.Missing):
                    note, p_memory = f"{note}; memory onset not drawn: {p_memory.reason}", None
                else:
                    note += "; the memory onset at the same values"
    sliced = ", ".join(f"{k}={v:g}" for k, v in slices.items())
    shown = "" if plane == meta.plane else f" in ({plane[0]}, {plane[1]})"
    title = f"{study}: {m['id'].size} members{shown}" + (f" ({sliced})" if sliced else "")
    figure = figures.frontier_figure(info, p, grid, title=title, p_remembers=p_memory)
    return FrontierView(figure, fit, note, meta.status == "RUNNING", int(m["id"].size))


class FrontierCache:
    """The newest frontier views of one server, keyed by study, slice and fingerprint; and a prefetch.

    The key holds `data.frontier_fingerprint` (taken before the view is built), so a view is reused
    only while what it shows is unchanged. `prefetch(study)` builds the full-study view in a
    background thread: the server calls it when a browser asks for a frontier page's HTML, so the
    view is being built while the browser loads and runs the scripts, and the routing callback that
    asks for it about half a second later mostly finds it ready. A view being built is awaited, not
    built twice; a failed build is not kept.
    """

    def __init__(self, db, size: int = 8):
        self._db = db
        self._size = size
        self._lock = threading.Lock()
        self._views: OrderedDict[tuple, Future] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None

    def get(self, study: str, slices: dict | None = None, fingerprint: list | None = None,
            plane: tuple[str, str] | None = None) -> tuple[list, FrontierView]:
        """(fingerprint, view) of `study`'s frontier for `slices`, in `plane` (None: the study's own);
        built unless already cached. `fingerprint`: the study's, if the caller just took it (it must be
        taken before the view)."""
        if fingerprint is None:
            fingerprint = data.frontier_fingerprint(self._db, study)  # raises StudyNotFound
        slices = {axis: v for axis, v in (slices or {}).items() if v is not None}
        key = (study, json.dumps(sorted(slices.items())), json.dumps(fingerprint), plane and tuple(plane))
        with self._lock:
            future = self._views.get(key)
            building = future is None
            if building:
                future = self._views[key] = Future()
                while len(self._views) > self._size:
                    self._views.popitem(last=False)
            else:
                self._views.move_to_end(key)
        if building:
            try:
                future.set_result(frontier_view(self._db, study, slices, plane))
            except BaseException as e:
                with self._lock:
                    if self._views.get(key) is future:
                        del self._views[key]
                future.set_exception(e)
        return fingerprint, future.result()

    def prefetch(self, study: str) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweeper-frontier-prefetch")
        self._pool.submit(self._build_quietly, study)

    def _build_quietly(self, study: str) -> None:
        try:
            self.get(study)
        except Exception:  # noqa: BLE001 (the visit's own callback reports the error to the user)
            pass


def warm_up() -> None:
    """Build a frontier figure of made-up members once, so a server's first visitor does not wait for
    the imports and Plotly validators a first figure loads (about 0.1 s on a small machine)."""
    n = figures.WEBGL_ABOVE + 1  # Scattergl, the trace type of a large study
    ones = np.ones(n)
    axes = ("lr", "plasticity", "ratio", "gamma", "clip")
    members = {c: ones for c in (*data.FRONTIER_COLUMNS, *axes)}
    stable, exploded = Outcome.STABLE.value, Outcome.EXPLODED.value
    members.update(id=np.arange(n), seed=np.arange(n), outcome=np.array([stable, exploded] * (n // 2) + [stable], dtype=object))
    edges = np.array([0.0, 1.0, 2.0])
    cells = {"x_edges": edges, "y_edges": edges, "rate": np.zeros((2, 2)), "count": ones[:4].reshape(2, 2)}
    info = {"members": members, "cells": cells, "x": ones, "y": ones, "axes": axes, "plane": axes[:2], "limits": {}}
    axis = np.array([0.0, 1.0])
    figures.frontier_figure(info, np.zeros((2, 2)), (axis, axis)).to_json()
