"""Early warning on the fast-weight families: the role table, traces of synthetic family studies, the
ratio rule and a learned predictor scoring family histories, the delta rule's transition bound (alarms,
refusals), a predictor fitted on one family and evaluated on another, OnlineWarner on a real family
population and its replay from the database, and study files that turn the watcher on. Expected
figures follow from how the synthetic members are built (tests/helpers/synthetic_families.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields

import numpy as np
import pytest

from sweeper.config import ConfigError, Hyper
from sweeper.db import Member, MemberMetric, Outcome, Study, StudyStatus
from sweeper.engine.families.config import FastWeightsHyper, FWPHyper
from sweeper.engine.families.metrics import FAMILY_METRIC_NAMES
from sweeper.engine.metrics import EVERY_STEP_NAMES, METRIC_NAMES
from sweeper.study import parse_study
from sweeper.study.runfile import build_run
from sweeper.warn import ModelSignals, OnlineWarner, PredictorError, RatioRule, Settings, TransitionBound
from sweeper.warn.evaluate import evaluate
from sweeper.warn.features import (
    FEATURE_SETS,
    GROWTH_FEATURES,
    HYPER_FEATURES,
    PORTABLE_FEATURES,
    TRAJECTORY_FEATURES,
    TRANSITION_FEATURES,
    feature_matrix,
    feature_names,
    feature_set_name,
)
from sweeper.warn.fit import FitError, fit_predictor
from sweeper.warn.history import History
from sweeper.warn.predictors import SCORE_CAP, load_predictor, make_predictor
from sweeper.warn.signals import (
    EPHEMERAL_SIGNALS,
    FAMILY_SIGNALS,
    HYPER_SIGNALS,
    ROLES,
    RoleMetrics,
    as_roles,
    hyper_roles,
)
from sweeper.warn.traces import load_traces, replay_batches
from tests.helpers.cli import sweeper
from tests.helpers.db import add_study_with_trial
from tests.helpers.synthetic_families import (
    BUDGET,
    EVERY,
    MIN_STEP,
    FamilySynth,
    family_members,
    insert_family_study,
)

# ---------------------------------------------------------------------------------------------------
# The role table


def test_every_role_is_filled_by_a_recorded_metric_of_each_model():
    assert set(EPHEMERAL_SIGNALS) == set(METRIC_NAMES) and set(EPHEMERAL_SIGNALS.values()) == set(METRIC_NAMES)
    assert set(FAMILY_SIGNALS) == set(ROLES)
    assert set(FAMILY_SIGNALS.values()) <= set(FAMILY_METRIC_NAMES)
    assert len(set(FAMILY_SIGNALS.values())) == len(FAMILY_SIGNALS)  # no metric plays two roles
    assert (FAMILY_SIGNALS["grad_eph"], FAMILY_SIGNALS["grad_slow"], FAMILY_SIGNALS["w_eph"]) == (
        "grad_fast", "grad_rest", "fast_norm")
    member_columns = {c.name for c in Member.__table__.columns}
    for kind, cls in (("ephemeral", Hyper), ("fastweights", FastWeightsHyper), ("fwp", FWPHyper)):
        names = {f.name for f in fields(cls)}
        assert set(HYPER_SIGNALS[kind].values()) <= names & member_columns
    assert hyper_roles(FastWeightsHyper(lr=0.1, eta=0.3, lam=0.9))["plasticity"] == 0.3
    assert hyper_roles(FWPHyper(lr=0.1, beta_scale=4.0))["plasticity"] == 4.0
    assert hyper_roles(Hyper(lr=0.1, plasticity=1e3))["plasticity"] == 1e3
    assert ModelSignals("fwp", "gated_delta").has_transition and not ModelSignals("fwp", "hebb").has_transition
    assert not ModelSignals("fastweights").has_transition
    assert ModelSignals.of_spec({"model": {"kind": "fwp"}}) == ModelSignals("fwp", "delta")  # FWPModel's default
    assert ModelSignals.of_spec({}) == ModelSignals("ephemeral")


def test_feature_sets_and_the_portable_ones_ignore_a_signal_rescaled():
    assert feature_names("trajectory") == TRAJECTORY_FEATURES
    assert feature_names("portable,transition") == PORTABLE_FEATURES + TRANSITION_FEATURES
    assert set(GROWTH_FEATURES) < set(TRAJECTORY_FEATURES)
    for name in FEATURE_SETS:
        assert feature_set_name(FEATURE_SETS[name]) == name
    assert feature_set_name(TRAJECTORY_FEATURES + HYPER_FEATURES) == "trajectory,hypers"
    with pytest.raises(ValueError, match="unknown feature set 'levels'"):
        feature_names("portable,levels")
    # the same member in another model's units (every gradient norm x 30): portable features do not move
    a, b = FamilySynth("exploded", 60, jump=30, noise=0.05, seed=3), FamilySynth("exploded", 60, jump=30, noise=0.05,
                                                                               seed=3, level=30.0)
    ha, hb = (_history(m, transition=False) for m in (a, b))
    fa, fb = feature_matrix([ha], TRAJECTORY_FEATURES)[0], feature_matrix([hb], TRAJECTORY_FEATURES)[0]
    moved = {n for n, x, y in zip(TRAJECTORY_FEATURES, fa, fb) if not math.isclose(x, y, abs_tol=1e-9)}
    assert moved == {"log_grad_slow_now"} and not moved & set(GROWTH_FEATURES)
    assert np.allclose(feature_matrix([ha], PORTABLE_FEATURES), feature_matrix([hb], PORTABLE_FEATURES),
                       rtol=0, atol=1e-9, equal_nan=True)


def _history(m: FamilySynth, *, transition: bool = True, kind: str = "fwp") -> History:
    """A member's rows by role, as OnlineWarner records them (through the role table)."""
    h = History(0, hyper_roles({"lr": m.lr, "plasticity": m.rate}))
    for step, values in m.rows(transition):
        full = step % EVERY == 0
        roles = {role: values[FAMILY_SIGNALS[role]] for role in ROLES if full or role in EVERY_STEP_NAMES}
        h.append(step, full, step == m.explode_step, roles)
    return h.view()


