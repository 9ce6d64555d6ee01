"""Spending trials where the stability boundary is: the `frontier` search and the Optuna filter.

    points = propose(db, spec, study_id, k, rng)     # the next pack's k configurations
    flt = BoundaryFilter.open(db, spec, study_id)    # kind = "optuna" with [search] boundary_fit
    flt.predict(point)                               # P(stable) of a proposal, or None (no fit yet)

**Frontier search** (active learning by uncertainty sampling). A full grid spends most of its
configurations far from the boundary, where every seed gives the same answer. Here, for a study of
any model (the ephemeral model or a fast-weight family), with its boundary in the study's plane
(`StudySpec.plane`: (lr, plasticity), (lr, eta), (lr, beta_scale) or the file's `[search] plane`):

1. the first `initial` configurations are a space-filling seed design: the first points of a
   scrambled Sobol sequence over the space (log10 units on log axes), seeded by `search.seed`;
2. every later configuration comes from a fit of the boundary (`boundary.fit_members`, point
   estimate) on the members of packs that have *finished*: among `candidates` random points of the
   space, those the fit finds most uncertain (P(stable) within 0.25 of 0.5, else the 5% closest to
   0.5) are kept, and the one farthest from every configuration already planned (finished, running or
   chosen for this pack) is taken, so the points spread along the line instead of piling on one spot;
   with probability `explore` a point is drawn anywhere instead (a fit can be confidently wrong
   where it has no data);
3. while no fit is possible (one class only, too few members), the Sobol sequence continues.

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

BAND = 0.25
"""Candidates with |P(stable) - 0.5| <= BAND count as on the frontier."""
FALLBACK_QUANTILE = 0.05
"""When none is within BAND, this fraction of the candidates closest to P = 0.5 is used."""


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


def propose(db, spec, study_id: int, k: int, rng: np.random.Generator) -> list[dict[str, float]]:
    """The next `k` configurations of a frontier study (see the module's docstring)."""
    with db.read_session() as s:
        planned = planned_points(s, study_id)
        n0 = len(planned)
        seeded = sobol_points(spec, n0, max(0, min(k, spec.search.initial - n0)))
        if len(seeded) == k:
            return seeded
        payload = current_fit(s, spec, study_id)
    chosen = list(seeded)
    if payload is None:  # no fit yet: keep filling the space
        return chosen + sobol_points(spec, n0 + len(chosen), k - len(chosen))
    fixed = study_values(spec)
    while len(chosen) < k:
        u = rng.random((spec.search.candidates, len(spec.space)))
        candidates = _to_point(spec, u)
        if rng.random() < spec.search.explore:
            chosen.append(candidates[0])
            continue
        p = p_stable(payload, {**fixed, **{a.name: np.array([c[a.name] for c in candidates]) for a in spec.space}})
        gap = np.abs(p - 0.5)
        near = np.flatnonzero(gap <= BAND)
        if near.size == 0:
            near = np.argsort(gap)[: max(1, int(FALLBACK_QUANTILE * gap.size))]
        taken = _to_unit(spec, planned + chosen)
        cu = _to_unit(spec, [candidates[i] for i in near])
        if taken.size:
            spread = np.min(np.linalg.norm(cu[:, None, :] - taken[None, :, :], axis=-1), axis=1)  # (near,)
            best = int(near[int(np.argmax(spread))])
        else:
            best = int(near[int(np.argmin(gap[near]))])
        chosen.append(candidates[best])
    return chosen


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
