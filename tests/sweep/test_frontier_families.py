"""The frontier search and the boundary filter for the fast-weight families: each in its study's own
plane ((lr, beta_scale) for fwp, (lr, eta) for fastweights by default); and, for any model, how the
proposer places points beside its line (`fit_line`, `beside`) and the study-file keys that steer it.

Studies are synthetic (`tests.helpers.synthetic.make_study(kind=...)`, a planted boundary
log10 y = -log10 lr - 2), written into SQLite and PostgreSQL; only the end-to-end study, marked slow,
starts Ray.
"""

from __future__ import annotations

import numpy as np
import pytest

from sweeper.analysis.boundary import fit_boundary
from sweeper.study import StudyError, parse_study
from tests.helpers.synthetic import FAMILY_INTERCEPT, FAMILY_SLOPE, make_study

LR = (10**-3.5, 1e-1)
Y = {"fwp": "beta_scale", "fastweights": "eta"}
MODELS = {
    "fwp": '[model]\nkind = "fwp"\nd_model = 8\nd_key = 4\nd_value = 4\nrule = "delta"\nphi = "identity"\n',
    "fastweights": '[model]\nkind = "fastweights"\nhidden = 8\n',
}


def family_study(kind: str, search: str, *, space: str | None = None, model: str | None = None, name: str = "f") -> str:
    y = Y[kind]
    space = space or (f"[space.lr]\nlow = {LR[0]!r}\nhigh = {LR[1]!r}\nlog = true\n"
                      f"[space.{y}]\nlow = 0.1\nhigh = 10.0\nlog = true\n")
    return f"""
name = "{name}"
[task]
name = "key_recall"
{model or MODELS[kind]}
[train]
optimizer = "adam"
batch_size = 4
batches = 30
[search]
{search}
[[objectives]]
metric = "explosion_rate"
{space}
[fixed]
clip = 1.0
[execution]
seeds = 2
members_per_trial = 4
eval_batches = 1
"""


def distance(points, y: str) -> np.ndarray:
    """Each point's distance (in decades of y) from the planted line."""
    return np.array([abs(np.log10(p[y]) - FAMILY_SLOPE * np.log10(p["lr"]) - FAMILY_INTERCEPT) for p in points])


# ---------------------------------------------------------------------------------------------------
# The proposer


@pytest.mark.parametrize("kind", ["fwp", "fastweights"])
def test_frontier_proposes_points_near_a_planted_family_boundary(db, kind):
    from sweeper.sweep.frontier import propose, study_values

    y = Y[kind]
    spec = parse_study(family_study(kind, 'kind = "frontier"\nconfigs = 40\ninitial = 1\nexplore = 0.0'))
    assert spec.plane == ("lr", y)
    assert set(study_values(spec)) == {"lr", y, "lambda", "clip"} and study_values(spec)["clip"] == 1.0
    study_id = make_study(db, f"live_{kind}", members=500, steps=1, seed=7, kind=kind)
    points = propose(db, spec, study_id, 13, np.random.default_rng(0))
    assert len(points) == 13 and all(set(p) == {"lr", y} for p in points)
    near = points[1:]  # the first is the seed design's (the synthetic study planned none)
    lr = np.array([p["lr"] for p in near])
    ys = np.array([p[y] for p in near])
    assert np.all((LR[0] <= lr) & (lr <= LR[1])) and np.all((0.1 <= ys) & (ys <= 10.0))
    uniform = np.random.default_rng(1)
    box = [{"lr": 10 ** uniform.uniform(-3.5, -1), y: 10 ** uniform.uniform(-1, 1)} for _ in range(4000)]
    # beside the line (at most about 0.6 decades of y from it here), not anywhere in the box
    assert np.mean(distance(near, y) <= 0.6) >= 0.9 and np.mean(distance(box, y) <= 0.6) < 0.5
    above = np.log10(ys) > FAMILY_SLOPE * np.log10(lr) + FAMILY_INTERCEPT
    assert 4 <= above.sum() <= 8  # on both sides of it
    assert np.ptp(np.log10(lr)) > 0.8  # spread along the line, not piled on one spot


# ---------------------------------------------------------------------------------------------------
# Placing points beside the line (any model)