# ---------------------------------------------------------------------------------------------------
# Traces of synthetic family studies


def test_traces_read_a_family_study_by_role(db):
    crossing = FamilySynth("exploded", 62, onset=55, jump=30, cross=40, rate=4.0, lr=3e-2)
    ids = insert_family_study(db, "dn", "fwp", [crossing, FamilySynth("stable", rate=0.5)])
    traces = load_traces(db, "dn")
    assert [t.member_id for t in traces] == ids
    t = traces[0]
    assert t.model == ModelSignals("fwp", "delta") and t.exploded and (t.explode_onset, t.explode_step) == (55, 62)
    assert t.hyper == {"lr": 3e-2, "plasticity": 4.0, "lambda": 1.0, "clip": math.inf}
    v = t.history.view()
    stored = dict(crossing.rows(True))
    assert list(v.step) == sorted(stored)
    full = v.full_rows()
    for role, metric in FAMILY_SIGNALS.items():
        assert np.allclose(full[role], [stored[int(s)][metric] for s in full.step]), role
    # the detection batch 62 is stored with every family metric, but it lies between two full-metric
    # batches: it reads as the loss-only row the worker's warner kept
    assert v.step[-1] == 62 and not v.full[-1] and v.exploded[-1]
    assert v["loss"][-1] == 9.0 and math.isnan(v["grad_eph"][-1]) and math.isnan(v["transition_max"][-1])

    batches = list(replay_batches(traces))
    assert all(isinstance(b, RoleMetrics) for b in batches)
    assert [b.step for b in batches if not b.full] == [62]

    insert_family_study(db, "fw", "fastweights", [FamilySynth("stable", rate=0.0)])
    (fw,) = load_traces(db, "fw")
    assert fw.model == ModelSignals("fastweights") and fw.hyper["plasticity"] == 0.0
    assert np.isnan(fw.history.view()["transition_max"]).all()
    assert feature_matrix([fw.history.view()], ("log_plasticity",))[0, 0] == -12.0  # eta = 0: -LOG_CAP decades


