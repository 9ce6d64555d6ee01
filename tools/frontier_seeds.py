#!/usr/bin/env python
"""The frontier search against the grid, over seeds of the search: when its boundary reaches the grid's
intervals, and what it spends.

    .venv/bin/python -m tools.frontier_seeds --seeds 0-4 --storage URL [--early-warning] [--json FILE]
    .venv/bin/python -m tools.frontier_seeds --replay 0-49 --storage URL      # no training

1. The grid (`studies/fig7_reversal3_grid_cpu.toml`, `--grid`) is submitted unless it is COMPLETE in
   the database already.
2. For every seed k of `--seeds`, a study is derived from the frontier study file (`--study`;
   `studies/fig7_reversal3_frontier_cpu.toml`, or with `--early-warning` its early-warning variant
   `studies/fig7_reversal3_frontier_warn_cpu.toml`) with `[search] seed = k` and the name
   `<file's name>_seed<k>`, and submitted (`sweeper.sweep.driver.submit`; a study already COMPLETE
   is not trained again, so a rerun only prints).
3. Per seed, from the database: where the study's boundary, refitted on its first n configurations,
   first enters and from where it stays inside the grid's 95% intervals (`sweeper.analysis.compare`,
   as `sweeper boundary compare` prints it), from where its line errs on no more of the grid's members
   than the grid's own line does (`predicts_from`), the configurations and members it trained, how
   many of them are the grid's own (`same_as`), and its member-batches (the sum of `steps_done` over
   its members) against the grid's, in all and until it stays inside; and the grid's own line on the
   study's seeds alone, when the study trains fewer seeds than the grid.

4. Whether a straight line with one transition width describes the boundary at all (`straightness`):
   on the grid, on the seeds' studies pooled and on both together, a nearly unregularized logistic
   regression on the plane's log10 coordinates against one with the quadratic terms added (x^2, x*y,
   y^2), compared by a likelihood-ratio test. Where the quadratic fits significantly better, a line's
   slope and intercept depend on where the configurations lie, so two designs (a grid, points beside
   the boundary) estimate different lines from the same boundary.

`--replay SEEDS` trains nothing but the grid: a frontier over the grid's own configurations, with its
seeds and settings, trains the grid's members, so its proposer is run on them instead (`replay`), for
each seed with 0, 1 and 2 packs still running at every proposal, and each order judged as a trained
study is.

Targets (`TARGETS`): the fit stays inside from at most a third of the grid's configurations in every
seed, and, with the early warning, the study spends at most a quarter of the grid's member-batches.
Exit status 0 whether or not they are met (the table says); 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

GRID = "studies/fig7_reversal3_grid_cpu.toml"
FRONTIER = "studies/fig7_reversal3_frontier_cpu.toml"
FRONTIER_WARN = "studies/fig7_reversal3_frontier_warn_cpu.toml"
TARGETS = {"stays_inside_fraction": 1 / 3, "member_batches_ratio": 0.25}
"""(a) stays inside from at most this fraction of the grid's configurations; (b) at most this fraction of
the grid's member-batches (the second is the early-warning variant's target)."""


@dataclass(frozen=True)
class Spend:
    """What a study trained, from its members' rows."""

    configs: int
    """Distinct configurations (config_index) with members."""
    members: int
    outcomes: dict[str, int]
    member_batches: int
    """Sum of steps_done over the members: the batches actually trained."""


@dataclass(frozen=True)
class SeedResult:
    seed: int
    study: str
    first_inside: int | None
    stays_inside_from: int | None
    stays_fraction: float | None
    """stays_inside_from / the grid's configurations."""
    predicts_from: int | None
    """From this many configurations on, every refit's line errs on at most as many of the grid's members
    as the grid's own line (`compare_studies`' `predicts_from`)."""
    errors_on_grid: int
    """The grid's members the study's final line puts on the wrong side."""
    grid_errors: int
    """The grid's members the grid's own line puts on the wrong side (the same in every seed)."""
    spend: Spend
    member_batches_ratio: float
    """member_batches / the grid's member_batches."""
    slope: float | None
    intercept: float | None
    """The study's own fit on all its members."""
    submit_s: float | None
    """Wall time of this run's submit (None: the study was in the database already)."""
    same_as_grid: int = 0
    """Members with a member of the grid at the same hyperparameters and seed that ended the same way
    (outcome and batches trained): the grid's own members, trained again."""
    batches_to_stay: float | None = None
    """Member-batches of the configurations up to `stays_inside_from`, over the grid's: what reaching
    the grid's estimate for good cost (None: never)."""


