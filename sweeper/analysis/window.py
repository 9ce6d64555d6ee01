"""The memory window: where a study's members are stable and remember, counted per cell and fitted as
the band between two lines in the study's plane.

    window = memory_window(db, "fig7_reversal3_grid_cpu")
    window.axes                        # the hyperparameters that vary: ("lr", "plasticity")
    window.cells[0].point              # {"lr": 0.001, "plasticity": 31.6}
    window.cells[0].memory             # members of that cell that remember
    window.to_dict()                   # strict JSON

    report = fit_window(db, "fig7_reversal3_grid_cpu")    # both lines and the window; stored
    report.payload["memory"]           # the memory-onset fit (or {"skipped": why})
    report.payload["window"]           # where the window lies and how wide it is (or {"skipped": why})

On a hard task most stable members learn nothing at the memory positions: the useful region is a
window between "too weak to remember" and "exploding", and a stability boundary alone sees only its
upper edge.

**Cells** (`memory_window`, data only). A cell is one point of the hyperparameters that vary among
the study's members (a grid's cell, a configuration of a random or Optuna search; its seeds are its
members). Its counts:

- `exploded`, `stopped_early` (predicted to explode; a boundary fit counts it as unstable);
- `no_memory`, `memory`: stable members judged not to remember / to remember
  (`sweeper.outcomes.judge_memory`, stored in `sw_members.remembers`);
- `unjudged`: stable members without a judgement (the study had no evaluation);
- `remembers_fraction` = memory / members, with its Wilson 95% interval: the chance that a run of this
  cell lands in the window.

Failed and running members belong to no cell (counted in `excluded`). The counting is one GROUP BY in
the database.

**The fitted window** (`fit_window`, what `sweeper boundary` runs). Two logistic (or linear SVM)
fits on the same scaled axes (`sweeper.analysis.boundary`):

- the upper edge, the stability boundary: P(stable) = 0.5, stable vs exploded or stopped early over
  every finished member (`label="stable"`, exactly `fit_boundary`'s fit);
- the lower edge, the memory onset: P(remembers | stable) = 0.5, among the stable members with a
  memory judgement, those that remember vs those that do not (`label="remembers"`), its line drawn
  with the other varying axes at the same values as the upper one's (their medians over all the
  finished members).

With X = the scaled x of the plane (log10 lr) and Y = the scaled y (log10 plasticity), each line is
Y = slope * X + intercept. **The window at the median x**: hold x at its median over the study's
finished members, x_m (X_m = log10 x_m), and the other varying axes at their medians. The memory
onset crosses that vertical at Y_low and the stability boundary at Y_high (the memory side is above
the one and the stable side below the other, as on every study measured; were they the other way
round, the two swap roles). The window there is Y_low < Y < Y_high, stable and remembering, and

    width = Y_high - Y_low          (decades of y at x = x_m; negative: no window there)

**Along the product** x * y (lr * plasticity; lr * (1 - lambda) for a decay axis): at x = x_m,
log10(x * y) = X_m + Y, so the window spans log10(x * y) from X_m + Y_low to X_m + Y_high, a range of
the same width. The payload also gives the width at the smallest and largest x of the study and
where the two lines cross (where the window closes), if they do.

**Intervals.** 95% percentile intervals of Y_low, Y_high, the product range and the width over
bootstrap resamples: resample k draws the study's finished members with replacement, refits the
stability boundary on them and the memory onset on its judged stable members (`fit_members` draws the
same resamples for both labels from one seed), and evaluates both lines at the same x_m. Reported
when at least half the resamples gave both lines.

A study without a memory judgement (no evaluation), or with fewer than 5 stable members that
remember or 5 that do not, gets the upper fit alone: `memory` and `window` then say why
({"skipped": reason}). Everything is stored in one `sw_boundary_fits` row: the stability fit's
payload (what every reader of a boundary fit reads) with `memory` and `window` added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sweeper.outcomes import STABLE_MEMORY, STABLE_NO_MEMORY, Outcome

AXES = ("lr", "plasticity", "ratio", "gamma", "clip", "eta", "beta_scale", "lam")
"""The `sw_members` hyperparameter columns a cell may be a point of (NULL where a model has none)."""


@dataclass(frozen=True)
class WindowCell:
    point: dict[str, float]
    """The values of the study's varying axes (`MemoryWindow.axes`) at this cell."""
    members: int
    """Finished members (stable, exploded, stopped early)."""
    exploded: int = 0
    stopped_early: int = 0
    no_memory: int = 0
    """Stable, judged not to remember."""
    memory: int = 0
    """Stable, judged to remember."""
    unjudged: int = 0
    """Stable, without a judgement (no evaluation)."""

    @property
    def remembers_fraction(self) -> float:
        return self.memory / self.members

    @property
    def remembers_ci95(self) -> tuple[float, float]:
        return wilson(self.memory, self.members)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "remembers_fraction": self.remembers_fraction,
                "remembers_ci95": list(self.remembers_ci95)}


