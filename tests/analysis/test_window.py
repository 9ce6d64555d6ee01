"""The memory window (`sweeper.analysis.window`), on SQLite and PostgreSQL.

Per cell: the counts of the three outcomes (exploded / stable without memory / stable remembering) and
the fraction remembering, from a population written here whose expected counts are tallied from the
same list. Fitted: a grid with two planted lines of slope -1 (explosion above one, memory above the
other) whose intercepts and distance the two fits and the window must recover; the window's geometry
on hand-made lines; `sweeper boundary` printing both."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from sweeper.analysis.window import memory_window, window_from_counts
from sweeper.db import Member, Outcome, StudyNotFound
from tests.helpers.db import add_study_with_trial

GRID = [(1e-3, 1e2), (1e-3, 1e3), (1e-2, 1e2), (1e-2, 1e3)]
# (cell, outcome, remembers), one entry per member; cell 3 has an unjudged stable member (no evaluation)
MEMBERS = [
    (0, "stable", False), (0, "stable", False), (0, "stable", True), (0, "failed", None),
    (1, "stable", True), (1, "stable", True), (1, "exploded", None), (1, "running", None),
    (2, "exploded", None), (2, "exploded", None), (2, "stopped_early", None),
    (3, "stable", None), (3, "stable", False),
]
LABEL = {("stable", True): "memory", ("stable", False): "no_memory", ("stable", None): "unjudged",
         ("exploded", None): "exploded", ("stopped_early", None): "stopped_early"}


def populate(db, name: str = "grid") -> None:
    with db.session() as s:
        study, trial = add_study_with_trial(s, name=name, spec={})
        for i, (cell, outcome, remembers) in enumerate(MEMBERS):
            lr, plasticity = GRID[cell]
            s.add(Member(trial_id=trial.id, study_id=study.id, pack_index=i, config_index=cell, lr=lr,
                         plasticity=plasticity, ratio=0.1, gamma=0.7, clip=math.inf, seed=i, config={},
                         outcome=Outcome(outcome), remembers=remembers, eval_mem_acc=0.5, baseline=0.125))


def expected() -> dict[tuple[float, float], Counter]:
    want: dict[tuple[float, float], Counter] = {}
    for cell, outcome, remembers in MEMBERS:
        if outcome in ("failed", "running"):
            continue
        tally = want.setdefault(GRID[cell], Counter())
        tally["members"] += 1
        tally[LABEL[outcome, remembers]] += 1
    return want


def test_counts_per_cell_and_the_fraction_remembering(db):
    populate(db)
    window = memory_window(db, "grid")
    assert window.axes == ("lr", "plasticity")  # ratio, gamma and clip do not vary
    want = expected()
    assert [(c.point["lr"], c.point["plasticity"]) for c in window.cells] == sorted(want)
    for c in window.cells:
        tally = want[c.point["lr"], c.point["plasticity"]]
        got = {k: getattr(c, k) for k in ("members", "exploded", "stopped_early", "no_memory", "memory", "unjudged")}
        assert got == {k: tally[k] for k in got}
        assert c.remembers_fraction == tally["memory"] / tally["members"]
        lo, hi = c.remembers_ci95
        assert 0 <= lo <= c.remembers_fraction <= hi <= 1
    assert window.excluded == {"failed": 1, "running": 1}
    assert window.totals() == {k: sum(t[k] for t in want.values())
                               for k in ("members", "exploded", "stopped_early", "no_memory", "memory", "unjudged")}
    text = json.dumps(window.to_dict(), allow_nan=False)  # strict JSON
    second = want[sorted(want)[1]]
    assert json.loads(text)["cells"][1]["remembers_fraction"] == second["memory"] / second["members"]


def test_an_unknown_study_is_refused_naming_the_known_ones(db):
    populate(db)
    with pytest.raises(StudyNotFound, match="known studies.*grid"):
        memory_window(db, "nope")


def test_a_family_study_is_in_cells_of_its_own_axes():
    counts = [({"lr": 1e-3, "eta": 0.5, "lam": 0.9, "clip": math.inf, "plasticity": None}, "stable (memory)", 2),
              ({"lr": 1e-3, "eta": 0.0, "lam": 0.9, "clip": math.inf, "plasticity": None}, "stable (no memory)", 2),
              ({"lr": 1e-3, "eta": 0.0, "lam": 0.9, "clip": math.inf, "plasticity": None}, "failed", 1)]
    window = window_from_counts("fw", counts)
    assert window.axes == ("eta",)
    assert [(c.point, c.memory, c.no_memory) for c in window.cells] == [({"eta": 0.0}, 0, 2), ({"eta": 0.5}, 2, 0)]
    assert window.excluded == {"failed": 1}
    single = window_from_counts("one", [({"lr": 1e-2, "clip": math.inf}, "exploded", 3)])
    assert single.axes == () and single.cells[0].point == {} and single.cells[0].exploded == 3
    assert json.loads(json.dumps(single.to_dict(), allow_nan=False))["cells"][0]["remembers_fraction"] == 0.0


# ---------------------------------------------------------------------------------------------------
# The fitted window: two planted lines of slope -1 in (log10 lr, log10 plasticity)

UPPER, LOWER, SHARP = 1.0, -0.5, 6.0
"""A member explodes with probability sigmoid(SHARP (log10 lr + log10 plasticity - UPPER)); a stable one
remembers with probability sigmoid(SHARP (log10 lr + log10 plasticity - LOWER)): the window is
LOWER < log10(lr * plasticity) < UPPER, 1.5 decades wide at every lr."""
WINDOW_LRS = np.logspace(-3, -1, 6)
WINDOW_PLASTICITIES = np.logspace(1, 4, 8)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def insert_window_study(db, name: str, *, seeds: int = 6, rng_seed: int = 0, judge: bool = True,
                        remember: str = "planted") -> None:
    """A grid study with the planted window; `judge=False`: no member judged (no evaluation);
    `remember="none"`: no stable member remembers."""
    rng = np.random.default_rng(rng_seed)
    with db.session() as s:
        study, trial = add_study_with_trial(s, name=name, spec={})
        i = 0
        for c, (lr, pl) in enumerate((lr, pl) for lr in WINDOW_LRS for pl in WINDOW_PLASTICITIES):
            product = math.log10(lr) + math.log10(pl)
            for seed in range(seeds):
                exploded = rng.random() < sigmoid(SHARP * (product - UPPER))
                remembers = None
                if not exploded and judge:
                    remembers = bool(rng.random() < sigmoid(SHARP * (product - LOWER))) if remember == "planted" else False
                s.add(Member(trial_id=trial.id, study_id=study.id, pack_index=i, config_index=c, lr=float(lr),
                             plasticity=float(pl), ratio=0.1, gamma=0.7, clip=math.inf, seed=seed, config={},
                             outcome=Outcome.EXPLODED if exploded else Outcome.STABLE, remembers=remembers,
                             eval_mem_acc=None if exploded else (0.9 if remembers else 0.12), baseline=0.125,
                             memory_threshold=None if remembers is None else 0.16,
                             eval_mem_positions=None if remembers is None else 240))
                i += 1


@pytest.fixture
def window_db(db):
    insert_window_study(db, "planted")
    return db


def test_both_planted_lines_and_the_window_between_them_are_recovered(window_db):
    from sweeper.analysis.boundary import fit_members, latest_fit, load_members, p_stable
    from sweeper.analysis.window import fit_window

    report = fit_window(window_db, "planted", bootstrap=60)
    p = report.payload
    upper, lower, w = p["boundary"], p["memory"]["boundary"], p["window"]
    assert upper["slope_ci95"][0] <= -1 <= upper["slope_ci95"][1]
    assert upper["intercept_ci95"][0] <= UPPER <= upper["intercept_ci95"][1]
    assert lower["slope_ci95"][0] <= -1 <= lower["slope_ci95"][1]
    assert lower["intercept_ci95"][0] <= LOWER <= lower["intercept_ci95"][1]
    assert (upper["positive_side"], lower["positive_side"]) == ("below", "above")
    assert (w["floor"], w["ceiling"]) == ("memory onset", "stability boundary")
    # The window at the median lr, in the plane and along lr * plasticity; intervals that hold the truth.
    assert w["x_median"] == pytest.approx(10 ** np.median(np.log10(WINDOW_LRS)))
    assert w["width"] == pytest.approx(w["y_high"] - w["y_low"]) and w["open"]
    assert w["width_ci95"][0] <= UPPER - LOWER <= w["width_ci95"][1]
    assert w["product_low_ci95"][0] <= LOWER <= w["product_low_ci95"][1]
    assert w["product_high_ci95"][0] <= UPPER <= w["product_high_ci95"][1]
    assert w["product_high"] - w["product_low"] == pytest.approx(w["width"])
    assert w["product_low"] == pytest.approx(w["x_median_coord"] + w["y_low"])
    assert [e["x"] for e in w["across"]] == pytest.approx([WINDOW_LRS[0], WINDOW_LRS[-1]])
    assert w["bootstrap"] == {"requested": 60, "used": 60} and "log10(lr * plasticity)" in w["definition"]
    # The lower fit: the judged stable members only, remember vs not; each cell's fraction.
    m = p["memory"]["members"]
    assert m["fitted"] == m["remember"] + m["no_memory"] == m["stable"] and m["unjudged"] == 0
    assert sum(c["members"] for c in p["memory"]["cells"]) == m["fitted"]
    assert sum(c["remember"] for c in p["memory"]["cells"]) == m["remember"]
    # Stored as one row: the stability fit exactly as fit_members gives it, with memory and window added.
    stored = latest_fit(window_db, "planted")
    assert stored.id == report.id and stored.payload == p
    alone = fit_members(load_members(window_db, "planted"), bootstrap=60)
    assert {k: v for k, v in p.items() if k not in ("memory", "window")} == alone
    json.dumps(p, allow_nan=False)
    # Each payload scores its own probability: P(stable) high and P(remembers) low well below the window.
    low = {"lr": 1e-3, "plasticity": 10.0}
    assert p_stable(p, low) > 0.9 and p_stable(p["memory"], low) < 0.1


def test_a_study_without_judgement_or_without_memory_gets_the_upper_fit_and_says_why(db):
    from sweeper.analysis.boundary import BoundaryError, fit_members, load_members
    from sweeper.analysis.window import describe, fit_window

    insert_window_study(db, "unjudged", judge=False)
    report = fit_window(db, "unjudged", bootstrap=0, store=False)
    assert report.slope is not None and report.id is None
    assert "no memory judgement" in report.payload["memory"]["skipped"]
    assert report.payload["window"]["skipped"].startswith("no memory onset: ")
    assert describe(report.payload)[0].startswith("memory onset, the window's lower edge: skipped: ")
    insert_window_study(db, "forgetful", remember="none")
    report = fit_window(db, "forgetful", bootstrap=0, store=False)
    assert "none of its" in report.payload["memory"]["skipped"] and "remember" in report.payload["memory"]["skipped"]
    with pytest.raises(BoundaryError, match="at least 5 stable members that remember and 5 that do not"):
        fit_members(load_members(db, "forgetful"), label="remembers")
    with pytest.raises(BoundaryError, match="label: got 'x'"):
        fit_members(load_members(db, "forgetful"), label="x")


def test_the_two_fits_draw_the_same_resamples(window_db):
    """Replicate k of the memory onset is fitted on the judged stable members of the stability fit's
    resample k: refitting one resample by hand gives the stored replicate."""
    from sweeper.analysis.boundary import fit_members, load_members

    members = load_members(window_db, "planted")
    upper = fit_members(members, bootstrap=5, cv=False, seed=3)
    lower = fit_members(members, bootstrap=5, cv=False, seed=3, label="remembers", at=upper["medians"])
    idx = np.random.default_rng(3).integers(0, members.stable.size, members.stable.size)  # the first resample
    first = fit_members(members.subset(idx), bootstrap=0, cv=False, seed=3, label="remembers")
    assert lower["boundary"]["replicates"]["slope"][0] == pytest.approx(first["boundary"]["slope"])
    assert lower["boundary"]["replicates"]["intercept"][0] == pytest.approx(first["boundary"]["intercept"])
    first = fit_members(members.subset(idx), bootstrap=0, cv=False, seed=3)
    assert upper["boundary"]["replicates"]["slope"][0] == pytest.approx(first["boundary"]["slope"])
    assert len(upper["boundary"]["replicates"]["slope"]) == len(lower["boundary"]["replicates"]["slope"]) == 5


def _line_payload(slope: float, intercept: float, side: str, reps=((None, None),), cells=()):
    return {"plane": ["lr", "plasticity"], "medians": {"lr": 1e-2, "plasticity": 100.0}, "limits": {},
            "cells": [{"lr": x, "plasticity": 1.0} for x in cells],
            "boundary": {"slope": slope, "intercept": intercept, "positive_side": side, "others_at_median": {},
                         "replicates": {"slope": [r[0] for r in reps], "intercept": [r[1] for r in reps]}}}


def test_window_between_two_lines_is_exact():
    from sweeper.analysis.window import headline, window_between

    reps_u = [(-1.0, 1.0 + d) for d in np.linspace(-0.2, 0.2, 41)]
    reps_l = [(-2.0, -3.0)] * 40 + [(None, None)]  # one resample without a memory onset: left out of the pairs
    upper = _line_payload(-1.0, 1.0, "below", reps_u, cells=(1e-3, 1e-1))
    lower = _line_payload(-2.0, -3.0, "above", reps_l)
    w = window_between(upper, lower)
    # at lr 1e-2 (X = -2): upper Y = 3, lower Y = 1
    assert (w["y_low"], w["y_high"], w["width"]) == pytest.approx((1.0, 3.0, 2.0))
    assert (w["product_low"], w["product_high"]) == pytest.approx((-1.0, 1.0))
    assert w["bootstrap"] == {"requested": 41, "used": 40}
    d = np.array([r[1] for r in reps_u[:40]]) - 1.0  # the paired resamples' shifts of the upper line
    assert w["y_low_ci95"] == pytest.approx([1.0, 1.0])
    assert w["width_ci95"] == pytest.approx(np.percentile(2.0 + d, [2.5, 97.5]).tolist())
    assert w["product_high_ci95"] == pytest.approx(np.percentile(1.0 + d, [2.5, 97.5]).tolist())
    # width = (-X + 1) - (-2 X - 3) = X + 4: 1 at lr 1e-3, 3 at lr 1e-1; the lines cross at X = -4
    assert [e["x"] for e in w["across"]] == pytest.approx([1e-3, 1e-1])
    assert [e["width"] for e in w["across"]] == pytest.approx([1.0, 3.0])
    assert w["closes_at"]["x_coord"] == pytest.approx(-4.0) and not w["closes_at"]["inside"]
    assert w["closes_at"]["open_towards"] == "larger"
    assert "2.00 decades wide" in headline(w) and "lr * plasticity 0.1 to 10" in headline(w)
    # sides the other way round: the stability boundary is the floor
    flipped = window_between(_line_payload(-1.0, 3.0, "above", reps_u), _line_payload(-1.0, 6.0, "below", reps_l))
    assert (flipped["floor"], flipped["width"]) == ("stability boundary", pytest.approx(3.0))
    same = window_between(_line_payload(-1.0, 3.0, "below"), _line_payload(-1.0, 1.0, "below"))
    assert "both below" in same["skipped"]
    vertical = window_between(_line_payload(None, None, None), lower)
    assert "vertical" in vertical["skipped"]
    closed = window_between(_line_payload(-1.0, 1.0, "below"), _line_payload(-1.0, 2.0, "above"))
    assert closed["width"] == pytest.approx(-1.0) and not closed["open"] and closed["width_ci95"] is None
    assert closed["closes_at"] is None  # parallel lines never cross


def test_cli_boundary_prints_both_lines_and_the_window(window_db, db_url, capsys):
    from tests.helpers.cli import sweeper as run_cli

    code, out, _ = run_cli("boundary", "planted", "--bootstrap", "20", "--no-store", "--storage", db_url, capsys=capsys)
    assert code == 0, out
    for text in ("stability boundary, the window's upper edge", "memory onset, the window's lower edge",
                 "members remember above the line", "window, stable and remembering", "width ",
                 "along lr * plasticity: log10(lr * plasticity) from ", "definition: the window at the median lr",
                 "fraction of the judged stable members that remember; Wilson 95%"):
        assert text in out, text
    code, out, _ = run_cli("boundary", "planted", "--bootstrap", "20", "--json", "--storage", db_url, capsys=capsys)
    data = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    assert data["id"] is not None and data["memory"]["label"] == "remembers" and data["window"]["width"] > 0
    insert_window_study(window_db, "no_eval", judge=False)
    code, out, _ = run_cli("boundary", "no_eval", "--bootstrap", "0", "--no-store", "--storage", db_url, capsys=capsys)
    assert code == 0 and "memory onset, the window's lower edge: skipped: study 'no_eval' has no memory judgement" in out
    assert "window: none without a memory onset" in out and "explosion rate per (lr, plasticity) cell" in out