EPHEMERAL = """
name = "e"
[task]
name = "reversal"
n = 3
[model]
depth = 1
width = 16
[train]
batches = 20
[search]
kind = "frontier"
configs = 24
{search}
[[objectives]]
metric = "explosion_rate"
[space.lr]
low = 1e-3
high = 1e-1
log = true
[space.plasticity]
low = 10.0
high = 1e4
log = true
[execution]
seeds = 2
members_per_trial = 4
eval_batches = 1
"""


def planted_members(spec, n: int = 300, seed: int = 0):
    """Members of random configurations of `spec`'s space, stable exactly below the line u_y = 0.8 - 0.6 u_x
    of the unit square (u = the space's unit coordinates)."""
    from sweeper.analysis.boundary import Members
    from sweeper.sweep.frontier import _to_point

    u = np.random.default_rng(seed).random((n, 2))
    points = _to_point(spec, u)
    stable = u[:, 1] < 0.8 - 0.6 * u[:, 0]
    hypers = {a: np.array([p[a] for p in points]) for a in ("lr", "plasticity")}
    hypers |= {"ratio": np.full(n, 0.1), "gamma": np.full(n, 0.7), "clip": np.full(n, np.inf)}
    return Members("planted", 0, hypers, stable, np.where(stable, "stable", "exploded").astype(object),
                   np.arange(n), {}, "ephemeral", ("lr", "plasticity"))


def test_fit_line_finds_the_line_the_outcomes_bracket():
    from sweeper.sweep.frontier import fit_line

    spec = parse_study(EPHEMERAL.format(search=""))
    line = fit_line(spec, planted_members(spec))
    ux = np.linspace(0, 1, 11)
    on = np.column_stack([ux, 0.8 - 0.6 * ux])  # the planted line
    assert np.max(np.abs(line.distance(on))) < 0.03
    assert line.distance(np.array([[0.1, 0.1]]))[0] > 0 > line.distance(np.array([[0.9, 0.9]]))[0]  # stable side +
    one_class = planted_members(spec)
    one_class = one_class.subset(one_class.stable)
    assert fit_line(spec, one_class) is None


@pytest.mark.parametrize("share", [0.5, 1 / 3])
def test_points_bracket_the_line_along_its_length_closing_in(share):
    from sweeper.sweep.frontier import NEAR, TOLERANCE, Line, beside

    spec = parse_study(EPHEMERAL.format(search=f"explore = 0.0\noffset = 0.2\nmin_offset = 0.05\nstable_share = {share}"))
    line = Line(0.8, np.array([-0.6, -1.0]), (0, 1))  # stable below u_y = 0.8 - 0.6 u_x
    from sweeper.sweep.frontier import _to_unit

    points = beside(spec, line, [], 18, np.random.default_rng(0))
    u = _to_unit(spec, points)
    d, t = line.distance(u), line.position(u)
    assert np.all(np.abs(d) <= 0.2 * (1 + TOLERANCE)) and np.all(np.abs(d) >= 0.05 * (1 - TOLERANCE))
    assert np.abs(d[-4:]).mean() < 0.6 * np.abs(d[:4]).mean()  # the brackets close in
    assert (d > 0).sum() == pytest.approx(share * 18, abs=1)  # the stable side's share
    assert np.all(np.abs(d) <= NEAR * 0.2)
    ends = line.position(np.array([[0.0, 0.8], [1.0, 0.2]]))  # where the line enters and leaves the square
    for side in (d > 0, d <= 0):  # each side spread over the whole line, its first two points far apart
        assert np.ptp(t[side]) > 0.8 * abs(ends[1] - ends[0])
        assert abs(t[side][1] - t[side][0]) > 0.5 * abs(ends[1] - ends[0])


@pytest.mark.parametrize("search, field", [
    ("offset = 0.0", "search.offset"),
    ("offset = 0.6", "search.offset"),
    ("offset = 0.1\nmin_offset = 0.2", "search.min_offset"),
    ("stable_share = 1.0", "search.stable_share"),
    ("stable_share = 0", "search.stable_share"),
])  # fmt: skip
def test_bad_placement_keys_are_refused(search, field):
    with pytest.raises(StudyError) as err:
        parse_study(EPHEMERAL.format(search=search))
    assert err.value.field == field