def test_ratio_rule_and_baselines_evaluate_a_family_study(db):
    insert_family_study(db, "fw", "fastweights", family_members(4, 0))
    r = evaluate(db, "fw", RatioRule())
    assert r["transfer"]["evaluated_on"] == "fastweights" and r["transfer"]["fitted_on"] is None
    assert r["members"]["evaluated"] == 8 and r["members"]["exploded"] == 4
    p = r["results"]["predictor"]
    # grad_fast / grad_rest jumps tenfold at 25, 30, 35, 25: the median of the last three full rows is one
    # decade up one full row later, before any onset (57 and later)
    assert (p["auroc"], p["recall"], p["false_stop_rate"], p["late_alarms"]) == (1.0, 1.0, 0.0, 0)
    assert p["median_alarm_step"] == float(np.median([25 + 5 * (i % 3) + EVERY for i in range(4)]))
    assert set(r["results"]["baselines"]) == {"explosion_criterion", "loss_zscore", "median_rule"}
    json.dumps(r, allow_nan=False)


# ---------------------------------------------------------------------------------------------------
# The transition bound


def test_transition_bound_scores_the_largest_transition_so_far():
    rule = TransitionBound()
    assert rule.threshold == 2.0 and make_predictor(_Spec("transition_bound", None)).threshold == 2.0
    assert make_predictor(_Spec("transition_bound", 3.5)).threshold == 3.5
    crossing = _history(FamilySynth("exploded", 80, cross=40))
    below = _history(FamilySynth("stable"))
    assert rule.score(crossing.upto(35)) == pytest.approx(1.2) and rule.threshold > 1.2
    assert rule.score(crossing.upto(40)) == pytest.approx(3.0) and 3.0 >= rule.threshold
    assert rule.score(below) == pytest.approx(1.2)
    # once above 2, the score stays: the running maximum, not the latest value
    h = History(0)
    for step, x in ((0, 1.0), (5, 2.5), (10, 1.0), (15, 1.0)):
        h.append(step, True, False, {"loss": 2.0, "max_logit": 3.0, "transition_max": x})
    assert rule.score(h.view()) == 2.5
    h.append(20, True, False, {"loss": 2.0, "max_logit": 3.0, "transition_max": math.inf})
    assert rule.score(h.view()) == SCORE_CAP
    nan_loss = History(0)
    nan_loss.append(0, True, False, {"loss": math.nan, "max_logit": 3.0, "transition_max": 1.0})
    assert rule.score(nan_loss.view()) == SCORE_CAP
    never = History(7)
    never.append(0, True, False, {"loss": 2.0, "max_logit": 3.0})
    with pytest.raises(PredictorError, match="member 7 has no transition_max recorded"):
        rule.score(never.view())
    with pytest.raises(ConfigError, match="early_warning.params.window"):
        TransitionBound(params={"window": 3})


def test_transition_bound_alarms_the_member_that_crosses_2_and_not_the_one_below(db):
    crossing = FamilySynth("exploded", 72, onset=60, cross=45, lr=3e-2, rate=4.0)
    below = FamilySynth("stable", below=1.9)
    warner = OnlineWarner(Settings(MIN_STEP), TransitionBound(), model=ModelSignals("fwp", "delta"))
    for m in replay_batches([_trace(crossing), _trace(below)]):
        warner.observe(m)
    assert set(warner.alarmed) == {0} and warner.alarmed[0].step == 45
    assert warner.alarmed[0].signals["transition_max"] == 3.0  # named as the model records it
    assert "grad_fast" in warner.alarmed[0].signals and "grad_eph" not in warner.alarmed[0].signals

    insert_family_study(db, "dn", "fwp", [crossing, FamilySynth("exploded", 80, onset=70, cross=50, seed=1),
                                          below, FamilySynth("stable", seed=2)])
    r = evaluate(db, "dn", TransitionBound())
    p = r["results"]["predictor"]
    assert r["predictor"]["name"] == "transition_bound" and r["transfer"]["evaluated_on"] == "fwp (rule delta)"
    assert (p["recall"], p["false_stop_rate"], p["auroc"]) == (1.0, 0.0, 1.0)
    assert p["median_lead_time"] == float(np.median([60 - 45, 70 - 50]))


