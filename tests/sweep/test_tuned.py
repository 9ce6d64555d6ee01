"""`sweeper reproduce table1 --budget tuned`: per-unit searches through `submit`, the best configuration
retrained on fresh seeds, the report beside the quick budget; resuming; refused flags."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from sweeper.analysis.reproduce import BUDGETS, EPHEMERAL_HYPER, TASKS, budget_settings, run_config, units
from sweeper.study.toml import to_toml
from sweeper.sweep.tuned import (
    RETRAIN_SEED0,
    SPACES,
    TUNED_BUDGETS,
    Candidate,
    candidates,
    choose_best,
    search_study,
    table1_tuned,
)
from sweeper.tasks import make_task
from tests.helpers.cli import sweeper
from tests.helpers.studies import rows as sql_rows
from tests.helpers.sweep import assert_study_sound

RAY_ENV = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE")
"""Set by `private_ray_env` in the calling process; restored after each test that may set them."""


# ---------------------------------------------------------------------------------------------------
# Choosing the best configuration


def member(config_index: int, seed: int, outcome: str, acc: float | None, lr: float = 1e-2) -> dict:
    return {"config_index": config_index, "seed": seed, "outcome": outcome, "eval_mem_acc": acc, "lr": lr}


def test_candidates_summarize_each_configuration_from_its_members():
    members = [member(1, 0, "stable", 0.5, lr=3e-3), member(0, 0, "stable", 0.2), member(1, 1, "exploded", None, lr=3e-3),
               member(0, 1, "stable", 0.4)]
    c0, c1 = candidates(members, ["lr"])
    assert (c0.config_index, c0.seeds, c0.stable, c0.exploded, c0.clean) == (0, 2, 2, 0, True)
    assert c0.mean == pytest.approx(0.3) and c0.worst == 0.2 and c0.point == {"lr": 1e-2}
    assert (c1.config_index, c1.stable, c1.exploded, c1.clean, c1.mean) == (1, 1, 1, False, 0.5)
    assert c1.point == {"lr": 3e-3}


def test_a_configuration_with_an_exploded_seed_loses_to_a_clean_one_with_less_memory():
    members = [member(0, 0, "stable", 0.3), member(0, 1, "stable", 0.3),
               member(1, 0, "stable", 1.0), member(1, 1, "exploded", None),
               member(2, 0, "stable", 0.9), member(2, 1, "failed", None)]
    assert choose_best(candidates(members, ["lr"])).config_index == 0


def test_ties_go_to_the_higher_worst_seed_then_to_the_configuration_drawn_first():
    same_mean = [member(0, 0, "stable", 0.2), member(0, 1, "stable", 0.6),
                 member(1, 0, "stable", 0.4), member(1, 1, "stable", 0.4)]
    assert choose_best(candidates(same_mean, ["lr"])).config_index == 1
    all_equal = [member(i, s, "stable", 0.5) for i in (3, 1, 2) for s in (0, 1)]
    assert choose_best(candidates(all_equal, ["lr"])).config_index == 1


def test_with_no_clean_configuration_the_fewest_explosions_win_then_memory():
    members = [member(0, 0, "exploded", None), member(0, 1, "exploded", None),
               member(1, 0, "exploded", None), member(1, 1, "stable", 0.2),
               member(2, 0, "stable", 0.6), member(2, 1, "exploded", None)]
    best = choose_best(candidates(members, ["lr"]))
    assert best.config_index == 2 and not best.clean
    assert choose_best([]) is None
    all_exploded = candidates([member(4, 0, "exploded", None), member(5, 0, "exploded", None)], ["lr"])
    assert choose_best(all_exploded).config_index == 4


def test_choose_best_takes_candidates_as_given():
    a = Candidate(0, {"lr": 1.0}, 2, 2, 0, 0.5, 0.5)
    b = Candidate(1, {"lr": 2.0}, 2, 2, 0, 0.7, 0.6)
    assert choose_best([a, b]) is b and choose_best([replace(b, stable=1)]).config_index == 1


# ---------------------------------------------------------------------------------------------------
# The studies


def test_every_unit_searches_with_the_quick_budgets_training_and_a_space_around_its_values():
    settings = budget_settings("quick")
    tasks = [make_task(name, **params) for name, params in TASKS]
    all_units = units(settings, [t.name for t in tasks])
    assert len(all_units) == 24
    budget = TUNED_BUDGETS["tuned"]
    names = set()
    for u in all_units[::7]:  # both models, both tasks, "any" units
        spec = search_study(u, tasks[u.task_index], settings, budget)
        names.add(spec.name)
        run, members = run_config(u.config, u.recurrence, tasks[u.task_index], settings, [0], "cpu")
        assert spec.name == f"table1_tuned_{u.key}"
        assert spec.run.model == run.model and spec.run.train == run.train
        assert spec.run.task.params() == run.task.params() and spec.run.task.name == run.task.name
        assert spec.search.kind == "random" and spec.search.configs == budget.configs
        assert [(o.metric, o.direction) for o in spec.objectives] == [("eval_mem_acc", "maximize")]
        assert spec.execution.eval_batches == settings["eval_batches"] > 0
        assert spec.execution.seeds == tuple(range(budget.search_seeds))
        quick = members[0]
        space = {a.name: a for a in spec.space}
        assert set(space) == set(SPACES[u.config["model"]])
        assert space["lr"].low < quick.lr < space["lr"].high
        assert math.inf in space["clip"].values and min(space["clip"].values) < 1  # quick's clip is inf
        if u.config["model"] == "Ephemeral":
            assert space["plasticity"].low < quick.plasticity < space["plasticity"].high
            assert spec.fixed == {"ratio": EPHEMERAL_HYPER["ratio"], "gamma": EPHEMERAL_HYPER["gamma"]}
        else:
            assert spec.fixed == {"ratio": 0.0} and spec.run.train.grad_clip == 1.0
    assert len(names) == len(all_units[::7]) == 4


def test_the_toml_text_is_what_the_workers_parse():
    import tomllib

    data = {"name": "x", "a": {"b": 1.5, "c": [0.1, math.inf], "d": True, "s": 'q"\\'},
            "space": {"lr": {"low": 1e-05, "high": 1e16}}, "objectives": [{"metric": "m"}, {"metric": "n"}]}
    assert tomllib.loads(to_toml(data)) == data


# ---------------------------------------------------------------------------------------------------
# The smoke table, through submit into a temporary database


@pytest.fixture(scope="module")
def smoke(local_ray, tmp_path_factory):
    """One smoke tuned table into a fresh SQLite file: (url, report)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tuned') / 'tuned.sqlite3'}"
    with pytest.MonkeyPatch.context() as mp:
        for key in RAY_ENV:
            mp.delenv(key, raising=False)
        report = table1_tuned(smoke=True, storage=url)
    return url, report