def test_placement_keys_are_frontier_only_and_stored_only_when_set():
    from sweeper.study import study_from_dict

    with pytest.raises(StudyError) as err:
        parse_study(EPHEMERAL.format(search="offset = 0.1").replace('kind = "frontier"', 'kind = "random"'))
    assert err.value.field == "search.offset"
    default = parse_study(EPHEMERAL.format(search=""))
    assert (default.search.offset, default.search.min_offset, default.search.stable_share) == (0.25, 0.08, 0.5)
    assert not {"offset", "min_offset", "stable_share"} & set(default.to_dict()["search"])  # as stored before
    set_ = parse_study(EPHEMERAL.format(search="offset = 0.05\nstable_share = 0.3"))
    assert set_.search.min_offset == 0.05  # at most offset
    stored = set_.to_dict()["search"]
    assert (stored["offset"], stored["min_offset"], stored["stable_share"]) == (0.05, 0.05, 0.3)
    assert study_from_dict({**set_.to_dict(), "path": None}).search == set_.search


# ---------------------------------------------------------------------------------------------------
# The Optuna filter: a family's stored fit, and fits it cannot use


@pytest.fixture
def fitted(db):
    make_study(db, "fwp_fit", members=600, steps=1, seed=8, kind="fwp")
    fit_boundary(db, "fwp_fit", bootstrap=0)
    make_study(db, "eph_fit", members=600, steps=1, seed=8)
    fit_boundary(db, "eph_fit", bootstrap=0)
    return db


def test_a_family_fit_filters_its_own_models_proposals(fitted):
    import optuna

    from sweeper.sweep.frontier import BoundaryFilter, check_source
    from sweeper.sweep.search import ask_filtered

    spec = parse_study(family_study("fwp", 'kind = "optuna"\nconfigs = 4\nboundary_fit = "fwp_fit"\nmax_skips = 40'))
    check_source(fitted, spec)  # same model, same plane: accepted
    flt = BoundaryFilter.open(fitted, spec, study_id=0)
    assert flt.predict({"lr": 0.05, "beta_scale": 5.0}) < 0.1 < 0.9 < flt.predict({"lr": 1e-3, "beta_scale": 0.2})
    moved = flt.repair({"lr": 0.05, "beta_scale": 5.0})
    assert 0.5 <= flt.predict(moved) < 0.6 and 0.1 <= moved["beta_scale"] <= 10.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ostudy = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), directions=["minimize"])
    number, point = ask_filtered(ostudy, spec, flt.predict, flt.repair)
    assert flt.predict(point) >= 0.5
    skipped = [t for t in ostudy.trials if t.number != number]
    assert skipped and all(flt.predict(t.params) < 0.5 for t in skipped)
    assert all(t.user_attrs["sweeper_verdict"].startswith("skipped: predicted to explode") for t in skipped)


def test_a_fit_of_another_model_or_plane_is_refused_naming_both(fitted):
    from sweeper.analysis.boundary import BoundaryError
    from sweeper.sweep.frontier import BoundaryFilter, check_source

    other_model = parse_study(family_study("fwp", 'kind = "optuna"\nconfigs = 4\nboundary_fit = "eph_fit"'))
    with pytest.raises(StudyError) as err:
        check_source(fitted, other_model)
    assert err.value.field == "search.boundary_fit"
    assert "'eph_fit' is a study of model ephemeral" in str(err.value) and "this one of model fwp" in str(err.value)
    with pytest.raises(BoundaryError, match="model ephemeral .* model fwp"):
        BoundaryFilter.open(fitted, other_model, study_id=0)

    gated = MODELS["fwp"].replace('"delta"', '"gated_delta"') + 'decay = "constant"\n'
    space = (f"[space.lr]\nlow = {LR[0]!r}\nhigh = {LR[1]!r}\nlog = true\n[space.beta_scale]\nlow = 0.1\nhigh = 10.0\n"
             "[space.lambda]\nvalues = [0.9, 0.99]\n")
    other_plane = parse_study(family_study("fwp", 'kind = "optuna"\nconfigs = 4\nboundary_fit = "fwp_fit"\n'
                                                  'plane = ["lr", "lambda"]', space=space, model=gated))
    with pytest.raises(StudyError) as err:
        check_source(fitted, other_plane)
    message = str(err.value)
    assert "in the (lr, beta_scale) plane" in message and "this study's plane is (lr, lambda)" in message
    assert 'plane = ["lr", "beta_scale"]' in message

    eph = parse_study(family_study("fwp", 'kind = "optuna"\nconfigs = 4\nboundary_fit = "self"'))
    check_source(fitted, eph)  # "self" is always of the study's own model and plane


