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