@dataclass(frozen=True)
class MemoryWindow:
    study: str
    axes: tuple[str, ...]
    """The hyperparameters that take more than one value among the cells' members, in `AXES` order."""
    cells: list[WindowCell]
    """One per point, ordered by the axes' values."""
    excluded: dict[str, int] = field(default_factory=dict)
    """Members in no cell, by outcome (failed, running)."""

    def totals(self) -> dict[str, int]:
        """The counts over the whole study."""
        names = ("members", "exploded", "stopped_early", "no_memory", "memory", "unjudged")
        return {n: sum(getattr(c, n) for c in self.cells) for n in names}

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON (no NaN or infinity: an infinite clip is the string "inf")."""
        def point(p: Mapping[str, float]) -> dict[str, Any]:
            return {k: ("inf" if v == math.inf else v) for k, v in p.items()}

        return {"study": self.study, "axes": list(self.axes), "totals": self.totals(), "excluded": dict(self.excluded),
                "cells": [{**c.to_dict(), "point": point(c.point)} for c in self.cells]}


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k / n; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


_COUNTED = {Outcome.EXPLODED.value: "exploded", Outcome.STOPPED_EARLY.value: "stopped_early",
            STABLE_NO_MEMORY: "no_memory", STABLE_MEMORY: "memory", Outcome.STABLE.value: "unjudged"}


def memory_window(db, study: str) -> MemoryWindow:
    """The study's cells and their counts. Raises StudyNotFound (naming the known studies) for an
    unknown study."""
    import sqlalchemy as sa

    from sweeper.db import Member
    from sweeper.db.queries import MEMORY_OUTCOME, study_id

    with db.read_session() as s:
        sid = study_id(s, db, study)
        label = MEMORY_OUTCOME.label("memory_outcome")
        columns = [getattr(Member, a) for a in AXES]
        counts = s.execute(sa.select(*columns, label, sa.func.count()).where(Member.study_id == sid)
                           .group_by(*columns, label)).all()
    return window_from_counts(study, [({a: r[i] for i, a in enumerate(AXES)}, r[-2], r[-1]) for r in counts])


def window_from_counts(study: str, counts: list[tuple[Mapping[str, float | None], str, int]]) -> MemoryWindow:
    """The window from (hyperparameters, memory_outcome, members) groups (`memory_window`'s query)."""
    excluded: dict[str, int] = {}
    kept = []
    for point, label, n in counts:
        if label in _COUNTED:
            kept.append((point, label, n))
        else:
            excluded[label] = excluded.get(label, 0) + n
    axes = tuple(a for a in AXES if len({p.get(a) for p, _, _ in kept}) > 1)
    cells: dict[tuple, dict[str, int]] = {}
    for point, label, n in kept:
        key = tuple(point.get(a) for a in axes)
        tally = cells.setdefault(key, {"members": 0})
        tally["members"] += n
        tally[_COUNTED[label]] = tally.get(_COUNTED[label], 0) + n
    return MemoryWindow(study, axes, [WindowCell(dict(zip(axes, key)), **tally)
                                      for key, tally in sorted(cells.items(), key=lambda kv: _order(kv[0]))],
                        excluded)


def _order(key: tuple) -> tuple:
    return tuple((v is None, v if v is not None else 0.0) for v in key)


# ---------------------------------------------------------------------------------------------------
# The fitted window: two lines and the band between them


def definition(plane: Sequence[str]) -> str:
    """The window's definition in the plane's own names (what the payload and `sweeper boundary` print)."""
    from sweeper.analysis.boundary import axis_label, product_name

    x, y = plane
    unit = "1 - lambda" if y == "lambda" else y
    return (f"the window at the median {x}: with {x} at its median over the study's finished members (other "
            f"varying axes at their medians), {axis_label(y)} between the memory onset (P(remembers | stable) "
            f"= 0.5) and the stability boundary (P(stable) = 0.5); width = the distance between the two lines "
            f"there, in decades of {unit}. Along the product: at that "
            f"{x}, log10({product_name(plane)}) = {axis_label(x)} + {axis_label(y)}, so the window spans "
            f"log10({product_name(plane)}) over a range of the same width. 95% intervals: percentiles over "
            f"bootstrap resamples of the finished members, both lines refitted on each")


def fit_window(db, study: str, *, model: str = "logistic", bootstrap: int = 200, folds: int = 5, seed: int = 0,
               store: bool = True):
    """Fit both edges of the study's memory window and the window between them (the module's
    docstring); store them as one boundary fit unless `store` is False. Returns a
    `sweeper.analysis.boundary.BoundaryReport` whose payload is the stability fit's with `memory` and
    `window` added.

    Raises BoundaryError when the stability boundary cannot be fitted (as `fit_boundary` does); a
    memory onset that cannot be fitted is a reason in the payload, not an error."""
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    from sweeper.analysis.boundary import BoundaryReport, load_members, store_fit

    members = load_members(db, study)
    # Each of the ~2 x (bootstrap + folds) fits is on a few hundred points, where BLAS threads only
    # contend: one thread ran the Fig. 7 grid's fits 3.5x faster on a busy 2-core machine.
    with threadpool_limits(limits=1):
        payload = window_payload(members, model=model, bootstrap=bootstrap, folds=folds, seed=seed)
    return store_fit(db, members, payload) if store else BoundaryReport(study, model, payload)


def window_payload(members, *, model: str = "logistic", bootstrap: int = 200, folds: int = 5, seed: int = 0) -> dict:
    """The stability fit's payload of `members` (`sweeper.analysis.boundary.Members`) with `memory` (the
    memory-onset fit) and `window` (`window_between`) added, or each as {"skipped": reason}."""
    from sweeper.analysis.boundary import BoundaryError, fit_members

    upper = fit_members(members, model=model, bootstrap=bootstrap, folds=folds, seed=seed, label="stable")
    try:
        lower = fit_members(members, model=model, bootstrap=bootstrap, folds=folds, seed=seed, label="remembers",
                            at=upper["medians"])
    except BoundaryError as e:
        return {**upper, "memory": {"skipped": e.message}, "window": {"skipped": f"no memory onset: {e.message}"}}
    return {**upper, "memory": lower, "window": window_between(upper, lower)}


def window_between(upper: Mapping, lower: Mapping) -> dict:
    """Where the window between a stability fit (`upper`) and a memory-onset fit (`lower`) of one study
    lies and how wide it is (the module's docstring), or {"skipped": reason}. Strict JSON."""
    from sweeper.analysis.boundary import (
        MIN_BOOTSTRAP_USED,
        from_coord,
        payload_limits,
        payload_plane,
        product_name,
        to_coord,
    )
    from sweeper.jsonio import to_strict

    plane = payload_plane(upper)
    x, y = plane
    u, m = upper["boundary"], lower["boundary"]
    if u["slope"] is None or m["slope"] is None:
        which = "stability boundary" if u["slope"] is None else "memory onset"
        return {"skipped": f"the {which} is vertical in the ({x}, {y}) plane: no width along {y}"}
    if u["positive_side"] == m["positive_side"]:
        return {"skipped": f"the stable side of the stability boundary and the remembering side of the memory onset "
                           f"are both {u['positive_side']} their lines: no band between them"}
    # The floor is the line whose good side is above it, the ceiling the one whose good side is below.
    memory_floor = m["positive_side"] == "above"
    floor, ceiling = (m, u) if memory_floor else (u, m)
    names = ("memory onset", "stability boundary") if memory_floor else ("stability boundary", "memory onset")

    x_m = float(to_coord(x, upper["medians"][x]))
    limits = payload_limits(upper)
    xs = to_coord(x, [c[x] if c[x] is not None else math.inf for c in upper["cells"]], limits.get(x))
    xs = xs[np.isfinite(xs)]

    def at(line, X):  # Y of a line at X
        return line["slope"] * X + line["intercept"]

    def width(X):
        return at(ceiling, X) - at(floor, X)

    y_low, y_high = at(floor, x_m), at(ceiling, x_m)
    reps_f, reps_c = floor["replicates"], ceiling["replicates"]
    pairs = [(fs, fi, cs, ci) for fs, fi, cs, ci in zip(reps_f["slope"], reps_f["intercept"], reps_c["slope"],
                                                       reps_c["intercept"]) if fs is not None and cs is not None]
    requested = min(len(reps_f["slope"]), len(reps_c["slope"]))
    enough = requested > 0 and len(pairs) >= MIN_BOOTSTRAP_USED * requested
    draws = np.array([(fs * x_m + fi, cs * x_m + ci) for fs, fi, cs, ci in pairs], dtype=np.float64).reshape(-1, 2)

    def ci(values):
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if enough else None

    across = [{"x": float(from_coord(x, X)), "x_coord": float(X), "width": float(width(X))}
              for X in ((xs.min(), xs.max()) if xs.size else ())]
    closes = None
    if ceiling["slope"] != floor["slope"]:
        X = (floor["intercept"] - ceiling["intercept"]) / (ceiling["slope"] - floor["slope"])
        with np.errstate(over="ignore"):  # nearly parallel lines cross far away: x is then inf (null)
            natural = float(from_coord(x, X))
        closes = {"x": natural, "x_coord": float(X),
                  "inside": bool(xs.size and xs.min() <= X <= xs.max()),
                  "open_towards": "smaller" if ceiling["slope"] < floor["slope"] else "larger"}
    product = product_name(plane)
    return to_strict({
        "definition": definition(plane),
        "x": x, "y": y, "product": product,
        "x_median": float(from_coord(x, x_m)), "x_median_coord": x_m,
        "others_at_median": dict(upper["boundary"]["others_at_median"]),
        "floor": names[0], "ceiling": names[1],
        "y_low": float(y_low), "y_low_ci95": ci(draws[:, 0]),
        "y_high": float(y_high), "y_high_ci95": ci(draws[:, 1]),
        "width": float(y_high - y_low), "width_ci95": ci(draws[:, 1] - draws[:, 0]),
        "product_low": float(x_m + y_low), "product_low_ci95": ci(x_m + draws[:, 0]),
        "product_high": float(x_m + y_high), "product_high_ci95": ci(x_m + draws[:, 1]),
        "open": bool(y_high > y_low),
        "across": across,
        "closes_at": closes,
        "bootstrap": {"requested": requested, "used": len(pairs)},
    }, nonfinite=None)


# ---------------------------------------------------------------------------------------------------
# As text (what `sweeper boundary` prints after the stability boundary)


def _interval(ci: Sequence[float] | None, digits: int = 3) -> str:
    return "no interval" if ci is None else f"95% [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def describe(payload: Mapping) -> list[str]:
    """The memory onset and the window of a fit's payload (`window_payload`) as indented lines; a
    payload without them (a plain stability fit) gives []."""
    from sweeper.analysis.boundary import axis_label, payload_plane, product_name

    memory, window = payload.get("memory"), payload.get("window")
    if not isinstance(memory, Mapping) or not isinstance(window, Mapping):
        return []
    x, y = payload_plane(payload)
    if "skipped" in memory:
        return [f"memory onset, the window's lower edge: skipped: {memory['skipped']}",
                "window: none without a memory onset"]
    m, cv, b = memory["members"], memory["cv"], memory["boundary"]
    left = {"exploded": m.get("exploded", 0), "stopped early": m.get("stopped_early", 0),
            "stable without a judgement": m.get("unjudged", 0), **m.get("excluded", {})}
    lines = [f"memory onset, the window's lower edge: {memory['split']['probability']}, among the stable members "
             "with a memory judgement",
             f"  members: {m['fitted']} judged stable fitted ({m['remember']} remember, {m['no_memory']} without "
             "memory); left out: " + (", ".join(f"{n} {k}" for k, n in left.items() if n) or "none"),
             f"  cross-validated ({cv['folds']} folds): accuracy {cv['accuracy']:.3f} +- {cv['accuracy_sd']:.3f} "
             f"(majority class {cv['majority_baseline']:.3f}), AUROC {cv['auroc']:.3f}"]
    if b["slope"] is None:
        lines.append(f"  line: vertical in the ({x}, {y}) plane (no weight on {y})")
    else:
        lines += [f"  line ({memory['split']['probability']} = 0.5): {axis_label(y)} = {b['slope']:.3f} * "
                  f"{axis_label(x)} + {b['intercept']:.3f}; members remember {b['positive_side']} the line",
                  f"    slope {_interval(b['slope_ci95'])}, intercept {_interval(b['intercept_ci95'])} "
                  f"({b['bootstrap']['used']} bootstrap refits)"]
    lines.append(f"  {product_name((x, y))} hypothesis: {memory['product_hypothesis']['statement']}")
    h = memory["hyperplane"]
    lines.append("  hyperplane: logit P(remembers | stable) = " + f"{h['intercept']:.3f} "
                 + " ".join(f"{'+' if c >= 0 else '-'} {abs(c):.3f} {axis_label(a)}" for a, c in h["coef"].items()))
    if "skipped" in window:
        return [*lines, f"window: {window['skipped']}"]
    w = window
    product = product_name((x, y))
    others = ", ".join(f"{a} {'none' if v is None else format(v, 'g')}" for a, v in w["others_at_median"].items())
    lines += [
        f"window, stable and remembering: between the {w['floor']} below and the {w['ceiling']} above",
        f"  at the median {x} {w['x_median']:.4g} ({axis_label(x)} = {w['x_median_coord']:.3f}"
        + (f"; {others}" if others else "") + f"): {axis_label(y)} from {w['y_low']:.3f} "
        f"({_interval(w['y_low_ci95'])}) to {w['y_high']:.3f} ({_interval(w['y_high_ci95'])})",
        f"  width {w['width']:.3f} decades, {_interval(w['width_ci95'])}"
        + ("" if w["open"] else f": no window at this {x} (the memory onset lies above the stability boundary)"),
        f"  along {product}: log10({product}) from {w['product_low']:.3f} ({_interval(w['product_low_ci95'])}) to "
        f"{w['product_high']:.3f} ({_interval(w['product_high_ci95'])}), i.e. {product} from "
        f"{10 ** w['product_low']:.3g} to {10 ** w['product_high']:.3g}",
    ]
    if w["across"]:
        ends = ", ".join(f"{e['width']:.3f} at {x} {e['x']:.3g}" for e in w["across"])
        where = ""
        if w["closes_at"] is not None:
            c = w["closes_at"]
            inside = "inside" if c["inside"] else "outside"
            natural = "" if c["x"] is None else f" ({x} {c['x']:.3g})"  # None: beyond a float's range
            where = (f"; the lines cross at {axis_label(x)} = {c['x_coord']:.2f}{natural}, {inside} the {x} studied; "
                     f"the window is open towards {c['open_towards']} {x}")
        lines.append(f"  width across the {x} studied: {ends}{where}")
    lines.append(f"  definition: {w['definition']}")
    return lines


def headline(window: Mapping) -> str:
    """The window of a payload (`window_between`) in one line; its reason when it was skipped."""
    from sweeper.analysis.boundary import axis_label

    if "skipped" in window:
        return window["skipped"]
    w, x, product = window, window["x"], window["product"]
    ci = w["width_ci95"]
    interval = "" if ci is None else f" (95% [{ci[0]:.2f}, {ci[1]:.2f}])"
    return (f"at the median {x} {w['x_median']:.3g}: {axis_label(w['y'])} {w['y_low']:.2f} to {w['y_high']:.2f}, "
            f"{w['width']:.2f} decades wide{interval}; log10({product}) {w['product_low']:.2f} to "
            f"{w['product_high']:.2f} ({product} {10 ** w['product_low']:.3g} to {10 ** w['product_high']:.3g})"
            + ("" if w["open"] else "; no window: the memory onset lies above the stability boundary there"))