# ---------------------------------------------------------------------------------------------------
# End to end (Ray)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_fwp_frontier_study_end_to_end(local_ray, tmp_path, db_url):
    import sqlalchemy as sa

    from sweeper.db import Member, Trial, open_db
    from sweeper.sweep.driver import submit

    path = tmp_path / "fwp_frontier.toml"
    path.write_text(family_study("fwp", 'kind = "frontier"\nconfigs = 6\ninitial = 2', name="fwp_frontier"))
    result = submit(str(path), storage=db_url, progress=False)
    assert result.status == "COMPLETE" and sum(result.members.values()) == 6 * 2
    db = open_db(db_url)
    with db.read_session() as s:
        kinds = set(s.scalars(sa.select(Member.model_kind)).all())
        points = [p["point"] for ps in s.scalars(sa.select(Trial.points)).all() for p in ps]
    db.dispose()
    assert kinds == {"fwp"} and len(points) == 6
    assert all(set(p) == {"lr", "beta_scale"} for p in points)
    assert len({(p["lr"], p["beta_scale"]) for p in points}) == 6


# ---------------------------------------------------------------------------------------------------
# On a grid's configurations (num on every axis)


LATTICE = EPHEMERAL.replace("log = true\n", "log = true\nnum = 6\n")


def lattice_members(spec, rows, seeds: int = 2):
    """Members of the lattice configurations `rows` of `spec`, `seeds` each, stable exactly below the line
    u_y = 0.8 - 0.6 u_x of the unit square (u = the lattice's unit coordinates); config_index = position."""
    from sweeper.sweep.frontier import _to_point, lattice

    cells = lattice(spec)[list(rows)]
    points = _to_point(spec, cells)
    stable = np.repeat(cells[:, 1] < 0.8 - 0.6 * cells[:, 0], seeds)
    n = stable.size
    hypers = {a: np.repeat([p[a] for p in points], seeds) for a in ("lr", "plasticity")}
    hypers |= {"ratio": np.full(n, 0.1), "gamma": np.full(n, 0.7), "clip": np.full(n, np.inf)}
    from sweeper.analysis.boundary import Members

    return Members("planted", 0, hypers, stable, np.where(stable, "stable", "exploded").astype(object),
                   np.repeat(np.arange(len(rows)), seeds), {}, "ephemeral", ("lr", "plasticity"))


def test_a_frontier_over_a_grid_parses_and_refuses_what_does_not_apply():
    from sweeper.study import study_from_dict
    from sweeper.study.spec import lattice_size

    spec = parse_study(LATTICE.format(search="explore = 0.0"))
    assert lattice_size(spec.space) == 36 and [len(a.values) for a in spec.space] == [6, 6]
    assert spec.search.offset is None and spec.search.candidates is None  # not stored, so it resumes
    assert study_from_dict({**spec.to_dict(), "path": None}).search == spec.search
    with pytest.raises(StudyError) as err:
        parse_study(LATTICE.format(search="").replace("configs = 24", "configs = 40"))
    assert err.value.field == "search.configs" and "36 configurations to choose from" in str(err.value)
    for key in ("offset = 0.1", "min_offset = 0.05", "stable_share = 0.3", "candidates = 100"):
        with pytest.raises(StudyError) as err:
            parse_study(LATTICE.format(search=key))
        assert err.value.field == f"search.{key.split()[0]}" and "applies to a frontier over ranges" in str(err.value)
    with pytest.raises(StudyError) as err:
        parse_study(LATTICE.format(search="").replace('kind = "frontier"', 'kind = "random"'))
    assert err.value.field == "space.lr.num" and "grid and frontier searches only" in str(err.value)


def proposed_packs(spec, cells, configs: int, per_pack: int) -> list[list[int]]:
    """The packs (rows of `cells`) the lattice proposer gives until `configs` are chosen, every earlier
    pack finished with the planted outcomes of `lattice_members`."""
    from sweeper.sweep.frontier import next_cells

    packs: list[list[int]] = []
    order: list[int] = []
    while len(order) < configs:
        members = lattice_members(spec, order) if order else None
        packs.append(next_cells(spec, cells, order, members, per_pack, np.random.default_rng(len(order))))
        order += packs[-1]
    return packs


