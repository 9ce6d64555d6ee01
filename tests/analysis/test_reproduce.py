"""Table 1 reproduction: structure of the report and of its printed table (a tiny budget)."""

from __future__ import annotations

import json
import math

import pytest

from sweeper.analysis.reproduce import (
    BUDGETS,
    CONFIGS,
    RULE,
    categorize,
    format_table1,
    select_units,
    t_interval,
    table1,
    units,
)
from sweeper.config import ConfigError


@pytest.fixture(scope="module")
def report():
    return table1(budget="smoke", seeds=2, overrides={"batches": 2})


def test_every_configuration_on_both_tasks(report):
    assert len(CONFIGS) == 10
    keys = {(r["task"], r["id"]) for r in report["rows"]}
    assert keys == {(t, c["id"]) for t in ("key_recall", "reversal") for c in CONFIGS}
    assert len(report["rows"]) == 20


def test_baselines(report):
    base = {r["task"]: r["baseline"] for r in report["rows"]}
    assert base["key_recall"] == pytest.approx(1 / 9)
    assert base["reversal"] == pytest.approx(1 / 8)
    assert {t["name"]: t["baseline"] for t in report["tasks"]} == base


def test_rows_trace_to_config_and_seeds(report):
    for row in report["rows"]:
        assert row["variants"], row["id"]
        for v in row["variants"]:
            cfg = v["config"]
            assert cfg["task"]["name"] == row["task"]
            assert cfg["train"]["updater"] == row["updater"]
            assert cfg["train"]["batches"] == 2 and cfg["train"]["stop_on_explosion"]
            assert cfg["model"]["kind"] == ("rnn" if row["model"] == "RNN" else "ephemeral")
            if row["recurrence"] != "any":
                assert cfg["model"]["recurrence"] == (row["recurrence"] == "on")
            assert [m["seed"] for m in cfg["members"]] == report["seeds"] == [0, 1]
            assert [s["seed"] for s in v["per_seed"]] == [0, 1]
            if row["model"] == "RNN":
                assert cfg["train"]["optimizer"] == "adam" and cfg["train"]["grad_clip"] == 1.0
                assert all(m["ratio"] == 0 for m in cfg["members"])
            else:
                assert cfg["train"]["optimizer"] == "sgd"
                assert all((m["lr"], m["plasticity"], m["ratio"], m["gamma"]) == (1e-2, 1e3, 0.1, 0.7)
                           for m in cfg["members"])
            assert 0 <= v["explosion_rate"] <= 1
            assert v["category"] in ("good", "mixed", "baseline", "explodes")


def test_intervals_contain_mean(report):
    for row in report["rows"]:
        for v in row["variants"]:
            if v["n_evaluated"]:
                assert v["ci_low"] <= v["mem_acc_mean"] <= v["ci_high"]
                assert 0 <= v["ci_low"] and v["ci_high"] <= 1
            else:
                assert v["mem_acc_mean"] is None


def test_json_and_table(report):
    from sweeper import jsonio

    assert json.loads(jsonio.dumps(report))["rows"][0]["id"] == report["rows"][0]["id"]
    text = format_table1(report)
    lines = text.splitlines()
    for row in report["rows"]:
        hits = [l for l in lines if l.startswith(row["task"]) and f" {row['updater']} " in l
                and f" {row['model']} " in f" {l} "]
        assert len(hits) >= 1
    assert sum(l.startswith(("key_recall", "reversal")) for l in lines) == sum(len(r["variants"]) for r in report["rows"])
    assert RULE in text


def test_any_rows_both_settings():
    rep = table1(budget="smoke", seeds=1, overrides={"batches": 1, "any_recurrence": "both", "eval_batches": 0},
                 tasks=[("key_recall", {})])
    by_id = {r["id"]: r for r in rep["rows"]}
    assert len(rep["rows"]) == 10
    for cid in ("rnn-dfa-any", "eph-backprop-any"):
        assert sorted(v["recurrence"] for v in by_id[cid]["variants"]) == [False, True]
    assert "any:on" in format_table1(rep) and "any:off" in format_table1(rep)


def test_rating_rule():
    b = 0.1
    assert categorize([0.9, 0.95, 1.0], 0.0, b)[0] == "good"
    assert categorize([0.1, 0.12, 0.09], 0.0, b)[0] == "baseline"
    assert categorize([0.1, 0.9, 0.1], 0.0, b)[0] == "mixed"
    assert categorize([1.0], 2 / 3, b)[0] == "explodes"
    assert categorize([], 1.0, b)[0] == "explodes"
    mean, lo, hi = t_interval([0.2, 0.4, 0.6])
    assert lo < mean < hi and mean == pytest.approx(0.4)
    assert all(math.isnan(x) for x in t_interval([]))


def test_bad_budget():
    with pytest.raises(ConfigError):
        table1(budget="huge")
    with pytest.raises(ConfigError):
        table1(budget="smoke", overrides={"widht": 3})
    assert set(BUDGETS) >= {"quick", "full"}


def test_units_are_named_once_each_and_the_any_rows_by_their_setting():
    quick = units(BUDGETS["quick"], ["key_recall", "reversal"])
    keys = [u.key for u in quick]
    assert len(keys) == len(set(keys)) == 24
    assert "key_recall_eph-dfa-on" in keys and "reversal_rnn-dfa-any-off" in keys and "reversal_rnn-dfa-any-on" in keys
    hardest = units(BUDGETS["smoke"], ["key_recall"])
    assert [u.key for u in hardest if u.config["recurrence"] == "any"] == ["key_recall_rnn-dfa-any-on",
                                                                           "key_recall_eph-backprop-any-off"]


def test_select_units_by_key_or_configuration_id():
    quick = units(BUDGETS["quick"], ["key_recall", "reversal"])
    assert [u.key for u in select_units(quick, ["eph-backprop-any"])] == [
        "key_recall_eph-backprop-any-off", "key_recall_eph-backprop-any-on",
        "reversal_eph-backprop-any-off", "reversal_eph-backprop-any-on"]
    assert [u.key for u in select_units(quick, ["reversal_rnn-bptt-on", " key_recall_eph-dfa-off"])] == [
        "key_recall_eph-dfa-off", "reversal_rnn-bptt-on"]  # in table order
    assert select_units(quick, None) == quick
    for bad in (["eph-dfa"], [""], ["key_recall_eph-dfa-on-on"]):
        with pytest.raises(ConfigError) as info:
            select_units(quick, bad)
        assert info.value.field == "--rows"


def test_table1_runs_only_the_selected_units():
    rep = table1(budget="smoke", seeds=1, overrides={"batches": 1, "eval_batches": 0},
                 only=["key_recall_eph-dfa-off", "rnn-bptt-on"])
    assert [(r["task"], r["id"]) for r in rep["rows"]] == [
        ("key_recall", "rnn-bptt-on"), ("key_recall", "eph-dfa-off"), ("reversal", "rnn-bptt-on")]
