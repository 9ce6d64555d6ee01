"""The memory window: whether a stable member remembers (`sweeper.outcomes.judge_memory`), the size of
the evaluation it is judged at (`sweeper.study.memory`), the study setting `[execution] memory_level`,
what Optuna is told, and a tiny study through `sweeper submit` where some members remember and some
do not.

The thresholds are checked against an exact binomial quantile computed here with fractions (no scipy),
and the evaluation sizes against the masks the engines' own evaluation draws."""

from __future__ import annotations

import csv
import io
import math
from fractions import Fraction

import pytest

from sweeper.outcomes import (
    MEMORY_OUTCOMES,
    NO_JUDGEMENT,
    STABLE_MEMORY,
    STABLE_NO_MEMORY,
    Outcome,
    judge_memory,
    memory_outcome,
    memory_threshold,
)
from sweeper.study import StudyError, parse_study, study_from_dict
from sweeper.study.memory import eval_memory_positions, judge_rows, study_memory_positions
from sweeper.sweep.verdict import REMEMBERS_ATTR, judge
from tests.helpers.cli import sweeper
from tests.helpers.studies import rows

# ---------------------------------------------------------------------------------------------------
# The rule


def binomial_quantile(p: Fraction, n: int, level: Fraction) -> int:
    """The smallest k with P(K <= k) >= level for K ~ Binomial(n, p), in exact arithmetic."""
    cdf = Fraction(0)
    for k in range(n + 1):
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if cdf >= level:
            return k
    return n


def tail(p: Fraction, n: int, k: int) -> Fraction:
    """P(K >= k) for K ~ Binomial(n, p)."""
    return sum((math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)), Fraction(0))


CASES = [  # (baseline, n, level)
    (Fraction(1, 9), 320, Fraction(95, 100)),  # key recall over 9 values, 10 batches of 32
    (Fraction(111, 1000), 320, Fraction(95, 100)),
    (Fraction(1, 8), 240, Fraction(95, 100)),  # the Fig. 7 CPU grid: reversal of 8 symbols, 5 x 16 x 3
    (Fraction(1, 2), 16, Fraction(95, 100)),
    (Fraction(1, 2), 16, Fraction(99, 100)),
    (Fraction(3681, 10000), 50, Fraction(9, 10)),
    (Fraction(1, 10), 1, Fraction(95, 100)),
]


@pytest.mark.parametrize("baseline, n, level", CASES)
def test_the_threshold_is_the_exact_binomial_quantile_and_holds_the_level(baseline, n, level):
    k = binomial_quantile(baseline, n, level)
    threshold = memory_threshold(float(baseline), n, float(level))
    assert threshold == pytest.approx(k / n, abs=1e-12)
    # a member without memory is judged to remember with probability at most 1 - level, and the
    # threshold is the lowest that holds it (one position lower would not)
    assert tail(baseline, n, k + 1) <= 1 - level < tail(baseline, n, k)