def parse_seeds(text: str) -> list[int]:
    """"0-4" -> [0, 1, 2, 3, 4]; "0,2,5" -> [0, 2, 5]; ranges and lists mix ("0-2,7")."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if first < 0 or last < first:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected seeds >= 0 as 0-4, 0,2,5 or 0-2,7") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"got {text!r}; each seed may appear once")
    return seeds


def seed_study(path: str | Path, seed: int):
    """The study of the file at `path` with `[search] seed = seed`, named `<name>_seed<seed>`: a StudySpec
    whose source is its own TOML text (what the packs parse on their workers)."""
    from sweeper.study.toml import build_study

    data = tomllib.loads(Path(path).read_text())
    data["name"] = f"{data['name']}_seed{seed}"
    data["search"] = {**data["search"], "seed": seed}
    return build_study(data)


def study_complete(db, name: str) -> bool:
    import sqlalchemy as sa

    from sweeper.db import Study, StudyStatus

    with db.read_session() as s:
        return s.scalar(sa.select(Study.status).where(Study.name == name)) == StudyStatus.COMPLETE


def spend(db, name: str) -> Spend:
    """The configurations, members (by outcome) and member-batches of study `name`."""
    import sqlalchemy as sa

    from sweeper.db import Member
    from sweeper.db.queries import study_id

    with db.read_session() as s:
        sid = study_id(s, db, name)
        rows = s.execute(sa.select(Member.outcome, sa.func.count(), sa.func.sum(Member.steps_done))
                         .where(Member.study_id == sid).group_by(Member.outcome)).all()
        configs = s.scalar(sa.select(sa.func.count(sa.distinct(Member.config_index))).where(Member.study_id == sid))
    outcomes = {o.value: int(n) for o, n, _ in rows}
    return Spend(configs=int(configs or 0), members=sum(outcomes.values()), outcomes=outcomes,
                 member_batches=int(sum(b or 0 for _, _, b in rows)))


def measure(db, grid: str, study: str, seed: int, grid_spend: Spend, submit_s: float | None,
            fitted=None) -> SeedResult:
    """One seed's row: the comparison with the grid (`compare_studies`; `fitted`: the grid's
    `fit_reference`, fitted once for every seed) and the study's spend."""
    from sweeper.analysis.compare import compare_studies

    r = compare_studies(db, grid, study, fitted=fitted)
    own = spend(db, study)
    return SeedResult(seed=seed, study=study, first_inside=r["first_inside"], stays_inside_from=r["stays_inside_from"],
                      stays_fraction=r["fraction_of_reference"], predicts_from=r["predicts_from"],
                      errors_on_grid=r["study_errors_on_reference"], grid_errors=r["reference_errors"], spend=own,
                      member_batches_ratio=own.member_batches / grid_spend.member_batches,
                      slope=r["study"]["slope"], intercept=r["study"]["intercept"], submit_s=submit_s,
                      same_as_grid=same_as(db, grid, study),
                      batches_to_stay=None if r["stays_inside_from"] is None else
                      spent_until(db, study, r["stays_inside_from"]) / grid_spend.member_batches)


def spent_until(db, study: str, configs: int) -> int:
    """Member-batches (sum of steps_done) of the study's first `configs` configurations (config_index order)."""
    import sqlalchemy as sa

    from sweeper.db import Member
    from sweeper.db.queries import study_id

    with db.read_session() as s:
        sid = study_id(s, db, study)
        firsts = s.scalars(sa.select(Member.config_index).where(Member.study_id == sid).distinct()
                           .order_by(Member.config_index).limit(configs)).all()
        return int(s.scalar(sa.select(sa.func.sum(Member.steps_done))
                            .where(Member.study_id == sid, Member.config_index.in_(firsts))) or 0)


def grid_line_of_seeds(db, grid: str, seeds: Sequence[int]) -> dict[str, float] | None:
    """The grid's line fitted on its members of `seeds` alone (slope, intercept), or None when those are
    all its members: what a study training only those seeds of the same configurations converges to."""
    import sqlalchemy as sa

    from sweeper.analysis.boundary import fit_members, load_members
    from sweeper.db import Member
    from sweeper.db.queries import study_id

    members = load_members(db, grid)
    with db.read_session() as s:
        sid = study_id(s, db, grid)
        order = sa.select(Member.seed).where(Member.study_id == sid).order_by(Member.config_index, Member.id)
        member_seeds = np.array(s.scalars(order).all())
    if member_seeds.size != members.stable.size:  # members left out (failed, running): cannot align
        return None
    keep = np.isin(member_seeds, list(seeds))
    if keep.all() or not keep.any():
        return None
    b = fit_members(members.subset(keep), bootstrap=0, cv=False)["boundary"]
    return {"seeds": sorted(int(k) for k in seeds), "members": int(keep.sum()), "slope": b["slope"],
            "intercept": b["intercept"]}


