"""Spending trials where the stability boundary is: the `frontier` search and the Optuna filter.

    points = propose(db, spec, study_id, k, rng)     # the next pack's k configurations
    flt = BoundaryFilter.open(db, spec, study_id)    # kind = "optuna" with [search] boundary_fit
    flt.predict(point)                               # P(stable) of a proposal, or None (no fit yet)

**Frontier search** (active learning for a sharp boundary). A full grid spends most of its
configurations far from the boundary, where every seed gives the same answer. Here, for a study of
any model (the ephemeral model or a fast-weight family), with its boundary in the study's plane
(`StudySpec.plane`: (lr, plasticity), (lr, eta), (lr, beta_scale) or the file's `[search] plane`):

1. the first `initial` configurations are a space-filling seed design: the first points of a
   scrambled Sobol sequence over the space (log10 units on log axes), seeded by `search.seed`;
2. every later configuration is placed beside the line that the outcomes of the packs that have
   *finished* put between stable and unstable (`fit_line`), at a distance `offset` from it in the
   space's unit square, on the side that keeps the points near the line `stable_share` stable (half
   by default: alternately), and as far along the line as possible from the points already beside it
   on that side (finished, running or chosen for this pack): the two ends first, then the gaps. The
   distance shrinks towards `min_offset` as configurations gather near the line
   (offset / sqrt(1 + k / SHRINK_CONFIGS) for k of them), so each end of the line is bracketed ever
   more tightly. With probability `explore` a point is drawn anywhere instead;
3. while no line is possible (the finished members are all stable or all unstable), the Sobol
   sequence continues.

**On a grid's configurations** (`num` or `values` on every axis of [space]: `lattice`), the frontier
chooses among the grid's configurations, each at most once (`propose_on_lattice`): the seed design is
the cells the Sobol sequence falls in, and every later configuration is the one whose outcome,
whichever it turns out to be, moves the line `sweeper boundary` would fit (`boundary.fit_members`'
estimator, on its coordinates) the most (`moving_cells`): for each configuration not yet given to a
pack, the line is refitted with it added once as stable and once as unstable (one member per seed),
its move measured at the plane's two x ends (|change of y| at each, summed), and the smaller of the two
moves is the configuration's score. Configurations of packs still running, and those already chosen
for this pack, count with the outcome the proposer's line predicts for them. Far from the line, the
outcome the line predicts barely moves it, so such a configuration scores low whatever the other
outcome would do; beside the line either outcome moves it, most where it is least pinned (at first,
its ends). Because its members are the grid's (same configurations, same seeds), such a study's line
converges to the grid's own, which a frontier over ranges does not (next paragraph); how many
configurations it needs is measured by `tools/frontier_seeds.py`, and replayed over many seeds on the
grid's own members (`--replay`).

Why beside the line, and why a fit of its own. Where a boundary is sharp (a configuration's seeds
mostly agree, as on the Fig. 7 CPU grid), a configuration says on which side of it it lies, little
more, and the analysis fit (`boundary.fit_members`: logistic regression regularized on standardized
features, what `sweeper boundary` and `boundary compare` report) places its line by the points
nearest to it, its slope moved by where they lie. On outcomes of an exactly straight boundary of
slope -1.36 (4 seeds per configuration, configurations spread along the line on alternate sides),
points 0.05 decades above and below it gave slopes of -1.80 at 12 configurations and -1.42 at 24,
points 0.3 decades from it -1.33 and -1.30, points 0.6 decades from it -1.24 at both. Proposing where
that fit is least sure (P(stable) near 0.5) therefore moves its own estimate from pack to pack;
brackets on both sides along the whole line, closing in, held it somewhat steadier on the Fig. 7
study (not steady enough to stay inside the grid's intervals from 12 configurations in every seed:
docs/findings.md). To place them the
proposer needs the line the outcomes bracket, not the regularized one: a logistic regression nearly
unregularized (C = `PROPOSAL_C`) on the unit-cube coordinates, close to the maximum-margin line when
the outcomes are separable, which needs one stable and one unstable member where the analysis fit
needs five of each. How far this carries on the Fig. 7 study, seed by seed, is measured by
`tools/frontier_seeds.py`.

**Optuna filter.** With `[search] boundary_fit`, a proposal of the sampler whose predicted
P(stable) is below `min_p_stable` is not trained: the driver tells that Optuna trial FAIL with the
reason "skipped: predicted to explode (P(stable)=...)" and asks again, at most `max_skips` times in
a row; then the most stable proposal seen, moved along the fit's gradient until it is predicted
stable (`BoundaryFilter.repair`, within the space's bounds), is trained. Skipped proposals are
Optuna trials only, never members. `boundary_fit = "self"` refits on this study's finished members
at every pack; a study name uses that study's latest stored fit, which must be of the same model's
axes and the same plane (`check_source` refuses another, naming both, before anything runs).

Hyperparameters a study does not search are given to the fit at the study's own values
(`[fixed]`, else the defaults of `Hyper` or of the family's hyperparameters), not at the fitted
study's medians.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from sweeper.analysis.boundary import (
    BoundaryError,
    fit_members,
    latest_fit,
    load_members_by_id,
    p_stable,
    payload_kind,
    payload_plane,
)
from sweeper.study.spec import axes_of

PROPOSAL_C = 100.0
"""Inverse regularization of the proposer's own line (scikit-learn's C): weak, so that for separable
outcomes the line sits midway between the nearest stable and unstable configurations."""
SHRINK_CONFIGS = 2.0
"""With k configurations near the line the distance is max(min_offset, offset / sqrt(1 + k / this))."""
NEAR = 2.0
"""A configuration within NEAR x offset of the line counts as near it (and as one of its side's)."""
TOLERANCE = 1 / 3
"""Candidates within offset x (1 +- TOLERANCE) of the line are the ring a point is chosen from."""


# ---------------------------------------------------------------------------------------------------
# The space as a unit cube


def _to_point(spec, u: np.ndarray) -> list[dict[str, float]]:
    """Rows of `u` (M, D) in [0, 1) -> configurations of the space (D = its axes, in order)."""
    points = [{} for _ in range(u.shape[0])]
    for d, axis in enumerate(spec.space):
        col = u[:, d]
        if axis.values is not None:
            idx = np.minimum((col * len(axis.values)).astype(int), len(axis.values) - 1)
            values = [float(axis.values[i]) for i in idx]
        elif axis.log:
            lo, hi = math.log10(axis.low), math.log10(axis.high)
            values = [min(max(float(10 ** (lo + c * (hi - lo))), axis.low), axis.high) for c in col]
        else:
            values = [float(axis.low + c * (axis.high - axis.low)) for c in col]
        for p, v in zip(points, values):
            p[axis.name] = v
    return points


def _to_unit(spec, points: list[dict[str, float]]) -> np.ndarray:
    """Configurations -> (M, D) coordinates in [0, 1] (the inverse of `_to_point`, up to listed values)."""
    u = np.zeros((len(points), len(spec.space)))
    for d, axis in enumerate(spec.space):
        v = np.array([p[axis.name] for p in points], dtype=np.float64)
        if axis.values is not None:
            ranks = {val: i for i, val in enumerate(axis.values)}
            u[:, d] = [(ranks.get(x, 0) + 0.5) / len(axis.values) for x in v]
        elif axis.log:
            lo, hi = math.log10(axis.low), math.log10(axis.high)
            u[:, d] = (np.log10(v) - lo) / (hi - lo)
        else:
            u[:, d] = (v - axis.low) / (axis.high - axis.low)
    return u


def sobol_points(spec, start: int, count: int) -> list[dict[str, float]]:
    """Points start .. start+count-1 of the study's scrambled Sobol sequence (seeded by search.seed)."""
    from scipy.stats import qmc

    if count <= 0:
        return []
    m = max(1, math.ceil(math.log2(start + count)))
    u = qmc.Sobol(len(spec.space), scramble=True, seed=spec.search.seed).random_base2(m)
    return _to_point(spec, u[start:start + count])


def study_values(spec) -> dict[str, float]:
    """Every axis of the study's model at the study's own value: [fixed], else the default of `Hyper`
    (or of the family's FastWeightsHyper / FWPHyper), by axis name (`lambda`, not `lam`)."""
    from sweeper.config import Hyper
    from sweeper.study.runfile import FAMILY_HYPERS

    h = FAMILY_HYPERS[spec.kind].from_axes(spec.fixed) if spec.is_family else Hyper(**spec.fixed)
    return {a: float(getattr(h, "lam" if a == "lambda" else a)) for a in axes_of(spec.kind)}


# ---------------------------------------------------------------------------------------------------
# The proposer


def planned_points(session, study_id: int) -> list[dict[str, float]]:
    """Every configuration already given to a pack of the study (finished, running or waiting)."""
    import sqlalchemy as sa

    from sweeper.db import Trial

    rows = session.scalars(sa.select(Trial.points).where(Trial.study_id == study_id).order_by(Trial.number)).all()
    return [p["point"] for points in rows if points for p in points if isinstance(p, dict) and "point" in p]


def current_fit(session, spec, study_id: int) -> dict | None:
    """The boundary fitted on the members of the study's finished packs, or None if none is possible."""
    members = load_members_by_id(session, study_id, finished_trials_only=True)
    try:
        return fit_members(members, bootstrap=0, cv=False, seed=spec.search.seed)
    except BoundaryError:
        return None


@dataclass(frozen=True)
class Line:
    """The proposer's boundary: P(stable) = sigmoid(b + w . u) over the space's unit cube u (D axes, in
    the order of `spec.space`), and its line in the unit square of the plane's two axes."""

    b: float
    w: np.ndarray
    """(D,)"""
    plane: tuple[int, int]
    """Indices of the plane's x and y axes in `spec.space`."""

    @property
    def _wp(self) -> np.ndarray:
        return self.w[list(self.plane)]  # (2,)

    def distance(self, u: np.ndarray) -> np.ndarray:
        """(M, D) unit coordinates -> (M,) signed distance from the line in the plane's unit square
        (positive on the stable side); the other axes move the line, as the fit says."""
        return (self.b + u @ self.w) / np.linalg.norm(self._wp)

    def position(self, u: np.ndarray) -> np.ndarray:
        """(M, D) -> (M,) position along the line (the projection onto its direction in the plane)."""
        wp = self._wp / np.linalg.norm(self._wp)
        return u[:, list(self.plane)] @ np.array([-wp[1], wp[0]])


def fit_line(spec, members) -> Line | None:
    """The line the outcomes of `members` (`boundary.Members`) bracket: a nearly unregularized logistic
    regression (C = PROPOSAL_C) of stable on the unit-cube coordinates of their configurations. None when
    the members are all of one class, or when the plane's axes carry no weight."""
    if members.stable.size == 0 or members.stable.all() or not members.stable.any():
        return None
    from sklearn.linear_model import LogisticRegression

    points = [{a.name: float(members.hypers[a.name][i]) for a in spec.space} for i in range(members.stable.size)]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = _to_unit(spec, points)  # (N, D)
    keep = ~np.isnan(u).any(axis=1)
    u, stable = np.clip(u[keep], 0.0, 1.0), members.stable[keep]  # a value beyond the space: at its edge
    if stable.all() or not stable.any():
        return None
    model = LogisticRegression(C=PROPOSAL_C, max_iter=10_000).fit(u, stable.astype(np.int64))
    names = [a.name for a in spec.space]
    line = Line(float(model.intercept_[0]), model.coef_[0].astype(np.float64),
                (names.index(spec.plane[0]), names.index(spec.plane[1])))
    return line if np.linalg.norm(line._wp) > 1e-9 else None


def propose(db, spec, study_id: int, k: int, rng: np.random.Generator) -> list[dict[str, float]]:
    """The next `k` configurations of a frontier study (see the module's docstring)."""
    cells = lattice(spec)
    if cells is not None:
        return propose_on_lattice(db, spec, study_id, cells, k, rng)
    with db.read_session() as s:
        planned = planned_points(s, study_id)
        n0 = len(planned)
        seeded = sobol_points(spec, n0, max(0, min(k, spec.search.initial - n0)))
        if len(seeded) == k:
            return seeded
        members = load_members_by_id(s, study_id, finished_trials_only=True)
    line = fit_line(spec, members)
    if line is None:  # no line yet: keep filling the space
        return seeded + sobol_points(spec, n0 + len(seeded), k - len(seeded))
    return seeded + beside(spec, line, planned + seeded, k - len(seeded), rng)


def beside(spec, line: Line, planned: list[dict[str, float]], k: int,
           rng: np.random.Generator) -> list[dict[str, float]]:
    """`k` configurations beside `line` (step 2 of the module's docstring), given those `planned` already."""
    search = spec.search
    chosen: list[dict[str, float]] = []
    for _ in range(k):
        candidates = _to_point(spec, rng.random((search.candidates, len(spec.space))))
        if rng.random() < search.explore:
            chosen.append(candidates[0])
            continue
        cu = _to_unit(spec, candidates)
        dc, tc = line.distance(cu), line.position(cu)  # (M,), (M,)
        taken = _to_unit(spec, planned + chosen)
        dt, tt = line.distance(taken), line.position(taken)
        near = np.abs(dt) <= NEAR * search.offset
        offset = max(search.min_offset, search.offset / math.sqrt(1 + near.sum() / SHRINK_CONFIGS))
        n_stable, n_unstable = int(np.sum(near & (dt > 0))), int(np.sum(near & (dt <= 0)))
        side = 1.0 if n_stable < search.stable_share * (n_stable + n_unstable + 1) else -1.0
        ring = np.flatnonzero((np.sign(dc) == side) & (np.abs(np.abs(dc) - offset) <= TOLERANCE * offset))
        if ring.size == 0:  # the line barely crosses the space: the candidates nearest the wanted distance
            ring = np.argsort(np.abs(dc - side * offset))[: max(1, len(candidates) // 100)]
        ref = near & (np.sign(dt) == side)
        if ref.any():
            gap = np.min(np.abs(tc[ring][:, None] - tt[ref][None, :]), axis=1)  # (ring,)
            best = int(ring[int(np.argmax(gap))])
        else:
            best = int(ring[int(rng.integers(ring.size))])
        chosen.append(candidates[best])
    return chosen


# ---------------------------------------------------------------------------------------------------
# The proposer on a grid's configurations


def lattice(spec) -> np.ndarray | None:
    """(M, D) unit coordinates of every configuration of a space whose axes all have finitely many values
    (`num` grid points or listed values), in the grid's order; None when an axis is a continuous range."""
    from sweeper.study.spec import lattice_size

    if lattice_size(spec.space) is None:
        return None
    sizes = [len(a.values) for a in spec.space]
    index = np.array(list(itertools.product(*(range(n) for n in sizes))), dtype=np.float64)  # (M, D)
    return (index + 0.5) / np.array(sizes, dtype=np.float64)


def _cell_ids(spec, cells: np.ndarray, points: list[dict[str, float]]) -> list[int]:
    """The row of `cells` (the lattice) of each of `points`."""
    if not points:
        return []
    u = _to_unit(spec, points)  # (P, D)
    return [int(np.argmin(np.abs(cells - row[None, :]).sum(axis=1))) for row in u]


def propose_on_lattice(db, spec, study_id: int, cells: np.ndarray, k: int,
                       rng: np.random.Generator) -> list[dict[str, float]]:
    """The next `k` configurations of a frontier study whose space is a grid (`cells`: its `lattice`):
    each a grid configuration not given to any pack before (see the module's docstring); fewer when the
    grid runs out."""
    with db.read_session() as s:
        planned = planned_points(s, study_id)
        members = None
        if len(planned) + k > spec.search.initial:
            members = load_members_by_id(s, study_id, finished_trials_only=True)
    return _to_point(spec, cells[next_cells(spec, cells, _cell_ids(spec, cells, planned), members, k, rng)])


def next_cells(spec, cells: np.ndarray, taken: list[int], members, k: int, rng: np.random.Generator) -> list[int]:
    """Rows of `cells` for the next `k` configurations, given the rows `taken` by earlier packs and the
    `members` of those that finished (`boundary.Members`; None before the seed design is done)."""
    chosen = _sobol_cells(spec, cells, taken, max(0, min(k, spec.search.initial - len(taken))))
    line = None if len(chosen) == k or members is None else fit_line(spec, members)
    if line is None:
        return chosen + _sobol_cells(spec, cells, taken + chosen, k - len(chosen))
    return chosen + moving_cells(spec, cells, line, members, taken + chosen, k - len(chosen), rng)


def _sobol_cells(spec, cells: np.ndarray, taken: list[int], count: int) -> list[int]:
    """The grid configurations the study's Sobol sequence falls in, in its order, skipping those taken."""
    from scipy.stats import qmc

    chosen: list[int] = []
    if count <= 0:
        return chosen
    sizes = np.array([len(a.values) for a in spec.space])
    u = qmc.Sobol(len(spec.space), scramble=True, seed=spec.search.seed).random_base2(
        max(6, math.ceil(math.log2(4 * len(cells)))))
    index = np.minimum((u * sizes).astype(int), sizes - 1)  # (S, D) the cell each point falls in
    flat = np.ravel_multi_index(index.T, tuple(sizes))  # the lattice's row of each (itertools.product order)
    seen = set(taken)
    for c in flat:
        if len(chosen) == count:
            break
        if int(c) not in seen:
            seen.add(int(c))
            chosen.append(int(c))
    free = [c for c in range(len(cells)) if c not in seen]  # a sequence that missed cells: the rest in order
    return chosen + free[: count - len(chosen)]


def lattice_coords(spec, cells: np.ndarray) -> np.ndarray:
    """(M, D) the analysis fit's coordinates (`boundary.to_coord`: log10, or log10(1 - lambda), an end
    value one decade beyond the rest) of the lattice's configurations."""
    from sweeper.analysis.boundary import limit_coord, to_coord

    points = _to_point(spec, cells)
    cols = []
    for a in spec.space:
        values = np.array([p[a.name] for p in points])
        cols.append(to_coord(a.name, values, limit_coord(a.name, np.array(a.values))))
    return np.column_stack(cols)


def moving_cells(spec, cells: np.ndarray, line: Line, members, taken: list[int], k: int,
                 rng: np.random.Generator) -> list[int]:
    """`k` grid configurations, none of `taken` (rows of `cells`): each the one whose outcome, whichever
    it turns out to be, moves the analysis fit's line the most (see the module's docstring). Configurations
    given to packs that have not finished, and those chosen here, count with the outcome `line` predicts."""
    X = lattice_coords(spec, cells)  # (M, D)
    if not np.all(np.isfinite(X)):
        X = cells  # an axis without a log scale here: the unit cube, as the proposer's own line
    rows = _cell_ids(spec, cells, [{a.name: float(members.hypers[a.name][i]) for a in spec.space}
                                   for i in range(members.stable.size)])
    known = set(rows)
    xs, ys = [X[r] for r in rows], [int(v) for v in members.stable]
    predicted = (line.b + cells @ line.w) >= 0  # (M,) the proposer's line: stable side
    weight = max(1, len(spec.execution.seeds))  # a configuration is trained once per seed
    for c in taken:
        if c not in known:
            xs += [X[c]] * weight
            ys += [int(predicted[c])] * weight
    ix, iy = line.plane
    x_ends = np.array([X[:, ix].min(), X[:, ix].max()])
    at = np.median(X, axis=0)

    def ends(xa: np.ndarray, ya: np.ndarray) -> np.ndarray | None:
        """The analysis fit's line at the plane's two x ends (y there); None for no line or a vertical one."""
        if ya.min() == ya.max():
            return None
        b, w = _analysis_plane(xa, ya)
        if abs(w[iy]) < 1e-12 * max(1.0, float(np.abs(w).max())):
            return None
        rest = b + sum(w[d] * at[d] for d in range(len(w)) if d not in (ix, iy))
        return -(rest + w[ix] * x_ends) / w[iy]

    chosen: list[int] = []
    for _ in range(k):
        used = set(taken) | set(chosen)
        free = [c for c in range(len(cells)) if c not in used]
        if not free:
            break
        xa, ya = np.array(xs), np.array(ys, dtype=np.int64)
        base = ends(xa, ya)
        if base is None:  # every outcome so far of one class: the configuration nearest the proposer's line
            best = int(free[int(np.argmin(np.abs(line.distance(cells[free]))))])
        elif rng.random() < spec.search.explore:
            best = int(free[rng.integers(len(free))])
        else:
            scores = []
            for c in free:
                moves = []
                for outcome in (1, 0):
                    moved = ends(np.vstack([xa, [X[c]] * weight]), np.concatenate([ya, [outcome] * weight]))
                    moves.append(np.inf if moved is None else float(np.abs(moved - base).sum()))
                scores.append(min(moves))
            best = int(free[int(np.argmax(scores))])
        chosen.append(best)
        xs += [X[best]] * weight
        ys += [int(predicted[best])] * weight
    return chosen


def _analysis_plane(X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The hyperplane (intercept, coef over X's columns) of the estimator `sweeper boundary` fits."""
    from sweeper.analysis.boundary import _estimator, _hyperplane

    return _hyperplane(_estimator("logistic", 0).fit(X, y))


# ---------------------------------------------------------------------------------------------------
# The Optuna filter


@dataclass
class BoundaryFilter:
    """Predicts P(stable) of the sampler's proposals for an Optuna study with `boundary_fit`."""

    spec: object
    study_id: int
    payload: dict | None
    live: bool
    """Refit on the study's own finished members before each pack (boundary_fit = "self")."""

    @classmethod
    def open(cls, db, spec, study_id: int) -> BoundaryFilter | None:
        source = spec.search.boundary_fit
        if source is None:
            return None
        if source == "self":
            return cls(spec, study_id, None, True)
        fit = latest_fit(db, source)
        if fit is None:
            raise BoundaryError(f"study {source!r} has no stored boundary fit; run `sweeper boundary {source}`")
        mismatch = _mismatch(fit.payload, spec)
        if mismatch:
            raise BoundaryError("search.boundary_fit", mismatch)
        _check_features(fit.payload, spec)
        return cls(spec, study_id, fit.payload, False)

    def refresh(self, db) -> None:
        if self.live:
            with db.read_session() as s:
                self.payload = current_fit(s, self.spec, self.study_id)

    def predict(self, point: dict[str, float]) -> float | None:
        if self.payload is None:
            return None
        return float(p_stable(self.payload, {**study_values(self.spec), **point}))

    def repair(self, point: dict[str, float]) -> dict[str, float] | None:
        """The nearest point (in the space's unit cube, along the fit's gradient, within bounds) whose
        P(stable) reaches min_p_stable; None if there is none on that path. Listed-value axes stay."""
        if self.payload is None:
            return None
        spec, threshold = self.spec, self.spec.search.min_p_stable
        movable = np.array([a.values is None for a in spec.space])
        if not movable.any():
            return None
        fixed = study_values(spec)

        def p_at(u: np.ndarray) -> np.ndarray:  # (M, D) unit coordinates -> (M,) P(stable)
            pts = _to_point(spec, np.clip(u, 0.0, 1.0 - 1e-12))
            for q in pts:
                q.update({a.name: point[a.name] for a in spec.space if a.values is not None})
            return p_stable(self.payload, {**fixed, **{a.name: np.array([q[a.name] for q in pts]) for a in spec.space}})

        u0 = _to_unit(spec, [point])[0]
        eps = 1e-3
        probe = np.repeat(u0[None, :], movable.sum(), axis=0)
        probe[np.arange(movable.sum()), np.flatnonzero(movable)] += eps
        grad = np.zeros_like(u0)
        grad[movable] = (p_at(probe) - p_at(u0[None, :])[0]) / eps
        if not np.any(grad):
            return None
        steps = np.linspace(0.0, 2.0, 201)[1:, None] * grad / np.linalg.norm(grad)  # (200, D)
        p = p_at(u0[None, :] + steps)
        ok = np.flatnonzero(p >= threshold)
        if ok.size == 0:
            return None
        moved = _to_point(spec, np.clip(u0[None, :] + steps[ok[0]], 0.0, 1.0 - 1e-12))[0]
        moved.update({a.name: point[a.name] for a in spec.space if a.values is not None})
        return moved


def _mismatch(payload: dict, spec) -> str | None:
    """Why a stored fit cannot filter `spec`'s proposals (another model's axes, or another plane), or None."""
    source, kind, plane = spec.search.boundary_fit, payload_kind(payload), payload_plane(payload)
    if axes_of(kind) != axes_of(spec.kind):
        return (f"study {source!r} is a study of model {kind} (axes {', '.join(axes_of(kind))}), this one of model "
                f"{spec.kind} (axes {', '.join(axes_of(spec.kind))}); a boundary fit filters studies of its own model")
    if plane != spec.plane:
        named = ", ".join(f'"{a}"' for a in plane)
        return (f"the fit of study {source!r} is in the ({', '.join(plane)}) plane, this study's plane is "
                f"({', '.join(spec.plane)}); set [search] plane = [{named}], or use a fit in this study's plane")
    return None


def _check_features(payload: dict, spec) -> None:
    """Every axis the fit uses must be set by the study (searched, fixed or defaulted): always true;
    but warn when the study searches an axis the fit never saw vary (it cannot judge that axis)."""
    unseen = [a.name for a in spec.space if a.name not in payload["features"]]
    if unseen:
        warnings.warn(f"boundary fit of {payload.get('study')!r} did not vary {', '.join(unseen)}; its "
                      "predictions ignore those axes", stacklevel=3)


def check_source(db, spec) -> None:
    """Refuse, before anything runs, a `boundary_fit` naming a study without a stored fit."""
    from sweeper.study import StudyError

    source = spec.search.boundary_fit
    if source in (None, "self"):
        return
    try:
        fit = latest_fit(db, source)
    except BoundaryError as e:
        raise StudyError("search.boundary_fit", e.message, spec.path or "<study>") from None
    if fit is None:
        raise StudyError("search.boundary_fit", f"study {source!r} has no stored boundary fit; run "
                         f"`sweeper boundary {source}` first, or use \"self\"", spec.path or "<study>")
    mismatch = _mismatch(fit.payload, spec)
    if mismatch:
        raise StudyError("search.boundary_fit", mismatch, spec.path or "<study>")
