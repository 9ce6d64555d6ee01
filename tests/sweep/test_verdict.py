"""What Optuna is told about a configuration: exploded -> infeasible or failed, stopped -> pruned."""

import math

import pytest

from sweeper.sweep.verdict import judge

MAX = [("eval_mem_acc", "maximize")]


def m(outcome, acc=0.5):
    return {"outcome": outcome, "eval_mem_acc": acc}


def test_all_stable_is_complete_and_feasible():
    v = judge([m("stable", 0.4), m("stable", 0.6)], MAX)
    assert v.state == "complete" and v.values == [pytest.approx(0.5)] and v.instability == 0


def test_one_exploded_seed_makes_the_configuration_infeasible():
    v = judge([m("stable", 0.9), m("exploded", math.nan)], MAX)
    assert v.state == "complete"
    assert v.values == [pytest.approx(0.9)]  # from the stable seed only: NaN never becomes a value
    assert v.instability == pytest.approx(0.5)  # > 0: Optuna's constraint marks it infeasible


def test_all_exploded_is_fail_never_complete():
    v = judge([m("exploded", math.nan), m("exploded", 0.99)], MAX)
    assert v.state == "fail" and v.values is None


def test_all_stopped_early_is_pruned():
    v = judge([m("stopped_early"), m("stopped_early")], MAX)
    assert v.state == "pruned" and v.values is None


def test_stopped_and_exploded_without_stable_is_fail():
    assert judge([m("stopped_early"), m("exploded")], MAX).state == "fail"


def test_non_finite_objective_is_fail():
    v = judge([m("stable", math.inf)], MAX)
    assert v.state == "fail" and "not finite" in v.reason


def test_failed_members_fail():
    assert judge([{"outcome": "failed"}], MAX).state == "fail"


def test_explosion_rate_objective_is_the_unstable_fraction():
    v = judge([m("stable", 1.0), m("stable", 1.0), m("exploded"), m("stopped_early")],
              [("eval_mem_acc", "maximize"), ("explosion_rate", "minimize")])
    assert v.state == "complete" and v.values == [1.0, 0.5]


def test_no_members_is_fail():
    assert judge([], MAX).state == "fail"