def same_as(db, reference: str, study: str) -> int:
    """How many of `study`'s members have a member of `reference` at the same hyperparameters and seed
    with the same outcome and batches trained."""
    import sqlalchemy as sa

    from sweeper.db import Member
    from sweeper.db.queries import study_id
    from sweeper.sweep.pack import HYPER_COLUMNS

    cols = [getattr(Member, c) for c in HYPER_COLUMNS]
    with db.read_session() as s:
        def rows(name):
            sid = study_id(s, db, name)
            return s.execute(sa.select(*cols, Member.outcome, Member.steps_done).where(Member.study_id == sid)).all()

        ref = {tuple(r[:-2]): tuple(r[-2:]) for r in rows(reference)}
        return sum(1 for r in rows(study) if ref.get(tuple(r[:-2])) == tuple(r[-2:]))


def run(storage: str, seeds: Sequence[int], *, study_path: str, grid_path: str = GRID, num_cpus: int | None = None,
        out=sys.stderr) -> dict[str, Any]:
    """Submit the grid (unless COMPLETE) and each seed's study (resumed or skipped when there), then measure."""
    from sweeper.analysis.compare import fit_reference
    from sweeper.db import open_db
    from sweeper.study import load_study
    from sweeper.sweep.driver import submit

    grid = load_study(grid_path)
    specs = [seed_study(study_path, k) for k in seeds]  # every refusal before anything trains
    db = open_db(_migrated(storage))
    try:
        if not study_complete(db, grid.name):
            print(f"frontier_seeds: submitting {grid.name}", file=out)
            submit(grid_path, storage=storage, num_cpus=num_cpus, progress=False)
        grid_spend = spend(db, grid.name)
        fitted = fit_reference(db, grid.name)
        results = []
        for k, spec in zip(seeds, specs):
            took = None
            if not study_complete(db, spec.name):
                print(f"frontier_seeds: submitting {spec.name}", file=out)
                t0 = time.time()
                submit(spec, storage=storage, num_cpus=num_cpus, progress=False)
                took = time.time() - t0
            results.append(measure(db, grid.name, spec.name, k, grid_spend, took, fitted))
        shape = pooled_straightness(db, grid.name, [s.name for s in specs])
        seeds_line = grid_line_of_seeds(db, grid.name, specs[0].execution.seeds) if specs else None
    finally:
        db.dispose()
    return {"grid": {"study": grid.name, **asdict(grid_spend), "errors": _grid_errors(results),
                     "line_of_study_seeds": seeds_line},
            "study_file": str(study_path),
            "targets": dict(TARGETS), "seeds": [asdict(r) for r in results], "straightness": shape}


REPLAY_PENDING = (0, 1, 2)
"""Packs still running when each proposal is made, replayed: 0 (packs one after another), 1 (two at once,
as on this 2-CPU machine), 2 (three at once)."""


def replay(storage: str, seeds: Sequence[int], *, study_path: str, grid_path: str = GRID,
           num_cpus: int | None = None, pending: Sequence[int] = REPLAY_PENDING, out=sys.stderr) -> dict[str, Any]:
    """The frontier study's proposer for every seed of `seeds`, run against the grid's members instead
    of training (the grid is submitted unless COMPLETE): a frontier over the grid's configurations with
    the grid's seeds and settings trains exactly the grid's members (`same_as_grid` checks it on real
    runs), so its refits are the grid's members in the proposer's order. Each seed is replayed with
    `pending` packs still running at every proposal; the refits are judged as `compare_studies` judges
    a trained study."""
    from sweeper.analysis.compare import fit_reference, refit_curve
    from sweeper.db import open_db
    from sweeper.study import load_study
    from sweeper.sweep.driver import submit
    from sweeper.sweep.frontier import lattice

    grid = load_study(grid_path)
    specs = [seed_study(study_path, k) for k in seeds]
    cells = _replayable(specs[0], grid, study_path)
    db = open_db(_migrated(storage))
    try:
        if not study_complete(db, grid.name):
            print(f"frontier_seeds: submitting {grid.name}", file=out)
            submit(grid_path, storage=storage, num_cpus=num_cpus, progress=False)
        ref_members, ref = fit_reference(db, grid.name)
    finally:
        db.dispose()
    at_cell = _grid_cells(specs[0], cells, ref_members, grid)
    configs = int(np.unique(ref_members.config_index).size)
    rows = []
    for p in pending:
        for spec in specs:
            order = replay_order(spec, lattice(spec), at_cell, ref_members, p)
            r = refit_curve(_in_order(ref_members, at_cell, order), ref, ref_members)
            rows.append({"pending": p, "seed": spec.search.seed, "order": order, "first_inside": r["first_inside"],
                         "stays_inside_from": r["stays_inside_from"], "predicts_from": r["predicts_from"]})
    return {"grid": {"study": grid.name, "configs": configs}, "study_file": str(study_path),
            "targets": dict(TARGETS), "replay": rows}


