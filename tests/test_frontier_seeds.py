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

    report = {"grid": {"study": "g", "configs": 36, "members": 144, "member_batches": 400, "errors": 5},
              "study_file": "f.toml", "seeds": [seed(0, None, 18, 0.2), seed(1, 8, 8, 0.3), seed(2, 12, 13, 0.25)]}
    text = format_report(report)
    assert "its own line errs on 5 of its members" in text
    assert "(a) stays inside from at most 12 of 36 configurations: 2 of 3 seeds" in text
    assert "(b) at most 0.25 of the grid's member-batches: 2 of 3 seeds" in text
    assert "than the grid's own line from at most 12 configurations: 1 of 3 seeds" in text
    assert "| 0 | s0 | never | never | 5 | 18 |" in text