def _trace(m: FamilySynth):
    """A member as a one-trace replay needs it (without a database)."""
    from sweeper.warn.traces import Trace

    h = History(0, {"lr": m.lr, "plasticity": m.rate})
    for step, values in m.rows(True):
        full = step % EVERY == 0
        h.append(step, full, step == m.explode_step,
                 {role: values[FAMILY_SIGNALS[role]] for role in ROLES if full or role in EVERY_STEP_NAMES})
    return Trace(0, "x", Outcome(m.outcome), m.explode_step, m.onset, False, BUDGET, BUDGET, 50,
                 {"lr": m.lr, "plasticity": m.rate}, h, ModelSignals("fwp", "delta"))


def test_transition_bound_is_refused_outside_the_delta_rules(db, db_url, capsys):
    with db.session() as s:  # an ephemeral study (no [model] kind): refused before any member is read
        s.add(Study(name="eph", status=StudyStatus.COMPLETE, spec={"train": {"batches": BUDGET}}))
    insert_family_study(db, "fw", "fastweights", family_members(2, 0))
    insert_family_study(db, "hebb", "fwp_hebb", family_members(2, 0))
    for study, model in (("eph", "ephemeral"), ("fw", "fastweights"), ("hebb", "fwp (rule hebb)")):
        with pytest.raises(PredictorError, match=f"this study's model is {model.replace('(', '.').replace(')', '.')}"):
            evaluate(db, study, TransitionBound())
    code, _, err = sweeper("warn", "eval", "eph", "--predictor", "transition_bound", "--storage", db_url, capsys=capsys)
    assert code == 2
    assert err.startswith("sweeper: error: --predictor: predictor 'transition_bound' watches the delta rule's")
    assert "only model fwp with rule delta or gated_delta records; this study's model is ephemeral" in err
    with pytest.raises(PredictorError, match="fastweights"):
        OnlineWarner(Settings(MIN_STEP), TransitionBound(), model=ModelSignals("fastweights"))


# ---------------------------------------------------------------------------------------------------
# Learned predictors on family members; fitted on one family, evaluated on another


SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
"""For the fits (seconds each): both storage backends are covered by tests/warn/test_warn.py's fit."""


@SQLITE_ONLY
def test_learned_predictor_fitted_on_fastweights_scores_fwp_with_portable_features(db, db_url, capsys):
    insert_family_study(db, "fw_train", "fastweights", family_members(6, 0))
    insert_family_study(db, "fw_test", "fastweights", family_members(4, 500))
    # the same histories in fwp, with gradient norms in other units (x 30)
    insert_family_study(db, "dn_test", "fwp", family_members(4, 500, level=30.0))
    with pytest.raises(FitError, match="--features: loss_vs_chance_now, .* study 'fw_train' names no task"):
        fit_predictor(db, ["fw_train"], name="fw_portable", features="portable", min_step=MIN_STEP)
    _name_task(db, "fw_train", "fw_test", "dn_test")  # portable reads the loss against the task's chance loss
    report = fit_predictor(db, ["fw_train"], name="fw_portable", features="portable", min_step=MIN_STEP)
    assert report["feature_set"] == "portable" and report["features"] == list(PORTABLE_FEATURES)
    assert report["model_kinds"] == ["fastweights"] and report["models"] == ["fastweights"]
    p = load_predictor(db, "fw_portable")

    same = evaluate(db, "fw_test", p)  # the same family, held out
    assert same["results"]["predictor"]["auroc"] >= 0.9 and not same["transfer"]["cross_model"]
    cross = evaluate(db, "dn_test", p)
    t = cross["transfer"]
    assert t["cross_model"] and t["fitted_on"] == ["fastweights"] and t["evaluated_on"] == "fwp (rule delta)"
    assert t["feature_set"] == "portable" and t["level_features"] == []
    # portable features do not see the change of units: every figure is the same as on fastweights
    assert cross["results"]["predictor"] == same["results"]["predictor"]

    code, out, err = sweeper("warn", "fit", "fw_train", "--name", "fw_levels", "--min-step", str(MIN_STEP),
                             "--features", "trajectory", "--storage", db_url, capsys=capsys)
    assert code == 0, err
    assert "18 features (trajectory)" in out and "fitted on 12 members of fastweights (6 exploded, 6 stable)" in out
    levels = evaluate(db, "dn_test", load_predictor(db, "fw_levels"))["transfer"]
    assert levels["feature_set"] == "trajectory" and "log_ratio_first" in levels["level_features"]
    assert not set(levels["level_features"]) & set(PORTABLE_FEATURES)

    code, out, err = sweeper("warn", "eval", "dn_test", "--predictor", "fw_levels", "--storage", db_url,
                             capsys=capsys)
    assert code == 0, err
    assert "predictor fw_levels (fitted on fastweights, features trajectory); evaluated on fwp (rule delta)" in out
    assert "--features portable" in out
    code, out, err = sweeper("warn", "eval", "fw_test", "--predictor", "transition_bound", "--storage", db_url,
                             capsys=capsys)
    assert code == 2 and "this study's model is fastweights" in err