def _replayable(spec, grid, study_path) -> np.ndarray:
    """The lattice of `spec`, refusing (naming --replay) a study whose members would not be the grid's."""
    from sweeper.errors import SweeperError
    from sweeper.sweep.frontier import lattice

    cells = lattice(spec)
    why = None
    if spec.search.kind != "frontier" or cells is None:
        why = "a frontier over a grid's configurations (num or values on every axis of [space])"
    elif spec.early_warning.enabled:
        why = "the early warning off (it stops members the grid trained to the end)"
    elif tuple(spec.execution.seeds) != tuple(grid.execution.seeds):
        why = f"the grid's seeds ({list(grid.execution.seeds)}), not {list(spec.execution.seeds)}"
    else:
        a, b = spec.to_dict(), grid.to_dict()
        differ = [k for k in ("task", "model", "train", "fixed") if a[k] != b[k]]
        if differ:
            why = f"the grid's {', '.join('[' + k + ']' for k in differ)}"
    if why:
        raise SweeperError(f"--replay: {study_path} must be {why} to be replayed on {grid.name}'s members")
    return cells


def _grid_cells(spec, cells: np.ndarray, members, grid) -> list[np.ndarray]:
    """For each row of `cells`, the mask of the grid's `members` at that configuration (all its seeds)."""
    from sweeper.errors import SweeperError
    from sweeper.sweep.frontier import _to_point

    masks = []
    for point in _to_point(spec, cells):
        mask = np.ones(members.stable.size, dtype=bool)
        for axis, value in point.items():
            mask &= np.isclose(members.hypers[axis], value, rtol=1e-9, atol=0.0)
        if mask.sum() != len(spec.execution.seeds):
            shown = ", ".join(f"{a}={v:g}" for a, v in point.items())
            raise SweeperError(f"--replay: {grid.name} has {int(mask.sum())} finished members at {shown}, not one "
                               f"per seed ({len(spec.execution.seeds)}); is the frontier's grid the grid's?")
        masks.append(mask)
    return masks


def replay_order(spec, cells: np.ndarray, at_cell: Sequence[np.ndarray], members, pending: int) -> list[int]:
    """The rows of `cells` the proposer gives its packs, in order, when each pack's outcomes are the
    grid's members there and `pending` packs are still running at every proposal."""
    from sweeper.sweep.frontier import next_cells

    order: list[int] = []
    packs: list[list[int]] = []
    while len(order) < spec.search.configs:
        k = min(spec.configs_per_trial, spec.search.configs - len(order))
        done = [c for pack in packs[:max(0, len(packs) - pending)] for c in pack]
        finished = None
        if done:
            finished = members.subset(np.logical_or.reduce([at_cell[c] for c in done]))
        chosen = next_cells(spec, cells, order, finished, k, np.random.default_rng([spec.search.seed, len(packs)]))
        if not chosen:
            break
        packs.append(chosen)
        order += chosen
    return order


def _in_order(members, at_cell: Sequence[np.ndarray], order: Sequence[int]):
    """The grid's members at the configurations of `order`, their config_index the position in it."""
    from dataclasses import replace

    index = np.full(members.stable.size, -1)
    for position, c in enumerate(order):
        index[at_cell[c]] = position
    keep = index >= 0
    return replace(members.subset(keep), config_index=index[keep])