def test_at_the_threshold_is_no_memory_one_position_above_is_memory():
    n, b = 320, 0.111
    k = binomial_quantile(Fraction(111, 1000), n, Fraction(95, 100))
    at, above = judge_memory("stable", k / n, b, n), judge_memory("stable", (k + 1) / n, b, n)
    assert (at.remembers, above.remembers) == (False, True)
    assert at.threshold == above.threshold == pytest.approx(k / n) and at.positions == n
    # an accuracy averaged over 5 batches of 64 carries rounding: it cannot tip the judgement
    per_batch = [k // 5 + (1 if j < k % 5 else 0) for j in range(5)]
    averaged = sum(c / 64 for c in per_batch) / 5  # k / n up to rounding, whichever way it goes
    assert judge_memory("stable", averaged, b, n).remembers is False
    assert judge_memory("stable", math.nextafter(k / n, 1.0), b, n).remembers is False


def test_the_baseline_itself_is_no_memory_and_a_perfect_score_is_memory():
    for b, n in ((0.111, 320), (0.5, 16), (0.125, 240)):
        assert judge_memory("stable", b, b, n).remembers is False
        assert judge_memory("stable", 1.0, b, n).remembers is True
    assert judge_memory("stable", 0.6875, 0.5, 16).remembers is False  # 11 of 16: within chance at 95%
    assert judge_memory("stable", 0.75, 0.5, 16).remembers is True  # 12 of 16


def test_edge_baselines():
    # nothing a memoryless predictor gets right: one correct memory position is memory
    assert judge_memory("stable", 0.0, 0.0, 10).remembers is False
    assert judge_memory("stable", 0.1, 0.0, 10).remembers is True
    # a baseline of 1 cannot be beaten
    assert judge_memory("stable", 1.0, 1.0, 10).remembers is False


def test_a_higher_level_asks_more():
    assert memory_threshold(0.125, 240, 0.99) > memory_threshold(0.125, 240, 0.95) > memory_threshold(0.125, 240, 0.6)


@pytest.mark.parametrize("outcome", ["exploded", "stopped_early", "failed", "running"])
def test_only_a_stable_member_is_judged(outcome):
    assert judge_memory(outcome, 1.0, 0.125, 240) == NO_JUDGEMENT


@pytest.mark.parametrize("acc, baseline, positions", [
    (None, 0.125, 240), (math.nan, 0.125, 240), (0.9, None, 240), (0.9, math.nan, 240), (0.9, 0.125, None),
    (0.9, 0.125, 0),
])  # fmt: skip
def test_a_stable_member_without_an_evaluation_has_no_judgement(acc, baseline, positions):
    assert judge_memory("stable", acc, baseline, positions) == NO_JUDGEMENT


@pytest.mark.parametrize("level", [0.5, 1.0, 0.3, math.nan])
def test_the_level_is_refused_outside_its_range(level):
    with pytest.raises(ValueError, match=r"level: .*expected a number in \(0.5, 1\)"):
        memory_threshold(0.1, 100, level)


def test_memory_outcome_labels():
    assert memory_outcome("stable", True) == STABLE_MEMORY == "stable (memory)"
    assert memory_outcome(Outcome.STABLE, False) == STABLE_NO_MEMORY == "stable (no memory)"
    assert memory_outcome("stable", None) == "stable"
    assert memory_outcome("exploded", None) == "exploded"
    assert {memory_outcome(o, r) for o in Outcome for r in (None, True, False)} == set(MEMORY_OUTCOMES)


# ---------------------------------------------------------------------------------------------------
# The evaluation's size


def tiny_study(task: str, *, model: str = "depth = 1\nwidth = 8", eval_batches: int = 3, seeds: str = "[3, 7]",
               extra_execution: str = "", train: str = 'updater = "dfa"') -> str:
    return f"""
name = "mem"
[task]
{task}
[model]
{model}
[train]
{train}
batch_size = 4
batches = 2
[search]
kind = "grid"
[[objectives]]
metric = "explosion_rate"
[space.lr]
values = [1e-2]
[execution]
seeds = {seeds}
eval_batches = {eval_batches}
{extra_execution}
"""


@pytest.mark.parametrize("task, per_sequence", [
    ('name = "key_recall"', 1),
    ('name = "associative"', 1),
    ('name = "reversal"\nn = 3\nn_symbols = 9\nrepeats = 2', 6),
])  # fmt: skip
def test_positions_are_batches_times_batch_size_times_memory_positions_per_sequence(task, per_sequence):
    spec = parse_study(tiny_study(task))
    assert study_memory_positions(spec) == {3: 3 * 4 * per_sequence, 7: 3 * 4 * per_sequence}


def test_without_an_evaluation_nothing_is_scored_and_nothing_judged():
    spec = parse_study(tiny_study('name = "key_recall"', eval_batches=0))
    assert study_memory_positions(spec) == {3: 0, 7: 0}
    judged = judge_rows(spec, [{"outcome": "stable", "seed": 3, "eval_mem_acc": 1.0, "baseline": 0.1}])
    assert judged == [NO_JUDGEMENT]


@pytest.mark.parametrize("model, train", [
    ("depth = 1\nwidth = 8", 'updater = "dfa"'),
    ('kind = "fwp"\nd_model = 8\nd_key = 4\nd_value = 4', 'optimizer = "adam"'),
])  # fmt: skip
def test_positions_are_what_the_engines_evaluation_scores(monkeypatch, model, train):
    """Repeated sequences hold a varying number of memory positions: count the masks the engine's own
    `evaluate` draws and compare, per seed, for the ephemeral engine and a family's."""
    from sweeper.tasks import EVAL_STREAM
    from sweeper.tasks.repeated import Repeated

    spec = parse_study(tiny_study('name = "repeated"', model=model, train=train, eval_batches=3))
    want = study_memory_positions(spec)
    seen: dict[int, int] = {}
    original = Repeated.sample

    def recording(self, seeds, batch_index, batch_size, stream=0):
        batch = original(self, seeds, batch_index, batch_size, stream)
        if stream == EVAL_STREAM:
            for seed, n in zip(seeds, batch.memory.sum(axis=(1, 2))):
                seen[int(seed)] = seen.get(int(seed), 0) + int(n)
        return batch

    monkeypatch.setattr(Repeated, "sample", recording)
    if spec.is_family:
        from sweeper.engine.families.population import FamilyPopulation as Pop
    else:
        from sweeper.engine.population import Population as Pop
    Pop(spec.run, spec.hypers({"lr": 1e-2})).evaluate(3)
    assert seen == want
    assert len(set(want.values())) == 2  # the two seeds' evaluations score different numbers of positions


def test_eval_memory_positions_counts_each_seed_once():
    from sweeper.tasks import make_task

    task = make_task("key_recall")
    assert eval_memory_positions(task, [5, 5, 2], 2, 8) == {2: 16, 5: 16}


# ---------------------------------------------------------------------------------------------------
# The study setting


def test_memory_level_defaults_and_round_trips():
    default = parse_study(tiny_study('name = "key_recall"'))
    assert default.execution.memory_level == 0.95
    assert "memory_level" not in default.to_dict()["execution"]  # a study stored without it resumes
    set_ = parse_study(tiny_study('name = "key_recall"', extra_execution="memory_level = 0.99"))
    assert set_.execution.memory_level == 0.99 and set_.to_dict()["execution"]["memory_level"] == 0.99
    assert study_from_dict(set_.to_dict()) == set_
    judged = judge_rows(set_, [{"outcome": "stable", "seed": 3, "eval_mem_acc": 0.5, "baseline": 1 / 9}])[0]
    assert judged.threshold == pytest.approx(memory_threshold(1 / 9, 12, 0.99))


@pytest.mark.parametrize("value", ["0.5", "1", "1.0", "0.2", "2", "nan", "inf", "true", '"0.9"'])
def test_memory_level_is_refused_outside_its_range_naming_the_field(value):
    with pytest.raises(StudyError) as err:
        parse_study(tiny_study('name = "key_recall"', extra_execution=f"memory_level = {value}"), "x.toml")
    assert str(err.value).startswith("x.toml: execution.memory_level: got ")
    assert str(err.value).endswith("expected a number in (0.5, 1)")


def test_submit_refuses_a_bad_memory_level_before_anything_runs(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(tiny_study('name = "key_recall"', extra_execution="memory_level = 1.5"))
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    code, out, err = sweeper("submit", str(path), "--storage", url, "--no-progress", capsys=capsys)
    assert code == 2
    assert err.strip() == f"sweeper: error: {path}: execution.memory_level: got 1.5; expected a number in (0.5, 1)"
    assert not (tmp_path / "db.sqlite3").exists()


# ---------------------------------------------------------------------------------------------------
# What Optuna is told


MAX = [("eval_mem_acc", "maximize")]


def m(outcome, acc=0.5, remembers=None):
    return {"outcome": outcome, "eval_mem_acc": acc, "remembers": remembers}


def test_stable_without_memory_is_feasible_complete_and_says_so():
    v = judge([m("stable", 0.12, False), m("stable", 0.13, False)], MAX)
    assert v.state == "complete" and v.instability == 0 and v.remembers_fraction == 0.0
    assert v.values == [pytest.approx(0.125)] and "0 of 2 seeds remember" in v.reason


def test_the_remembering_fraction_counts_every_seed():
    v = judge([m("stable", 1.0, True), m("stable", 0.2, False), m("exploded", math.nan), m("stopped_early")], MAX)
    assert v.remembers_fraction == 0.25 and v.instability == 0.5 and "1 of 4 seeds remember" in v.reason


def test_without_judgements_there_is_no_fraction():
    assert judge([m("stable", 0.9), m("stable", 0.8)], MAX).remembers_fraction is None
    assert judge([m("exploded"), m("exploded")], MAX).remembers_fraction is None


def test_optuna_hears_the_fraction_as_a_user_attribute_and_the_constraint_unchanged():
    import optuna

    from sweeper.sweep.search import tell
    from sweeper.sweep.verdict import CONSTRAINT

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    told = [judge([m("stable", 0.12, False), m("stable", 0.11, False)], MAX),
            judge([m("stable", 1.0, True), m("exploded", math.nan)], MAX),
            judge([m("stable", 0.9), m("stable", 0.8)], MAX)]
    for verdict in told:
        tell(study, study.ask().number, verdict.as_dict())
    useless, half, unjudged = study.trials
    assert useless.state == half.state == unjudged.state == optuna.trial.TrialState.COMPLETE
    assert useless.user_attrs[REMEMBERS_ATTR] == 0.0 and half.user_attrs[REMEMBERS_ATTR] == 0.5
    assert REMEMBERS_ATTR not in unjudged.user_attrs
    # feasibility stays about stability: stable without memory is feasible, an exploded seed is not
    assert useless.system_attrs[f"constraints:{CONSTRAINT}"] == 0.0
    assert half.system_attrs[f"constraints:{CONSTRAINT}"] == 0.5


# ---------------------------------------------------------------------------------------------------
# A tiny study through `sweeper submit`

WINDOW_STUDY = """
name = "window"
[task]
name = "key_recall"
gap_min = 1
gap_max = 1
n_values = 2
[model]
kind = "fwp"
d_model = 8
d_key = 4
d_value = 4
[train]
optimizer = "adam"
batch_size = 8
batches = 60
metrics_every = 20
[search]
kind = "grid"
[[objectives]]
metric = "eval_mem_acc"
[space.lr]
values = [1e-3, 3e-2, 10.0]
[execution]
seeds = 2
members_per_trial = 6
cpus = 1
report_every = 30
eval_batches = 4
"""
"""fwp on the shortest key recall (one value of two to recall): measured here, lr 1e-3 ends stable at the
baseline, lr 3e-2 recalls every value, lr 10 explodes; one pack, seconds of training."""


@pytest.mark.slow
def test_a_study_where_some_members_remember_and_some_do_not(local_ray, db_url, tmp_path, capsys):
    import optuna

    from sweeper.analysis.window import memory_window
    from sweeper.db import open_db
    from tests.helpers.sweep import assert_study_sound

    path = tmp_path / "window.toml"
    path.write_text(WINDOW_STUDY)
    assert sweeper("submit", str(path), "--storage", db_url, "--no-progress", capsys=capsys)[0] == 0
    assert_study_sound(db_url, "window", configs=3, seeds=2)

    members = rows(db_url, "SELECT m.lr, m.seed, m.outcome, m.eval_mem_acc, m.baseline, m.remembers, "
                           "m.memory_threshold, m.eval_mem_positions FROM sw_members m ORDER BY m.lr, m.seed")
    n = 4 * 8 * 1  # eval batches x batch size x one memory position per key-recall sequence
    for lr, _seed, outcome, acc, baseline, remembers, threshold, positions in members:
        if outcome != "stable":
            assert (remembers, threshold, positions) == (None, None, None)
            continue
        k = binomial_quantile(Fraction(baseline).limit_denominator(1000), n, Fraction(95, 100))
        assert positions == n and threshold == pytest.approx(k / n)
        assert bool(remembers) == (round(float(acc) * n) > k), (lr, acc, k)
    labels = {lr: set() for lr, *_ in members}
    for lr, _s, outcome, _a, _b, remembers, _t, _p in members:
        labels[lr].add(outcome if remembers is None else (STABLE_MEMORY if remembers else STABLE_NO_MEMORY))
    assert labels == {1e-3: {STABLE_NO_MEMORY}, 3e-2: {STABLE_MEMORY}, 10.0: {"exploded"}}, members

    # `sweeper trials` shows the three outcomes; csv and `sweeper export` carry the columns
    code, out, _ = sweeper("trials", "window", "--storage", db_url, capsys=capsys)
    lines = out.splitlines()
    header = lines[0].split()
    assert code == 0 and "memory_outcome" in header and "memory_threshold" in header
    for label in (STABLE_MEMORY, STABLE_NO_MEMORY, "exploded"):
        assert sum(label in line for line in lines[2:-1]) == 2, out
    code, out, _ = sweeper("trials", "window", "--storage", db_url, "--format", "csv",
                           "--filter", "memory_outcome=stable (no memory)", capsys=capsys)
    found = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(r["lr"], r["remembers"]) for r in found] == [("0.001", "False")] * 2
    export = tmp_path / "members.csv"
    assert sweeper("export", "window", "--storage", db_url, "--format", "csv", "-o", str(export), capsys=capsys)[0] == 0
    exported = list(csv.DictReader(export.open()))
    assert sorted(r["memory_outcome"] for r in exported) == sorted(
        [STABLE_NO_MEMORY] * 2 + [STABLE_MEMORY] * 2 + ["exploded"] * 2)

    # Optuna: the useless configuration is COMPLETE and feasible with remembers_fraction 0
    study = optuna.load_study(study_name="sweeper/window", storage=db_url)
    by_lr = {t.params["lr"]: t for t in study.trials}
    assert by_lr[1e-3].state.name == by_lr[3e-2].state.name == "COMPLETE" and by_lr[10.0].state.name == "FAIL"
    assert by_lr[1e-3].user_attrs[REMEMBERS_ATTR] == 0.0 and by_lr[3e-2].user_attrs[REMEMBERS_ATTR] == 1.0
    assert REMEMBERS_ATTR not in by_lr[10.0].user_attrs
    assert by_lr[1e-3].system_attrs["constraints:instability"] == 0.0

    # the window analysis counts the same members
    db = open_db(db_url)
    try:
        window = memory_window(db, "window")
    finally:
        db.dispose()
    assert window.axes == ("lr",)
    assert [(c.point["lr"], c.exploded, c.no_memory, c.memory) for c in window.cells] == [
        (1e-3, 0, 2, 0), (3e-2, 0, 0, 2), (10.0, 2, 0, 0)]