def _name_task(db, *studies: str, task=None) -> None:
    """Give the synthetic studies a `[task]` in their stored spec (key recall unless told)."""
    import sqlalchemy as sa

    with db.session() as s:
        for study in s.scalars(sa.select(Study).where(Study.name.in_(studies))):
            study.spec = {**study.spec, "task": task or {"name": "key_recall"}}


@SQLITE_ONLY
def test_fits_and_evaluations_that_would_mix_quantities_are_refused(db):
    insert_family_study(db, "fw", "fastweights", family_members(5, 0))
    insert_family_study(db, "dn", "fwp", family_members(5, 100, cross=True))
    insert_family_study(db, "hebb", "fwp_hebb", family_members(5, 200))
    _name_task(db, "fw", "dn", "hebb")
    with pytest.raises(FitError, match="--features: log_transition_now, .* study 'fw' is fastweights"):
        fit_predictor(db, ["dn", "fw"], name="x", features="portable,transition", min_step=MIN_STEP)
    with pytest.raises(FitError, match=r"--hypers: .*fastweights: eta, fwp: beta_scale"):
        fit_predictor(db, ["fw", "dn"], name="x", hypers=True, min_step=MIN_STEP)
    with pytest.raises(FitError, match="--features: unknown feature set 'all'"):
        fit_predictor(db, ["fw"], name="x", features="all")

    fit_predictor(db, ["fw"], name="fw_hypers", hypers=True, min_step=MIN_STEP)
    p = load_predictor(db, "fw_hypers")
    assert p.uses_hypers and p.payload["feature_set"] == "portable,hypers"  # portable: the default
    with pytest.raises(PredictorError, match="plasticity is eta; in fwp it is beta_scale"):
        evaluate(db, "dn", p)

    report = fit_predictor(db, ["dn"], name="dn_transition", features="portable,transition", min_step=MIN_STEP)
    assert report["features"][-3:] == list(TRANSITION_FEATURES)
    q = load_predictor(db, "dn_transition")
    with pytest.raises(PredictorError, match="reads log_transition_now.*this study's model is fwp \\(rule hebb\\)"):
        evaluate(db, "hebb", q)


# ---------------------------------------------------------------------------------------------------
# OnlineWarner on a real family population; the replay from the database agrees