def format_replay(report: dict[str, Any]) -> str:
    g, rows = report["grid"], report["replay"]
    a_max = TARGETS["stays_inside_fraction"] * g["configs"]
    lines = [f"replayed on the members of {g['study']} ({g['configs']} configurations): {report['study_file']}", "",
             "| packs still running at each proposal | seeds | stays inside from <= " f"{a_max:g} | median | worst | "
             f"errs on no more than the grid's line from <= {a_max:g} |", "|---|---|---|---|---|---|"]
    for p in sorted({r["pending"] for r in rows}):
        sel = [r for r in rows if r["pending"] == p]
        stays = [r["stays_inside_from"] for r in sel]
        ok = sum(1 for v in stays if v is not None and v <= a_max)
        pred = sum(1 for r in sel if r["predicts_from"] is not None and r["predicts_from"] <= a_max)
        finite = sorted(v for v in stays if v is not None)
        median = "-" if not finite else f"{np.median(finite):g}"
        worst = "never" if None in stays else str(max(stays))
        lines.append(f"| {p} | {len(sel)} | {ok} of {len(sel)} | {median} | {worst} | {pred} of {len(sel)} |")
    return "\n".join(lines)


def _grid_errors(results: Sequence[SeedResult]) -> int | None:
    """The grid's members its own line puts on the wrong side (the same in every seed's comparison)."""
    return None if not results else results[0].grid_errors


def pooled_straightness(db, grid: str, studies: Sequence[str]) -> list[dict[str, Any]]:
    """`straightness` of the grid's members, of the studies' members pooled, and of both together."""
    from sweeper.analysis.boundary import load_members

    loaded = {}  # study -> (log10 x, log10 y, stable) in its plane; each study read once
    for name in (grid, *studies):
        m = load_members(db, name)
        x_axis, y_axis = m.plane
        loaded[name] = (np.log10(m.hypers[x_axis]), np.log10(m.hypers[y_axis]), m.stable)

    out = []
    for label, names in (("grid", [grid]), ("seeds pooled", list(studies)), ("grid and seeds", [grid, *studies])):
        x, y, stable = (np.concatenate([loaded[n][k] for n in names]) for k in range(3))
        out.append({"members_of": label, **straightness(x, y, stable)})
    return out


def straightness(x: np.ndarray, y: np.ndarray, stable: np.ndarray) -> dict[str, Any]:
    """A line (P(stable) logistic in x, y) against a quadratic boundary (x^2, x*y, y^2 added), both
    nearly unregularized: the line's slope dy/dx at P = 0.5, twice the log-likelihood gained by the
    three terms and its chi-square (3 degrees of freedom) p-value."""
    from scipy.stats import chi2
    from sklearn.linear_model import LogisticRegression

    target = np.asarray(stable, dtype=np.int64)

    def loglik(X: np.ndarray):
        Z = (X - X.mean(axis=0)) / X.std(axis=0)
        model = LogisticRegression(C=1e6, max_iter=100_000).fit(Z, target)
        p = np.clip(model.predict_proba(Z)[:, 1], 1e-12, 1 - 1e-12)
        return float(np.sum(target * np.log(p) + (1 - target) * np.log(1 - p))), model, X.std(axis=0)

    line_ll, line_model, scale = loglik(np.column_stack([x, y]))
    quad_ll, _, _ = loglik(np.column_stack([x, y, x * x, x * y, y * y]))
    w = line_model.coef_[0] / scale
    gain = max(0.0, 2.0 * (quad_ll - line_ll))
    return {"members": int(target.size), "line_slope": float(-w[0] / w[1]), "quadratic_gain": gain,
            "p_value": float(chi2.sf(gain, 3))}


def _migrated(storage: str) -> str:
    from sweeper.db import parse_url, upgrade

    url = parse_url(storage)
    upgrade(url)
    return url.render_as_string(hide_password=False)