@pytest.mark.slow
def test_every_units_study_is_complete_in_the_database_and_queryable(smoke, capsys):
    url, report = smoke
    budget = TUNED_BUDGETS["smoke"]
    assert [r["key"] for r in report["rows"]] == list(budget.rows)
    for row in report["rows"]:
        name = row["search"]["study"]
        assert name == f"{budget.prefix}_{row['key']}" and not row["search"]["skipped"]
        assert_study_sound(url, name, configs=budget.configs, seeds=budget.search_seeds)
        code, out, _ = sweeper("trials", name, "--storage", url, "--format", "json", capsys=capsys)
        assert code == 0
        members = json.loads(out)
        assert len(members) == budget.configs * budget.search_seeds
        assert {m["model_kind"] for m in members} == {"rnn" if row["model"] == "RNN" else "ephemeral"}


@pytest.mark.slow
def test_the_best_configuration_is_retrained_on_fresh_seeds_and_rated(smoke):
    from sweeper.db import member_rows, open_db

    url, report = smoke
    budget = TUNED_BUDGETS["smoke"]
    with open_db(url) as db:
        for row in report["rows"]:
            axes = list(SPACES[row["model"]])
            best = choose_best(candidates(member_rows(db, row["search"]["study"]), axes))
            assert row["best"]["config_index"] == best.config_index and row["best"]["point"] == best.point
            tuned = row["tuned"]
            assert [s["seed"] for s in tuned["per_seed"]] == list(range(RETRAIN_SEED0, RETRAIN_SEED0 + budget.seeds))
            assert all(m["lr"] == best.point["lr"] and m["clip"] == best.point["clip"]
                       for m in tuned["config"]["members"])
            assert tuned["config"]["train"]["batches"] == BUDGETS["smoke"]["batches"]
            assert tuned["category"] in ("good", "mixed", "baseline", "explodes")
            assert row["tuned_holds"] == (tuned["category"] == row["expected"])
            assert row["quick"]["category"] in ("good", "mixed", "baseline", "explodes")
            assert row["quick_holds"] == (row["quick"]["category"] == row["expected"])
    assert report["totals"]["units"] == len(report["rows"])
    assert report["totals"]["tuned_units_hold"] == sum(r["tuned_holds"] for r in report["rows"])