@pytest.fixture(scope="module")
def family_run():
    """fwp DeltaNet, phi identity: member 0 learns calmly (transition_max below 2), members 1 and 2 blow up
    from the first batches (transition_max in the hundreds) and are detected at batch 7, between two
    full-metric batches (explode_grace 7, metrics_every 5)."""
    import torch

    from sweeper.engine.families.population import FamilyPopulation

    torch.set_num_threads(1)
    run = build_run({"name": "key_recall", "gap_min": 1, "gap_max": 3},
                    {"kind": "fwp", "rule": "delta", "phi": "identity", "d_model": 16, "d_key": 8, "d_value": 8},
                    {"updater": "bptt", "optimizer": "adam", "batches": 40, "batch_size": 8, "metrics_every": EVERY,
                     "explode_grace": 7}, families=True)
    hypers = [FWPHyper(lr=1e-2, beta_scale=0.5, seed=0), FWPHyper(lr=0.3, beta_scale=8, seed=0),
              FWPHyper(lr=1.0, beta_scale=8, seed=1)]
    pop = FamilyPopulation(run, hypers)
    model = ModelSignals("fwp", "delta")
    warners = {name: OnlineWarner(Settings(min_step=EVERY), rule, hypers=hypers, model=model)
               for name, rule in (("transition", TransitionBound()), ("ratio", RatioRule(threshold=1e9)))}
    steps, alarms = [], {name: [] for name in warners}
    for m in pop.run():
        steps.append(m)
        for name, w in warners.items():
            alarms[name].extend(w.observe(m))
    return run, hypers, pop.summaries(), steps, alarms, warners


def test_online_warner_reads_a_family_population(family_run):
    _, _, summaries, _, alarms, warners = family_run
    assert [(s.outcome, s.explode_step) for s in summaries] == [("stable", None), ("exploded", 7), ("exploded", 7)]
    assert [(a.member, a.step) for a in alarms["transition"]] == [(1, 5), (2, 5)]
    assert all(a.score > 2 and a.signals["transition_max"] > 2 for a in alarms["transition"])
    json.dumps([a.as_dict() for a in alarms["transition"]], allow_nan=False)
    h = warners["transition"].histories[0].view()
    assert h.full.all() and (h["transition_max"] < 2).all() and np.isfinite(h["grad_eph"]).all()
    assert warners["ratio"].max_score.keys() == {0, 1, 2} and not alarms["ratio"]


def test_family_replay_from_database_agrees_with_online(family_run, db):
    run, hypers, summaries, steps, alarms, warners = family_run
    with db.session() as s:  # the rows a family pack stores: full batches, and the explosion batch, every metric
        spec = {"model": {"kind": "fwp", "rule": "delta", "phi": "identity"},
                "train": {"batches": run.train.batches, "metrics_every": EVERY, "explode_grace": 7}}
        study, trial = add_study_with_trial(s, name="dn_pop", status=StudyStatus.COMPLETE, spec=spec)
        for i, (h, summ) in enumerate(zip(hypers, summaries)):
            row = Member(trial_id=trial.id, study_id=study.id, pack_index=i, model_kind="fwp", lr=h.lr,
                         beta_scale=h.beta_scale, lam=h.lam, clip=h.clip, seed=h.seed, config={},
                         outcome=Outcome(summ.outcome), explode_step=summ.explode_step,
                         explode_onset=summ.explode_onset, steps_done=summ.steps_done)
            s.add(row)
            s.flush()
            for m in steps:
                hit = np.flatnonzero(m.member == i)
                if len(hit) and (m.full or m.exploded[hit[0]]):
                    s.add(MemberMetric.from_metrics(row.id, m.step, {k: float(getattr(m, k)[hit[0]])
                                                                     for k in FAMILY_METRIC_NAMES}))
    traces = load_traces(db, "dn_pop")
    assert [t.explode_step for t in traces] == [None, 7, 7]
    for name, rule in (("transition", TransitionBound()), ("ratio", RatioRule(threshold=1e9))):
        replay = OnlineWarner(Settings(min_step=EVERY), rule, hypers=[t.hyper for t in traces],
                              model=ModelSignals("fwp", "delta"))
        replayed = [a for m in replay_batches(traces) for a in replay.observe(m)]
        assert [(a.member, a.step) for a in replayed] == [(a.member, a.step) for a in alarms[name]]
        for k in range(3):
            online = warners[name].scores[k]
            assert [b for b, _ in replay.scores[k]] == [b for b, _ in online], (name, k)
            assert [v for _, v in replay.scores[k]] == pytest.approx([v for _, v in online]), (name, k)