def test_lattice_proposals_are_the_grids_configurations_each_once():
    from sweeper.sweep.frontier import _sobol_cells, _to_point, lattice, next_cells

    spec = parse_study(LATTICE.format(search="explore = 0.0"))
    cells = lattice(spec)
    order: list[int] = []
    for chosen in proposed_packs(spec, cells, 36, 2):
        assert len(chosen) == 2 and not set(chosen) & set(order)
        order += chosen
    assert sorted(order) == list(range(36))
    assert order[:4] == _sobol_cells(spec, cells, [], 4)  # the seed design: the Sobol sequence's cells
    assert next_cells(spec, cells, order, lattice_members(spec, order), 2, np.random.default_rng(0)) == []
    grid = parse_study(LATTICE.format(search="").replace('kind = "frontier"', 'kind = "grid"')
                       .replace("configs = 24\n", ""))
    values = {a.name: set(a.values) for a in grid.space}  # the grid study's own points, exactly
    for p in _to_point(spec, cells[order]):
        assert p["lr"] in values["lr"] and p["plasticity"] in values["plasticity"]


def test_lattice_proposals_pin_a_planted_boundary():
    from sweeper.analysis.boundary import fit_members
    from sweeper.sweep.frontier import Line, _sobol_cells, lattice

    spec = parse_study(LATTICE.format(search="explore = 0.0"))
    cells = lattice(spec)
    order = [c for pack in proposed_packs(spec, cells, 16, 1) for c in pack]
    planted = Line(0.8, np.array([-0.6, -1.0]), (0, 1))
    near = np.abs(planted.distance(cells[order[4:16]]))  # after the seed design: beside the line
    assert near.max() <= 2 / 6 and np.median(near) <= 1 / 6  # the cells' spacing is 1/6; at random: 0.22

    def slope(rows):
        return fit_members(lattice_members(spec, rows), bootstrap=0, cv=False)["boundary"]["slope"]

    full = slope(range(36))  # what the whole grid says
    assert abs(slope(order[:16]) - full) < 0.05
    assert abs(slope(order[:12]) - full) < abs(slope(_sobol_cells(spec, cells, [], 12)) - full)


def test_pending_configurations_are_not_proposed_again():
    from sweeper.sweep.frontier import fit_line, lattice, moving_cells

    spec = parse_study(LATTICE.format(search="explore = 0.0"))
    cells = lattice(spec)
    finished = [0, 35, 5, 30, 14, 21]
    members = lattice_members(spec, finished)
    line = fit_line(spec, members)
    first = moving_cells(spec, cells, line, members, finished, 1, np.random.default_rng(0))
    again = moving_cells(spec, cells, line, members, finished + first, 3, np.random.default_rng(0))
    assert len(set(first + again)) == 4 and not set(first + again) & set(finished)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_frontier_over_a_grid_trains_the_grids_own_members(local_ray, tmp_path, db_url):
    """Same configuration and seed, same member: what lets `tools.frontier_seeds --replay` replay the
    proposer on a grid's members instead of training."""
    from sweeper.db import open_db
    from sweeper.sweep.driver import submit
    from tools.frontier_seeds import same_as

    space = (f"[space.lr]\nlow = {LR[0]!r}\nhigh = {LR[1]!r}\nlog = true\nnum = 3\n"
             "[space.beta_scale]\nlow = 0.1\nhigh = 10.0\nlog = true\nnum = 3\n")
    grid, lattice = tmp_path / "grid.toml", tmp_path / "lattice.toml"
    grid.write_text(family_study("fwp", 'kind = "grid"', space=space, name="fwp_grid"))
    lattice.write_text(family_study("fwp", 'kind = "frontier"\nconfigs = 6\ninitial = 2', space=space,
                                    name="fwp_lattice"))
    assert submit(str(grid), storage=db_url, progress=False).status == "COMPLETE"
    result = submit(str(lattice), storage=db_url, progress=False)
    assert result.status == "COMPLETE" and sum(result.members.values()) == 6 * 2
    db = open_db(db_url)
    try:
        assert same_as(db, "fwp_grid", "fwp_lattice") == 6 * 2
    finally:
        db.dispose()