@pytest.mark.slow
def test_a_rerun_resumes_without_searching_again_and_reads_the_quick_report(smoke, tmp_path, capsys, monkeypatch):
    from sweeper import jsonio

    url, report = smoke
    packs = sql_rows(url, "SELECT count(*) FROM sw_trials")
    path = tmp_path / "quick.json"
    path.write_text(jsonio.dumps(report["quick"]))
    for key in RAY_ENV:
        monkeypatch.delenv(key, raising=False)
    code, out, err = sweeper("reproduce", "table1", "--budget", "tuned", "--smoke", "--storage", url,
                             "--quick-report", str(path), "--json", capsys=capsys)
    assert code == 0, err
    again = jsonio.from_strict(json.loads(out))
    assert all(r["search"]["skipped"] and r["search"]["ran"] == 0 for r in again["rows"])
    assert sql_rows(url, "SELECT count(*) FROM sw_trials") == packs
    assert [r["best"] for r in again["rows"]] == [r["best"] for r in report["rows"]]
    assert [r["quick"] for r in again["rows"]] == [r["quick"] for r in report["rows"]]
    assert again["quick_source"] == str(path)

    code, out, err = sweeper("reproduce", "table1", "--budget", "tuned", "--smoke", "--storage", url,
                             "--quick-report", str(path), capsys=capsys)
    assert code == 0, err
    for row in report["rows"]:
        assert any(line.startswith(row["task"]) and f" {row['updater']} " in line for line in out.splitlines())
    assert "paper's rating holds: quick" in out and "best configuration: among those" in out

    # other search settings make other studies under the same names: refused before anything trains
    code, out, err = sweeper("reproduce", "table1", "--budget", "tuned", "--smoke", "--configs", "3", "--storage", url,
                             "--quick-report", str(path), capsys=capsys)
    assert code == 2 and out == "" and err.startswith("sweeper: error: study: 'table1_tuned_smoke_key_recall_")
    assert "other search settings" in err
    assert sql_rows(url, "SELECT count(*) FROM sw_trials") == packs


# ---------------------------------------------------------------------------------------------------
# Refused flags: exit 2, the flag named, nothing written


@pytest.mark.parametrize("argv, flag", [
    (["--budget", "tuned", "--configs", "0"], "--configs"),
    (["--budget", "tuned", "--search-seeds", "0"], "--search-seeds"),
    (["--budget", "tuned", "--seeds", "3"], "--seeds"),
    (["--budget", "tuned", "--rows", "eph-dfa-sometimes"], "--rows"),
    (["--budget", "tuned", "--num-cpus", "100000"], "--num-cpus"),
    (["--budget", "tuned", "--device", "cuda"], "--device"),
    (["--budget", "tuned", "--quick-report", "/nonexistent/quick.json"], "--quick-report"),
    (["--budget", "quick", "--smoke"], "--smoke"),
    (["--budget", "quick", "--configs", "4"], "--configs"),
    (["--budget", "full", "--storage", "sqlite:///x.sqlite3"], "--storage"),
    (["--budget", "quick", "--rows", "nothing"], "--rows"),
])
def test_bad_flags_are_refused_naming_the_flag(argv, flag, tmp_path, capsys):
    db = tmp_path / "refused.sqlite3"
    code, out, err = sweeper("reproduce", "table1", *argv, *(["--storage", f"sqlite:///{db}"] if "tuned" in argv else []),
                             capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"sweeper: error: {flag}: ") and len(err.strip().splitlines()) == 1
    assert not db.exists()


def test_a_quick_report_of_another_budget_or_without_the_units_is_refused(tmp_path, capsys):
    db = tmp_path / "refused.sqlite3"
    report = {"table": "table1", "budget": "smoke", "settings": dict(BUDGETS["smoke"]), "rows": []}
    cases = [({**report, "budget": "quick"}, "budget 'quick'"),
             ({**report, "settings": {**BUDGETS["smoke"], "batches": 7}}, "batches"),
             (report, "has no result for key_recall_rnn-bptt-on"),
             ([1, 2], "not a Table 1 report")]
    for i, (content, words) in enumerate(cases):
        path = tmp_path / f"quick{i}.json"
        path.write_text(json.dumps(content))
        code, _, err = sweeper("reproduce", "table1", "--budget", "tuned", "--smoke", "--quick-report", str(path),
                               "--storage", f"sqlite:///{db}", capsys=capsys)
        assert code == 2 and err.startswith("sweeper: error: --quick-report: ") and words in err, err
    assert not db.exists()