def test_as_roles_keeps_only_the_every_step_roles_off_full_batches(family_run):
    *_, steps, _, _ = family_run
    off = next(m for m in steps if not m.full)
    r = as_roles(off)
    assert np.isfinite(r["loss"]).all() and np.isnan(r["grad_eph"]).all() and np.isnan(r["transition_max"]).all()
    on = as_roles(steps[0])
    assert np.array_equal(on["w_eph"], steps[0].fast_norm) and np.array_equal(on["grad_slow"], steps[0].grad_rest)


# ---------------------------------------------------------------------------------------------------
# Study files


FAMILY_STUDY = """
name = "t"
[task]
name = "key_recall"
[model]
{model}
[train]
optimizer = "adam"
batches = 50
[search]
kind = "grid"
[[objectives]]
metric = "eval_mem_acc"
{space}
[execution]
seeds = 2
members_per_trial = 4
[early_warning]
enabled = true
{predictor}
"""
FWP_DELTA = ('kind = "fwp"\nd_model = 8\nd_key = 4\nd_value = 4\nrule = "{rule}"\nphi = "silu_l2"\n',
             "[space.beta_scale]\nvalues = [1.0, 8.0]\n")
FW = ('kind = "fastweights"\nhidden = 8\n', "[space.eta]\nvalues = [0.1, 0.5]\n[fixed]\nlambda = 0.9\n")


def test_family_studies_take_the_early_warning_and_transition_bound_only_on_delta_rules():
    for rule in ("delta", "gated_delta"):
        model = FWP_DELTA[0].format(rule=rule) + ('decay = "constant"\n' if rule == "gated_delta" else "")
        space = FWP_DELTA[1] + ("[fixed]\nlambda = 0.9\n" if rule == "gated_delta" else "")
        spec = parse_study(FAMILY_STUDY.format(model=model, space=space, predictor='predictor = "transition_bound"'),
                           "t.toml")
        assert spec.early_warning.enabled and spec.early_warning.predictor == "transition_bound"
        assert ModelSignals.of_study(spec) == ModelSignals("fwp", rule)
    spec = parse_study(FAMILY_STUDY.format(model=FW[0], space=FW[1], predictor=""), "t.toml")
    assert spec.early_warning.enabled and spec.early_warning.predictor == "ratio_rule"
    for model, space, on in ((FW[0], FW[1], "fastweights"),
                             (FWP_DELTA[0].format(rule="hebb"), FWP_DELTA[1], r"fwp \(rule hebb\)")):
        with pytest.raises(ConfigError, match=f"early_warning.predictor: transition_bound applies to model fwp .*"
                                              f"this study's model is {on}"):
            parse_study(FAMILY_STUDY.format(model=model, space=space, predictor='predictor = "transition_bound"'),
                        "t.toml")


@dataclass(frozen=True)
class _Spec:
    """The fields of an EarlyWarningSpec that make_predictor reads."""

    predictor: str
    threshold: float | None
    params: dict = field(default_factory=dict)


@pytest.mark.parametrize("name, model", [("warn_deltanet_cpu", ModelSignals("fwp", "delta")),
                                         ("warn_fastweights_cpu", ModelSignals("fastweights"))])
def test_shipped_family_warning_studies_keep_every_trace(name, model):
    from pathlib import Path

    from sweeper.study import load_study

    spec = load_study(Path(__file__).resolve().parents[2] / "studies" / f"{name}.toml")
    assert spec.name == name and ModelSignals.of_study(spec) == model
    assert not spec.run.train.stop_on_explosion  # every member's whole trace is the ground truth
    assert spec.run.train.metrics_every == EVERY and spec.search.kind == "random"
    assert not spec.early_warning.enabled
    if model.kind == "fwp":
        assert spec.run.model.phi == "identity"  # keys not normalized: eta_t ||phi(k_t)||^2 can pass 2
