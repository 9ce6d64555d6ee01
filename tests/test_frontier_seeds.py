"""tools/frontier_seeds.straightness: the test that tells a straight boundary from one that is not."""

from __future__ import annotations

import numpy as np

from tools.frontier_seeds import straightness


def outcomes(width_at, n: int = 600, seed: int = 0):
    """Members on a 2-decade x 3-decade box with a straight boundary y = -1.36 x + 0.7 whose transition
    width (in decades of y) is width_at(x)."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-3, -1, n), rng.uniform(1.5, 4.5, n)
    p_stable = 1.0 / (1.0 + np.exp((y - (-1.36 * x + 0.7)) / width_at(x)))
    return x, y, rng.random(n) < p_stable


def test_a_straight_boundary_with_one_width_passes_and_its_slope_is_recovered():
    r = straightness(*outcomes(lambda x: np.full_like(x, 0.15)))
    assert r["members"] == 600 and r["p_value"] > 0.05
    assert abs(r["line_slope"] + 1.36) < 0.15


def test_a_boundary_sharp_at_one_end_and_soft_at_the_other_is_refused_as_one_line():
    r = straightness(*outcomes(lambda x: 0.02 + 0.5 * (x + 3.0) ** 2))  # 0.02 decades at lr 1e-3, 2 at lr 0.1
    assert r["p_value"] < 1e-3 and r["quadratic_gain"] > 15


def test_the_report_counts_seeds_meeting_each_yardstick():
    from tools.frontier_seeds import format_report

    def seed(k, stays, predicts, ratio):
        return {"seed": k, "study": f"s{k}", "first_inside": stays, "stays_inside_from": stays,
                "stays_fraction": None if stays is None else stays / 36, "predicts_from": predicts,
                "errors_on_grid": 5, "grid_errors": 5, "member_batches_ratio": ratio, "slope": -1.3,
                "intercept": 0.7, "spend": {"configs": 24, "members": 96, "member_batches": 100,
                                            "outcomes": {"stable": 50, "exploded": 46}}}

    report = {"grid": {"study": "g", "configs": 36, "members": 144, "member_batches": 400, "errors": 5,
                       "line_of_study_seeds": {"seeds": [0, 1], "members": 72, "slope": -1.18, "intercept": 1.14}},
              "study_file": "f.toml", "seeds": [seed(0, None, 18, 0.2), seed(1, 8, 8, 0.3), seed(2, 12, 13, 0.25)]}
    report["seeds"][1]["batches_to_stay"] = 0.125
    text = format_report(report)
    assert "| 0.300 | 0.125 | -1.300 |" in text and "| 0.200 | - | -1.300 |" in text  # until it stays inside
    assert "the grid's line on its members of seeds 0, 1 alone (72 members): slope -1.180, intercept 1.140" in text
    assert "its own line errs on 5 of its members" in text
    assert "(a) stays inside from at most 12 of 36 configurations: 2 of 3 seeds" in text
    assert "(b) at most 0.25 of the grid's member-batches: 2 of 3 seeds" in text
    assert "than the grid's own line from at most 12 configurations: 1 of 3 seeds" in text
    assert "| 0 | s0 | never | never | 5 | 18 |" in text


# ---------------------------------------------------------------------------------------------------
# --replay: the proposer run on a grid's members


def test_only_a_frontier_whose_members_are_the_grids_is_replayed(tmp_path):
    import pytest

    from sweeper.errors import SweeperError
    from sweeper.study import load_study
    from tools.frontier_seeds import FRONTIER, FRONTIER_WARN, GRID, _replayable, seed_study

    grid = load_study(GRID)
    assert _replayable(seed_study(FRONTIER, 3), grid, FRONTIER).shape == (36, 2)
    with pytest.raises(SweeperError, match="--replay: .* the early warning off"):
        _replayable(seed_study(FRONTIER_WARN, 0), grid, FRONTIER_WARN)
    ranges = tmp_path / "ranges.toml"
    ranges.write_text(open(FRONTIER).read().replace("num = 6\n", ""))
    with pytest.raises(SweeperError, match="over a grid's configurations"):
        _replayable(seed_study(ranges, 0), grid, ranges)
    other = tmp_path / "other.toml"
    other.write_text(open(FRONTIER).read().replace("gamma = 0.7", "gamma = 0.5"))
    with pytest.raises(SweeperError, match=r"the grid's \[fixed\]"):
        _replayable(seed_study(other, 0), grid, other)


def test_a_replay_proposes_as_the_study_would_and_orders_the_grids_members():
    from sweeper.study import parse_study
    from sweeper.sweep.frontier import lattice, next_cells
    from tests.sweep.test_frontier_families import LATTICE, lattice_members
    from tools.frontier_seeds import _in_order, replay_order

    spec = parse_study(LATTICE.format(search="explore = 0.0"))  # 6 x 6, 2 seeds, 2 configurations a pack
    cells = lattice(spec)
    grid = lattice_members(spec, range(36))  # every configuration, config_index = its row
    at_cell = [grid.config_index == c for c in range(36)]
    order = replay_order(spec, cells, at_cell, grid, pending=0)
    assert len(order) == 24 and len(set(order)) == 24
    by_hand: list[int] = []  # pending 0: every earlier pack finished before the next is proposed
    while len(by_hand) < 24:
        done = lattice_members(spec, by_hand) if by_hand else None
        by_hand += next_cells(spec, cells, by_hand, done, 2, np.random.default_rng([0, len(by_hand) // 2]))
    assert order == by_hand
    late = replay_order(spec, cells, at_cell, grid, pending=2)
    assert len(set(late)) == 24 and late[:4] == order[:4]  # the seed design does not wait for outcomes
    members = _in_order(grid, at_cell, order[:5])
    assert members.stable.size == 10 and sorted(set(members.config_index)) == [0, 1, 2, 3, 4]
    assert np.all(members.hypers["lr"][members.config_index == 4] == grid.hypers["lr"][at_cell[order[4]]])


def test_the_replay_report_counts_per_pending_packs():
    from tools.frontier_seeds import format_replay

    rows = [{"pending": p, "seed": k, "stays_inside_from": s, "predicts_from": q, "first_inside": s, "order": []}
            for p, k, s, q in [(0, 0, 8, 9), (0, 1, 12, 13), (1, 0, None, 10), (1, 1, 9, 9)]]
    text = format_replay({"grid": {"study": "g", "configs": 36}, "study_file": "f.toml", "replay": rows})
    assert "| 0 | 2 | 2 of 2 | 10 | 12 | 1 of 2 |" in text
    assert "| 1 | 2 | 1 of 2 | 9 | never | 2 of 2 |" in text
