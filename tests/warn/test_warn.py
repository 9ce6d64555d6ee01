"""Early warning: predictors on synthetic histories, OnlineWarner on a real population (and its
offline replay from the database agreeing with it), the evaluation's figures on synthetic members
inserted through the ORM (SQLite and PostgreSQL), the learned predictor's fit/store/load, the CLI,
and bad input. Expected figures are derived from the constructed members, not copied from a run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from sweeper.config import ConfigError, Hyper
from sweeper.db import Member, MemberMetric, Outcome, StudyStatus
from sweeper.engine.metrics import EVERY_STEP_NAMES, METRIC_NAMES
from sweeper.study.runfile import build_run
from sweeper.warn import LearnedPredictor, OnlineWarner, PredictorError, RatioRule, Settings, is_shadow
from sweeper.warn.carry import precursor_shift, precursors
from sweeper.warn.evaluate import EvalError, evaluate
from sweeper.warn.fit import FitError, fit_predictor
from sweeper.warn.history import History
from sweeper.warn.predictors import SCORE_CAP, LossZScore, load_predictor, make_predictor
from sweeper.warn.traces import load_traces, replay_batches
from tests.helpers.cli import sweeper
from tests.helpers.db import add_study_with_trial

EVERY, BUDGET, GRACE, MIN_STEP = 5, 100, 50, 10


def strict(obj) -> str:
    return json.dumps(obj, allow_nan=False)


# ---------------------------------------------------------------------------------------------------
# Synthetic members: full rows every EVERY batches; the ratio jumps tenfold at `jump` (if any)


@dataclass
class Synth:
    outcome: str
    explode_step: int | None = None
    jump: int | None = None
    lr: float = 1e-2
    plasticity: float = 1e3
    noise: float = 0.0
    seed: int = 0
    onset: int | None = None
    """Stored as explode_onset; from here on the loss is 5 (above the threshold). None: not stored."""

    def rows(self) -> list[tuple[int, dict]]:
        rng = np.random.default_rng(self.seed)
        out = []
        for step in range(0, BUDGET, EVERY):
            ratio = 0.2 * (10.0 if self.jump is not None and step >= self.jump else 1.0) * 10 ** (self.noise * rng.normal())
            after = self.explode_step is not None and step > self.explode_step
            loss = math.nan if after else 2.4 - 0.005 * step + 0.02 * rng.normal()
            if self.onset is not None and not after and step >= self.onset:
                loss = 5.0
            out.append((step, {"loss": loss, "acc": 0.3, "mem_acc": 0.3, "grad_eph": ratio * 3.0, "grad_slow": 3.0,
                               "grad_ratio": ratio, "grad_rms_ratio": 3 * ratio, "w_eph": 0.1, "w_slow": 5.0,
                               "max_logit": 3.0 * (1 + (ratio > 1)) + 0.1 * rng.normal()}))
        if self.explode_step is not None and self.explode_step % EVERY:  # a loss-only row, as the worker keeps
            out.append((self.explode_step, {"loss": 9.0, "acc": 0.0, "mem_acc": 0.0, "max_logit": 1e3}))
        return sorted(out, key=lambda r: r[0])


EXPLODING = [Synth("exploded", 60, jump=30, onset=40), Synth("exploded", 72, jump=30, onset=72),
             Synth("exploded", 80, jump=30, onset=20)]
STABLE = [Synth("stable") for _ in range(4)] + [Synth("stable", jump=50)]


def insert_study(db, name: str, members: list[Synth], *, min_step: int = MIN_STEP) -> list[int]:
    """A finished study with these members (one trial); returns the member ids in order."""
    with db.session() as s:
        spec = {"task": {"name": "key_recall"},
                "train": {"batches": BUDGET, "metrics_every": EVERY, "explode_grace": GRACE},
                "early_warning": {"min_step": min_step}}
        study, trial = add_study_with_trial(s, name=name, status=StudyStatus.COMPLETE, spec=spec)
        ids = []
        for i, m in enumerate(members):
            row = Member(trial_id=trial.id, study_id=study.id, pack_index=i, lr=m.lr, plasticity=m.plasticity,
                         ratio=0.1, gamma=0.7, clip=math.inf, seed=m.seed, config={}, outcome=Outcome(m.outcome),
                         explode_step=m.explode_step, explode_onset=m.onset, steps_done=BUDGET)
            s.add(row)
            s.flush()
            s.add_all(MemberMetric.from_metrics(row.id, step, values) for step, values in m.rows())
            ids.append(row.id)
    return ids


def history_of(m: Synth) -> History:
    h = History(0, {"lr": m.lr, "plasticity": m.plasticity})
    for step, values in m.rows():
        h.append(step, "grad_slow" in values, step == m.explode_step, values)
    return h


# ---------------------------------------------------------------------------------------------------
# Predictors on synthetic histories


def test_ratio_rule_scores_growth_above_flat():
    rule = RatioRule()
    grow, flat = history_of(Synth("exploded", jump=30)).view(), history_of(Synth("stable")).view()
    assert rule.score(grow.upto(25)) == pytest.approx(0.0)
    assert rule.score(grow.upto(35)) == pytest.approx(1.0)  # median of the last 3 rows: one decade up
    assert rule.score(flat) == pytest.approx(0.0)
    assert rule.score(grow) >= rule.threshold > rule.score(flat)
    down = RatioRule(params={"direction": -1})
    assert down.score(grow.upto(35)) == pytest.approx(-1.0)


def test_ratio_rule_nonfinite_scores_the_cap_and_params_are_checked():
    h = History(0)
    h.append(0, True, False, {k: 1.0 for k in METRIC_NAMES})
    h.append(5, True, False, {**{k: 1.0 for k in METRIC_NAMES}, "grad_slow": math.inf, "grad_ratio": 0.0})
    assert RatioRule().score(h.view()) == SCORE_CAP
    assert LossZScore().score(h.view()) < SCORE_CAP  # the loss is finite: no spike
    with pytest.raises(ConfigError, match="early_warning.params.slope"):
        RatioRule(params={"slope": 1})
    with pytest.raises(ConfigError, match="early_warning.params.direction"):
        RatioRule(params={"direction": 0})


def test_loss_zscore_sees_a_spike():
    h = History(0)
    for step in range(0, 100, 5):
        loss = 2.0 + 0.01 * np.sin(step) if step < 90 else 20.0
        h.append(step, True, False, {**{k: 1.0 for k in METRIC_NAMES}, "loss": loss})
    z = LossZScore()
    assert z.score(h.view().upto(85)) < z.threshold <= z.score(h.view())


def test_is_shadow_is_deterministic_and_fraction_shaped():
    keys = [f"study/{c}/{s}" for c in range(200) for s in range(5)]
    assert [is_shadow(k, 0.3) for k in keys] == [is_shadow(k, 0.3) for k in keys]
    assert not any(is_shadow(k, 0.0) for k in keys) and all(is_shadow(k, 1.0) for k in keys)
    assert 0.25 < np.mean([is_shadow(k, 0.3) for k in keys]) < 0.35
    with pytest.raises(ValueError):
        is_shadow("x", 1.5)


# ---------------------------------------------------------------------------------------------------
# OnlineWarner on a real population; the replay from the database agrees


STABLE_HYPER = Hyper(lr=1e-2, plasticity=1e3, seed=0)
EXPLODING_HYPER = Hyper(lr=1e-1, plasticity=1e6, seed=0)


@pytest.fixture(scope="module")
def population_run():
    from sweeper.engine.population import Population

    run = build_run({"name": "key_recall", "gap_min": 1, "gap_max": 3}, {"depth": 1, "width": 32},
                    {"batches": 120, "metrics_every": EVERY, "batch_size": 8, "stop_on_explosion": False})
    pop = Population(run, [STABLE_HYPER, EXPLODING_HYPER])
    warner = OnlineWarner(Settings(min_step=MIN_STEP), RatioRule())
    steps, alarms = [], []
    for m in pop.run():
        steps.append(m)
        alarms.extend(warner.observe(m))
    return run, pop.summaries(), steps, alarms, warner


def test_online_warner_alarms_the_exploding_member_once(population_run):
    _, summaries, _, alarms, warner = population_run
    assert [s.outcome for s in summaries] == ["stable", "exploded"]
    assert [a.member for a in alarms] == [1], "one alarm, for the exploding member only"
    a = alarms[0]
    assert MIN_STEP <= a.step <= summaries[1].explode_step and a.step % EVERY == 0
    assert a.score >= warner.threshold and math.isfinite(a.score)
    json.loads(strict(a.as_dict()))  # strict JSON: non-finite signals are None
    assert set(warner.alarmed) == {1}


def test_replay_from_database_agrees_with_online(population_run, db):
    run, summaries, steps, alarms, _ = population_run
    with db.session() as s:  # store the rows the worker stores: full batches and the explosion batch
        study, trial = add_study_with_trial(s, name="pop", status=StudyStatus.COMPLETE,
                                             spec={"train": {"batches": run.train.batches, "metrics_every": EVERY}})
        for i, (h, summ) in enumerate(zip([STABLE_HYPER, EXPLODING_HYPER], summaries)):
            row = Member(trial_id=trial.id, study_id=study.id, pack_index=i, lr=h.lr, plasticity=h.plasticity,
                         ratio=h.ratio, gamma=h.gamma, clip=h.clip, seed=h.seed, config={},
                         outcome=Outcome(summ.outcome), explode_step=summ.explode_step, steps_done=summ.steps_done)
            s.add(row)
            s.flush()
            for m in steps:
                r = int(np.flatnonzero(m.member == i)[0])
                if m.full or m.exploded[r]:
                    names = METRIC_NAMES if m.full else EVERY_STEP_NAMES
                    s.add(MemberMetric.from_metrics(row.id, m.step, {k: float(getattr(m, k)[r]) for k in names}))
    traces = load_traces(db, "pop")
    replay = OnlineWarner(Settings(min_step=MIN_STEP), RatioRule())
    replayed = [a for m in replay_batches(traces) for a in replay.observe(m)]
    assert [(a.member, a.step) for a in replayed] == [(a.member, a.step) for a in alarms]
    assert [a.score for a in replayed] == pytest.approx([a.score for a in alarms])


# ---------------------------------------------------------------------------------------------------
# Evaluation figures on synthetic members


def test_eval_figures_follow_the_definitions(db):
    insert_study(db, "synth", EXPLODING + STABLE)
    r = evaluate(db, "synth", RatioRule())
    assert r["members"] == {"evaluated": 8, "exploded": 3, "stable": 5, "exploded_after_grace": 3,
                            "exploded_before_min_step": 0, "onset_at_batch_0": 0, "onset_before_min_step": 0,
                            "late_explosions": 0, "onset_estimated": 0, "excluded_trained_on": 0}
    p = r["results"]["predictor"]
    alarm = 35  # the rows at 25, 30, 35: the median of the last three is one decade up at 35
    false_alarm = 55
    explode = [m.explode_step for m in EXPLODING]
    onset = [m.onset for m in EXPLODING]  # 40, 72, 20: the last one's alarm comes after its onset
    assert (p["true_alarms"], p["false_alarms"], p["late_alarms"]) == (3, 1, 1)
    assert p["precision"] == pytest.approx(3 / 4) and p["recall"] == 1.0
    assert p["recall_by_onset"] == pytest.approx(2 / 3)
    assert p["false_stop_rate"] == pytest.approx(1 / 5)
    assert p["median_lead_time"] == float(np.median([o - alarm for o in onset])) == 5.0
    assert p["median_lead_to_detection"] == float(np.median([e - alarm for e in explode]))
    # Of the batches wasted after each onset (budget - onset), a stop after batch 35 saves budget - max(onset, 36).
    assert p["compute_saved"] == pytest.approx(sum(BUDGET - max(o, alarm + 1) for o in onset)
                                               / sum(BUDGET - o for o in onset))
    assert p["compute_saved_of_budget"] == pytest.approx(3 * (BUDGET - alarm - 1) / (3 * BUDGET))
    assert p["compute_saved_beyond_explosion_stop"] == pytest.approx(sum(e - alarm for e in explode)
                                                                     / sum(e + 1 for e in explode))
    assert p["stable_compute_lost"] == pytest.approx((BUDGET - false_alarm - 1) / (5 * BUDGET))
    assert p["auroc"] == pytest.approx((3 * 4 + 3 * 0.5) / 15)  # one stable member ties the exploded ones
    b = r["results"]["baselines"]["explosion_criterion"]
    assert (b["recall"], b["false_stop_rate"], b["median_lead_to_detection"]) == (1.0, 0.0, 0.0)
    # Stopping at the detection is late by detection - onset: 20, 0 and 60 batches.
    assert b["median_lead_time"] == -20.0 and b["late_alarms"] == 2 and b["recall_by_onset"] == pytest.approx(1 / 3)
    assert b["compute_saved"] == pytest.approx(sum(BUDGET - e - 1 for e in explode) / sum(BUDGET - o for o in onset))
    assert b["compute_saved_of_budget"] == pytest.approx(sum(BUDGET - e - 1 for e in explode) / (3 * BUDGET))
    assert p["beats"]["explosion_criterion"]["compute_saved"] is True
    assert set(r["results"]["baselines"]) == {"explosion_criterion", "loss_zscore", "median_rule"}
    assert r["late_onset"] == 100 and r["late_explosions"]["results"] is None  # no onset >= 100
    json.loads(strict(r))

    late = evaluate(db, "synth", RatioRule(), late_onset=50)["late_explosions"]
    assert (late["late_onset"], late["exploded"], late["stable"]) == (50, 1, 5)  # the onset-72 member
    lp = late["results"]["predictor"]
    assert (lp["recall"], lp["median_lead_time"], lp["late_alarms"]) == (1.0, 72.0 - alarm, 0)
    assert lp["compute_saved"] == 1.0 and lp["false_stop_rate"] == pytest.approx(1 / 5)
    assert late["results"]["baselines"]["explosion_criterion"]["median_lead_time"] == 0.0


def test_eval_estimates_missing_onsets_from_the_stored_rows(db):
    """Rows written before the onset was stored: it is estimated by the same rule on the stored rows."""
    from sweeper.warn.traces import onset_from_rows

    steps = np.array([0, 10, 20, 30, 35])
    assert onset_from_rows(steps, [1.0, 3.0, 1.0, 3.0, 4.0], [1.0] * 5, 35, 2.0) == 30
    assert onset_from_rows(steps, [3.0, 3.0, 3.0, 3.0, 4.0], [1.0] * 5, 35, 2.0) == 0  # above from the start
    assert onset_from_rows(steps, [1.0, 1.0, 1.0, 1.0, math.nan], [1.0] * 5, 35, 2.0) == 35  # non-finite at once
    assert onset_from_rows(steps, [1.0, 3.0, 3.0, 1.0, 1.0], [1.0] * 5, 35, 2.0) == 10  # the latest run above
    assert onset_from_rows(steps, [1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, math.inf, 1.0], 35, 2.0) == 30
    old = [Synth("exploded", 60, jump=30, onset=None), *EXPLODING[1:], *STABLE]
    insert_study(db, "old", old)
    traces = load_traces(db, "old")
    assert [(t.explode_onset, t.onset_estimated) for t in traces if t.exploded] == [(0, True), (72, False),
                                                                                    (20, False)]
    assert evaluate(db, "old", RatioRule())["members"]["onset_estimated"] == 1


def test_eval_refuses_studies_it_cannot_judge(db):
    insert_study(db, "calm", STABLE)
    with pytest.raises(EvalError, match="no exploded members"):
        evaluate(db, "calm", RatioRule())
    ids = insert_study(db, "synth", EXPLODING + STABLE)
    fitted_on_all = LearnedPredictor(None, ("log_ratio_now",), 0.5, name="x", payload={"train_member_ids": ids})
    with pytest.raises(EvalError, match="no held-out members"):
        evaluate(db, "synth", fitted_on_all)
    with pytest.raises(PredictorError, match="no predictor 'nope'"):
        load_predictor(db, "nope")


# ---------------------------------------------------------------------------------------------------
# The learned predictor: fit, store, load, evaluate on held-out members, CLI


def noisy(n: int, seed0: int) -> list[Synth]:
    exp = [Synth("exploded", 60 + 5 * (i % 4), jump=25 + 5 * (i % 3), noise=0.05, seed=seed0 + i) for i in range(n)]
    stable = [Synth("stable", noise=0.05, seed=seed0 + 100 + i) for i in range(n)]
    return exp + stable


def test_fit_store_load_and_eval_held_out(db, db_url, capsys):
    train_ids = insert_study(db, "train", noisy(6, 0))
    insert_study(db, "test", noisy(4, 1000))
    report = fit_predictor(db, ["train"], name="lr1", min_step=MIN_STEP)
    assert sorted(report["train_member_ids"]) == sorted(train_ids)
    assert 0.0 <= report["threshold"] <= 1.0 and report["report"]["out_of_fold"]["members"] == 12
    p = load_predictor(db, "lr1")
    assert isinstance(p, LearnedPredictor) and p.predictor_id == report["id"]
    assert load_predictor(db, str(report["id"])).name == "lr1"
    spec = Settings(min_step=MIN_STEP)
    assert make_predictor(_Spec("lr1", 0.7), db).threshold == 0.7
    with pytest.raises(PredictorError, match="needs the\\s+trial database|trial database"):
        make_predictor(_Spec("lr1", None))
    assert isinstance(make_predictor(_Spec("ratio_rule", None)), RatioRule)
    with pytest.raises(EvalError, match="no held-out members"):
        evaluate(db, "train", p)
    r = evaluate(db, "test", p, min_step=spec.min_step)
    assert r["members"]["evaluated"] == 8 and r["predictor"]["name"] == "lr1"
    assert r["results"]["predictor"]["auroc"] >= 0.9
    # carry-over: the fitted members' range and precursors at min_step, compared on the evaluated study
    carry = report["carry"]
    assert carry["range"]["at"] == MIN_STEP and carry["range"]["members"] == 12
    assert set(carry["precursors"]) == set(report["features"])
    assert r["carry"]["outside"]["members"] == 8 and 0.0 <= r["carry"]["outside"]["any"] <= 1.0
    held = load_traces(db, "test")
    assert r["carry"]["precursors"] == precursor_shift(carry["precursors"],
                                                       precursors(held, report["features"], MIN_STEP))
    assert "carry" not in evaluate(db, "test", RatioRule(), min_step=spec.min_step)  # a rule is not fitted
    with pytest.raises(FitError, match="stored already"):
        fit_predictor(db, ["train"], name="lr1")

    code, out, err = sweeper("warn", "eval", "test", "--predictor", "lr1", "--json", "--storage", db_url, capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["results"]["predictor"] == r["results"]["predictor"]
    assert json.loads(out)["late_explosions"]["late_onset"] == 100
    code, out, err = sweeper("warn", "eval", "test", "--predictor", "lr1", "--late-onset", "50", "--storage", db_url,
                             capsys=capsys)
    assert code == 0, err
    assert "lead time = onset - alarm batch" in out and "recall_by_onset" in out
    assert "late explosions (onset >= 50)" in out
    assert "carry-over: " in out and f"of the 8 members running at batch {MIN_STEP} lie outside" in out
    assert "precursor" in out
    code, out, err = sweeper("warn", "eval", "test", "--predictor", "nope", "--storage", db_url, capsys=capsys)
    assert code == 2 and "--predictor: no predictor 'nope'" in err


@dataclass(frozen=True)
class _Spec:
    predictor: str
    threshold: float | None
    params: dict = None
    min_step: int = MIN_STEP
    enabled: bool = True
    shadow_fraction: float = 0.0

    def __post_init__(self):
        if self.params is None:
            object.__setattr__(self, "params", {})


def test_fit_refuses_too_few_members(db, db_url, capsys):
    insert_study(db, "small", EXPLODING + STABLE)
    with pytest.raises(FitError, match="3 exploded and 5 stable"):
        fit_predictor(db, ["small"], name="x", min_step=MIN_STEP)
    with pytest.raises(FitError, match="built-in"):
        fit_predictor(db, ["small"], name="ratio_rule")
    code, _, err = sweeper("warn", "fit", "small", "--name", "x", "--storage", db_url, capsys=capsys)
    assert code == 2 and err.startswith("sweeper: error: study: ") and "at least 5 of each" in err
    code, _, err = sweeper("warn", "fit", "absent", "--name", "x", "--storage", db_url, capsys=capsys)
    assert code == 2 and "no study named 'absent'" in err