def format_report(report: dict[str, Any]) -> str:
    """The per-seed table (Markdown) and whether each target holds in every seed."""
    g = report["grid"]
    a_max = TARGETS["stays_inside_fraction"] * g["configs"]
    own = "-" if g.get("errors") is None else g["errors"]
    lines = [f"grid {g['study']}: {g['configs']} configurations, {g['members']} members, "
             f"{g['member_batches']} member-batches; its own line errs on {own} of its members",
             f"frontier: {report['study_file']}", "",
             "| seed | study | first inside | stays inside from | errs on the grid's members (final) | "
             "errs on no more than the grid's line from | configurations | members (stable / exploded / "
             "stopped early) | the grid's own members | member-batches | of the grid's | of the grid's until it stays "
             "inside | slope | intercept |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["seeds"]:
        s, o = r["spend"], r["spend"]["outcomes"]
        stays = "never" if r["stays_inside_from"] is None else (
            f"{r['stays_inside_from']} ({r['stays_fraction']:.2f})")
        lines.append(
            f"| {r['seed']} | {r['study']} | {r['first_inside'] or 'never'} | {stays} | {r['errors_on_grid']} | "
            f"{r['predicts_from'] or 'never'} | {s['configs']} | "
            f"{s['members']} ({o.get('stable', 0)} / {o.get('exploded', 0)} / {o.get('stopped_early', 0)}) | "
            f"{r.get('same_as_grid', 0)} | {s['member_batches']} | {r['member_batches_ratio']:.3f} | "
            f"{_num(r.get('batches_to_stay'))} | {_num(r['slope'])} | {_num(r['intercept'])} |")
    rows = report["seeds"]
    a_ok = sum(1 for r in rows if r["stays_inside_from"] is not None and r["stays_inside_from"] <= a_max)
    b_ok = sum(1 for r in rows if r["member_batches_ratio"] <= TARGETS["member_batches_ratio"])
    lines += ["", f"(a) stays inside from at most {a_max:g} of {g['configs']} configurations: {a_ok} of {len(rows)} "
                  f"seeds", f"(b) at most {TARGETS['member_batches_ratio']:.2f} of the grid's member-batches: "
                  f"{b_ok} of {len(rows)} seeds"]
    p_ok = sum(1 for r in rows if r["predicts_from"] is not None and r["predicts_from"] <= a_max)
    lines.append(f"errs on no more of the grid's members than the grid's own line from at most {a_max:g} "
                 f"configurations: {p_ok} of {len(rows)} seeds")
    if rows:
        worst = max((r["stays_inside_from"] or 10**9) for r in rows)
        lines.append(f"worst seed: stays inside from {'never' if worst == 10**9 else worst}; member-batches "
                     f"{min(r['member_batches_ratio'] for r in rows):.3f} - "
                     f"{max(r['member_batches_ratio'] for r in rows):.3f} of the grid's")
    line = g.get("line_of_study_seeds")
    if line:
        lines.append(f"the grid's line on its members of seeds {', '.join(map(str, line['seeds']))} alone "
                     f"({line['members']} members): slope {_num(line['slope'])}, intercept {_num(line['intercept'])}")
    shape = report.get("straightness") or []
    if shape:
        lines += ["", "Is the boundary one straight line? (logistic line vs quadratic boundary, likelihood-ratio test)", "",
                  "| members of | members | slope of the line | 2 x log-likelihood gained by x^2, x*y, y^2 | p |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['members_of']} | {r['members']} | {r['line_slope']:.3f} | {r['quadratic_gain']:.1f} | "
                  f"{r['p_value']:.2g} |" for r in shape]
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"), help="e.g. 0-4 or 0,3,7 (default 0-4)")
    parser.add_argument("--storage", default=None, help="database URL (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")
    parser.add_argument("--early-warning", action="store_true",
                        help=f"derive the studies from {FRONTIER_WARN} (the frontier with the early warning on)")
    parser.add_argument("--study", default=None, help=f"the frontier study file (default {FRONTIER})")
    parser.add_argument("--grid", default=GRID, help=f"the reference grid study file (default {GRID})")
    parser.add_argument("--num-cpus", default=None, help="CPUs of the private local Ray (default: all)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--replay", type=parse_seeds, default=None, metavar="SEEDS",
                        help="replay the proposer for these seeds (e.g. 0-49) on the grid's members, with 0, 1 and 2 "
                             "packs running at each proposal, instead of training the seeds' studies")
    args = parser.parse_args(argv)
    if args.study and args.early_warning:
        parser.error("--study and --early-warning name the frontier study both; give one")

    from sweeper.db import default_url
    from sweeper.errors import SweeperError
    from sweeper.sweep.local_ray import private_ray_env

    private_ray_env()  # a private Ray on loopback only; before anything imports ray
    study_path = args.study or (FRONTIER_WARN if args.early_warning else FRONTIER)
    try:
        if args.replay is not None:
            report = replay(args.storage or default_url(), args.replay, study_path=study_path, grid_path=args.grid,
                            num_cpus=args.num_cpus)
        else:
            report = run(args.storage or default_url(), args.seeds, study_path=study_path, grid_path=args.grid,
                         num_cpus=args.num_cpus)
    except SweeperError as e:
        print(f"frontier_seeds: error: {e}", file=sys.stderr)
        return 2
    print(format_replay(report) if args.replay is not None else format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
