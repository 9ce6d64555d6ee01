"""The stability boundary (sweeper.analysis.boundary), the frontier search (sweeper.sweep.frontier),
their comparison, the figures' data, the study-file keys and the CLI.

Populations are synthetic, inserted through the ORM into SQLite and PostgreSQL: each configuration's
seeds are stable with probability sigmoid(SHARPNESS * (C - log10 lr - log10 plasticity)), a boundary
of slope -1 and intercept C, so what the fit must recover is known. The fast-weight families' studies
come from `tests.helpers.synthetic.make_study(kind=...)`, with a planted line in (lr, eta) or
(lr, beta_scale). Nothing here starts Ray, except the one end-to-end frontier study marked slow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sweeper.analysis.boundary import (
    MIN_PER_CLASS,
    BoundaryError,
    fit_boundary,
    latest_fit,
    p_stable,
    wilson,
)
from sweeper.db import Member, MemberMetric, Outcome, Study, StudyStatus, Trial, TrialStatus
from sweeper.study import StudyError, parse_study
from tests.helpers.cli import sweeper as run_cli
from tests.helpers.db import add_study_with_trial
from tests.helpers.synthetic import FAMILY_INTERCEPT, FAMILY_SLOPE, make_study

C = 0.5
SHARPNESS = 4.0
LRS = np.logspace(-3, -1, 7)
PLASTICITIES = np.logspace(1, 4, 7)
SEEDS = 5


def true_p(lr, plasticity):
    return 1 / (1 + np.exp(-SHARPNESS * (C - np.log10(lr) - np.log10(plasticity))))


def insert_study(db, name: str, configs: list[dict], outcomes: list[list[str]], *, trial_status=TrialStatus.COMPLETE,
                 per_trial: int = 1, metrics: bool = False) -> int:
    """A study whose configuration i (a dict of hyperparameters) has members with outcomes[i]."""
    with db.session() as s:
        study = Study(name=name, spec={}, status=StudyStatus.COMPLETE)
        s.add(study)
        s.flush()
        trials = {}
        for i, (config, seeds) in enumerate(zip(configs, outcomes)):
            number = i // per_trial
            if number not in trials:
                trials[number] = Trial(study_id=study.id, number=number, status=trial_status, points=[])
                s.add(trials[number])
                s.flush()
            trial = trials[number]
            trial.points = [*trial.points, {"point": {k: v for k, v in config.items() if k in ("lr", "plasticity")},
                                            "config_index": i, "optuna": None}]
            for seed, outcome in enumerate(seeds):
                h = {"ratio": 0.1, "gamma": 0.7, "clip": math.inf, **config}
                m = Member(trial_id=trial.id, study_id=study.id, pack_index=len(trial.points) * 100 + seed,
                           config_index=i, seed=seed, config={}, outcome=Outcome(outcome),
                           explode_step=30 if outcome == "exploded" else None, steps_done=100, **h)
                s.add(m)
                if metrics:
                    s.flush()
                    grow = 1.05 if outcome == "exploded" else 0.99
                    s.add_all(MemberMetric(member_id=m.id, step=k, loss=1.0, grad_ratio=0.3 * grow ** k,
                                           grad_eph=grow ** k, grad_slow=1.0 + 0 * k) for k in range(0, 300, 1))
        return study.id


def synthetic(rng: np.random.Generator, lrs=LRS, plasticities=PLASTICITIES, seeds=SEEDS, **extra):
    configs, outcomes = [], []
    for lr in lrs:
        for p in plasticities:
            configs.append({"lr": float(lr), "plasticity": float(p), **extra})
            stable = rng.random(seeds) < true_p(lr, p)
            outcomes.append(["stable" if s else "exploded" for s in stable])
    return configs, outcomes


@pytest.fixture
def grid_study(db):
    configs, outcomes = synthetic(np.random.default_rng(0))
    outcomes[0] = outcomes[0][:-2] + ["failed", "running"]  # left out of the fit, and counted
    insert_study(db, "grid", configs, outcomes)
    return db


# ---------------------------------------------------------------------------------------------------
# The fit


def test_fit_recovers_a_slope_minus_one_boundary(grid_study):
    report = fit_boundary(grid_study, "grid", bootstrap=100)
    lo, hi = report.slope_ci
    assert lo <= -1.0 <= hi and report.consistent_with_product is True
    assert hi - lo < 0.8  # an interval that says something
    ilo, ihi = report.intercept_ci
    assert ilo <= C <= ihi
    assert report.cv_accuracy >= 0.85 and report.auroc >= 0.9
    assert report.cv_accuracy > report.payload["cv"]["majority_baseline"]
    m = report.payload["members"]
    assert m["fitted"] == len(LRS) * len(PLASTICITIES) * SEEDS - 2
    assert m["excluded"] == {"failed": 1, "running": 1}
    assert report.payload["boundary"]["stable_side"] == "below"
    assert report.payload["features"] == ["lr", "plasticity"]  # ratio, gamma, clip never vary here


def test_stored_fit_is_strict_json_and_readable(grid_study):
    first = fit_boundary(grid_study, "grid", bootstrap=20)
    second = fit_boundary(grid_study, "grid", model="svm", bootstrap=20)
    assert first.id is not None and second.id > first.id
    stored = latest_fit(grid_study, "grid")
    assert (stored.id, stored.kind) == (second.id, "svm")
    assert stored.payload == second.payload
    text = json.dumps(stored.payload, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text
    assert stored.payload["cv"]["accuracy"] >= 0.85  # the SVM separates as well


def test_svm_is_platt_scaled_by_scikit_learn(grid_study):
    """P(stable) of an SVM fit is scikit-learn's sigmoid calibration of out-of-fold decision values."""
    from sklearn.calibration import CalibratedClassifierCV

    from sweeper.analysis.boundary import _estimator, _folds, load_members

    payload = fit_boundary(grid_study, "grid", model="svm", bootstrap=0, store=False).payload
    members = load_members(grid_study, "grid")
    X = np.column_stack([np.log10(members.hypers["lr"]), np.log10(members.hypers["plasticity"])])
    y = members.stable.astype(np.int64)
    calibrated = CalibratedClassifierCV(_estimator("svm", 0), method="sigmoid", cv=_folds(5, 0), ensemble=False)
    expected = calibrated.fit(X, y).predict_proba(X)[:, 1]
    got = p_stable(payload, {"lr": members.hypers["lr"], "plasticity": members.hypers["plasticity"]})
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_platt_coefficients_match_platts_objective():
    """Platt (1999) with the prior-corrected targets (n+ + 1) / (n+ + 2) and 1 / (n- + 2), fitted
    independently: the library's coefficients are the known answer."""
    from scipy.optimize import minimize
    from scipy.special import expit
    from sklearn.model_selection import cross_val_predict

    from sweeper.analysis.boundary import _estimator, _folds, _platt

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + X[:, 1] + rng.normal(0, 0.5, 200) > 0).astype(np.int64)
    d = cross_val_predict(_estimator("svm", 0), X, y, cv=_folds(5, 0), method="decision_function")
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def nll(ac):
        q = expit(ac[0] * d + ac[1])
        return -np.sum(t * np.log(q) + (1 - t) * np.log1p(-q))

    expected = minimize(nll, [1.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
    assert _platt(X, y, "svm", 5, 0) == pytest.approx(tuple(expected), abs=1e-4)


def test_cells_have_wilson_intervals(grid_study):
    payload = fit_boundary(grid_study, "grid", bootstrap=0, store=False).payload
    assert len(payload["cells"]) == len(LRS) * len(PLASTICITIES)
    for cell in payload["cells"]:
        n, k = cell["members"], cell["unstable"]
        assert cell["explosion_rate"] == pytest.approx(k / n)
        lo, hi = cell["ci95"]
        assert 0 <= lo <= k / n <= hi <= 1
    z2 = 1.959963984540054**2
    assert wilson(0, 4)[1] == pytest.approx(z2 / (4 + z2))  # k = 0: the upper end is z^2 / (n + z^2)
    assert wilson(4, 4)[0] == pytest.approx(4 / (4 + z2))
    assert wilson(0, 4)[0] == 0.0 and wilson(4, 4)[1] == 1.0  # exact ends, no rounding residue
    assert wilson(3, 10) == pytest.approx((0.1078, 0.6032), abs=5e-5)  # the textbook value
    assert wilson(0, 0) == (0.0, 1.0)  # an empty cell says nothing
    assert payload["boundary"]["slope_ci95"] is None  # no bootstrap, no interval; no NaN either
    assert payload["product_hypothesis"]["consistent"] is None


def test_p_stable_contract(grid_study):
    payload = fit_boundary(grid_study, "grid", bootstrap=0, store=False).payload
    lr = np.logspace(-3, -1, 5)
    on_line = 10 ** (payload["boundary"]["slope"] * np.log10(lr) + payload["boundary"]["intercept"])
    p = p_stable(payload, {"lr": lr, "plasticity": on_line})
    assert p.shape == (5,) and p.dtype == np.float64
    assert np.allclose(p, 0.5, atol=1e-6)  # the line is P = 0.5
    grid = p_stable(payload, {"lr": lr[:, None], "plasticity": np.logspace(1, 4, 4)[None, :],
                              "ratio": 0.2, "clip": math.inf})  # broadcast; axes the fit ignores are ignored
    assert grid.shape == (5, 4)
    assert np.all(np.diff(grid, axis=1) < 0) and np.all(np.diff(grid, axis=0) < 0)  # more plasticity, less stable
    assert p_stable(payload, {"lr": 1e-3, "plasticity": 10.0}).shape == ()
    assert float(p_stable(payload, {"lr": 1e-3, "plasticity": 10.0})) > 0.9
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        p_stable(payload, {"lr": 1e-3, "plasticity": 10.0, "momentum": 0.9})


def test_varying_clip_with_inf_and_gamma_enter_the_hyperplane(db):
    rng = np.random.default_rng(1)
    configs, outcomes = [], []
    for clip in (1.0, 10.0, math.inf):
        for gamma in (0.5, 0.9):
            c, o = synthetic(rng, seeds=2, clip=clip, gamma=gamma)
            configs += c
            outcomes += o
    insert_study(db, "five", configs, outcomes)
    report = fit_boundary(db, "five", bootstrap=20)
    assert report.payload["features"] == ["lr", "plasticity", "gamma", "clip"]
    assert report.payload["clip_inf_log10"] == pytest.approx(2.0)  # one decade past the largest finite clip
    assert set(report.payload["boundary"]["others_at_median"]) == {"gamma", "clip"}
    json.dumps(report.payload, allow_nan=False)
    p = p_stable(report.payload, {"lr": 1e-2, "plasticity": 100.0, "gamma": 0.7, "clip": math.inf})
    assert 0 <= float(p) <= 1


# ---------------------------------------------------------------------------------------------------
# Refusals


def test_unknown_study_is_refused_naming_the_known_ones(grid_study):
    with pytest.raises(BoundaryError, match=r"no study named 'nope'.*grid"):
        fit_boundary(grid_study, "nope")
    with pytest.raises(BoundaryError, match="no study named 'nope'"):
        latest_fit(grid_study, "nope")
    assert latest_fit(grid_study, "grid") is None


def test_too_few_exploded_members_is_refused_with_counts(db):
    configs = [{"lr": lr, "plasticity": 100.0} for lr in (1e-3, 1e-2, 1e-1)]
    insert_study(db, "calm", configs, [["stable"] * 4, ["stable"] * 4, ["stable", "stable", "exploded", "stopped_early"]])
    with pytest.raises(BoundaryError) as err:
        fit_boundary(db, "calm")
    msg = str(err.value)
    assert "10 stable and 2 unstable" in msg and f"at least {MIN_PER_CLASS} of each" in msg


def test_a_single_value_of_lr_is_refused(db):
    configs = [{"lr": 1e-2, "plasticity": p} for p in (10.0, 100.0, 1000.0)]
    insert_study(db, "one_lr", configs, [["stable"] * 4, ["stable", "exploded"] * 2, ["exploded"] * 4])
    with pytest.raises(BoundaryError, match=r"lr takes a single value \(0.01\)"):
        fit_boundary(db, "one_lr")


def test_bad_arguments_are_refused(grid_study):
    with pytest.raises(BoundaryError, match="--model: got 'tree'"):
        fit_boundary(grid_study, "grid", model="tree")
    with pytest.raises(BoundaryError, match="--bootstrap: got -1"):
        fit_boundary(grid_study, "grid", bootstrap=-1)
    with pytest.raises(BoundaryError, match="--folds: got 1"):
        fit_boundary(grid_study, "grid", folds=1)


# ---------------------------------------------------------------------------------------------------
# The CLI, in process


def test_cli_boundary_json_text_and_errors(grid_study, db_url, capsys):
    code, out, _ = run_cli("boundary", "grid", "--bootstrap", "30", "--json", "--storage", db_url, capsys=capsys)
    assert code == 0
    data = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    assert data["id"] is not None and data["boundary"]["slope_ci95"][0] <= -1 <= data["boundary"]["slope_ci95"][1]
    code, out, _ = run_cli("boundary", "grid", "--bootstrap", "30", "--no-store", "--storage", db_url, capsys=capsys)
    assert code == 0 and "consistent with -1" in out and "not stored" in out and "Wilson" in out
    code, _, err = run_cli("boundary", "nope", "--storage", db_url, capsys=capsys)
    assert code == 2 and "no study named 'nope'" in err
    code, _, err = run_cli("boundary", "a", "b", "--storage", db_url, capsys=capsys)
    assert code == 2 and "compare REFERENCE STUDY" in err


def test_cli_figures_write_offline_html(grid_study, db_url, tmp_path, capsys):
    code, out, _ = run_cli("figures", "grid", "-o", str(tmp_path / "figs"), "--storage", db_url, capsys=capsys)
    # the synthetic members have no gradient metrics: Fig. 6 refuses, saying why
    assert code == 2 and out == ""
    insert_study(grid_study, "traced", *synthetic(np.random.default_rng(2), seeds=2), metrics=True)
    code, out, _ = run_cli("figures", "traced", "-o", str(tmp_path / "figs"), "--storage", db_url, capsys=capsys)
    assert code == 0
    for name in ("fig6.html", "fig7.html"):
        html = (tmp_path / "figs" / name).read_text()
        assert len(html) > 1_000_000 and '<script src="https://cdn.plot.ly' not in html  # plotly.js inlined


# ---------------------------------------------------------------------------------------------------
# The figures' data


def test_fig7_info_counts_members_and_draws_the_stored_fit(grid_study):
    from sweeper.analysis.figures import fig7, fig7_info

    info = fig7_info(grid_study, "grid")
    assert info["boundary_source"] == "fitted now (not stored)"
    counts = {k: g["count"] for k, g in info["members"].items()}
    assert sum(counts.values()) == len(LRS) * len(PLASTICITIES) * SEEDS - 2
    assert len(info["cells"]) == len(LRS) * len(PLASTICITIES)
    stored = fit_boundary(grid_study, "grid", bootstrap=0)
    info = fig7_info(grid_study, "grid")
    assert info["boundary_source"].startswith(f"stored fit {stored.id}")
    b = info["boundary"]
    assert b["y"][0] == pytest.approx(stored.slope * b["x"][0] + stored.intercept)
    assert type(fig7(grid_study, "grid")).__name__ == "Figure"


def test_fig6_info_downsamples_stable_and_exploding_traces(db):
    from sweeper.analysis.figures import fig6, fig6_info

    insert_study(db, "traced", *synthetic(np.random.default_rng(2), seeds=2), metrics=True)
    info = fig6_info(db, "traced", per_class=3, max_points=50)
    outcomes = [t["outcome"] for t in info["traces"]]
    assert outcomes.count("stable") == 3 and outcomes.count("exploded") == 3
    for t in info["traces"]:
        assert 0 < len(t["step"]) <= 50 and t["step"] == sorted(t["step"])
        assert len(t["grad_ratio"]) == len(t["grad_eph"]) == len(t["step"])
    grows = [t["grad_eph"][-1] > t["grad_eph"][0] for t in info["traces"]]
    assert grows == [o == "exploded" for o in outcomes]
    from sweeper.analysis.figures import PER_CLASS

    assert len(fig6(db, "traced").data) == 3 * 2 * PER_CLASS  # 3 panels x both classes


# ---------------------------------------------------------------------------------------------------
# Study files: the frontier kind and the boundary filter


def study_text(search: str, space: str = "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n"
               "[space.plasticity]\nlow = 10.0\nhigh = 1e4\nlog = true\n") -> str:
    return f"""
name = "f"
[task]
name = "reversal"
n = 3
[model]
depth = 1
width = 16
[train]
batches = 20
[search]
{search}
[[objectives]]
metric = "explosion_rate"
{space}
[execution]
seeds = 2
members_per_trial = 4
eval_batches = 1
"""


def test_frontier_kind_validates():
    spec = parse_study(study_text('kind = "frontier"\nconfigs = 10\ninitial = 3\nexplore = 0.2'))
    assert (spec.search.kind, spec.search.initial, spec.search.explore, spec.search.candidates) == ("frontier", 3, 0.2, 4096)
    assert spec.n_trials() == 5
    assert spec.to_dict()["search"]["initial"] == 3
    default = parse_study(study_text('kind = "frontier"\nconfigs = 2'))
    assert default.search.initial == 2  # at most configs
    with pytest.raises(StudyError, match="frontier studies have no precomputed points"):
        spec.points()


@pytest.mark.parametrize("search, space, field", [
    ('kind = "frontier"\nconfigs = 4\ninitial = 5', None, "search.initial"),
    ('kind = "frontier"\nconfigs = 4\nexplore = 1.5', None, "search.explore"),
    ('kind = "frontier"\nconfigs = 4\ncandidates = 2', None, "search.candidates"),
    ('kind = "frontier"', None, "search.configs"),
    ('kind = "frontier"\nconfigs = 4', "[space.lr]\nlow = 1e-3\nhigh = 1e-1\nlog = true\n", "space"),
    ('kind = "random"\nconfigs = 4\ninitial = 2', None, "search.initial"),
    ('kind = "frontier"\nconfigs = 4\nsampler = "tpe"', None, "search.sampler"),
    ('kind = "random"\nconfigs = 4\nboundary_fit = "g"', None, "search.boundary_fit"),
    ('kind = "optuna"\nconfigs = 4\nmin_p_stable = 0.5', None, "search.min_p_stable"),
    ('kind = "optuna"\nconfigs = 4\nboundary_fit = "g"\nmin_p_stable = 1.0', None, "search.min_p_stable"),
    ('kind = "optuna"\nconfigs = 4\nboundary_fit = "bad name!"', None, "search.boundary_fit"),
])  # fmt: skip
def test_bad_frontier_and_filter_keys_are_refused(search, space, field):
    with pytest.raises(StudyError) as err:
        parse_study(study_text(search) if space is None else study_text(search, space))
    assert err.value.field == field


def test_boundary_filter_keys_parse():
    spec = parse_study(study_text('kind = "optuna"\nconfigs = 4\nboundary_fit = "grid"\nmin_p_stable = 0.7'))
    assert (spec.search.boundary_fit, spec.search.min_p_stable, spec.search.max_skips) == ("grid", 0.7, 20)
    assert parse_study(study_text('kind = "optuna"\nconfigs = 4')).search.boundary_fit is None


# ---------------------------------------------------------------------------------------------------
# The proposer


def frontier_spec(**search):
    keys = {"configs": 40, "initial": 4, "explore": 0.0, **search}
    return parse_study(study_text('kind = "frontier"\n' + "\n".join(f"{k} = {v}" for k, v in keys.items())))


def test_proposer_starts_space_filling_and_stays_in_bounds(db):
    from sweeper.sweep.frontier import propose

    spec = frontier_spec()
    study_id = insert_study(db, "empty", [], [])
    points = propose(db, spec, study_id, 6, np.random.default_rng(0))
    assert len(points) == 6
    lr = np.array([p["lr"] for p in points])
    pl = np.array([p["plasticity"] for p in points])
    assert np.all((1e-3 <= lr) & (lr <= 1e-1)) and np.all((10 <= pl) & (pl <= 1e4))
    assert np.ptp(np.log10(lr)) > 1 and np.ptp(np.log10(pl)) > 1.5  # spread over the space
    assert points == propose(db, spec, study_id, 6, np.random.default_rng(5))  # the seed design is fixed


def test_proposer_concentrates_points_near_the_boundary(db):
    from sweeper.sweep.frontier import propose

    spec = frontier_spec()
    configs, outcomes = synthetic(np.random.default_rng(0), lrs=np.logspace(-3, -1, 4),
                                  plasticities=np.logspace(1, 4, 4), seeds=4)
    study_id = insert_study(db, "live", configs, outcomes)
    points = propose(db, spec, study_id, 12, np.random.default_rng(0))
    distance = np.array([abs(np.log10(p["lr"]) + np.log10(p["plasticity"]) - C) for p in points])
    uniform = np.random.default_rng(1)
    random_distance = np.abs(uniform.uniform(-3, -1, 4000) + uniform.uniform(1, 4, 4000) - C)
    assert np.median(distance) < 0.5 * np.median(random_distance)
    lr = np.log10([p["lr"] for p in points])
    assert np.ptp(lr) > 1.0  # spread along the line, not piled on one spot


def test_proposer_uses_only_finished_packs(db):
    from sweeper.sweep.frontier import propose, sobol_points

    spec = frontier_spec()
    configs, outcomes = synthetic(np.random.default_rng(0), lrs=np.logspace(-3, -1, 4),
                                  plasticities=np.logspace(1, 4, 4), seeds=4)
    study_id = insert_study(db, "running", configs, outcomes, trial_status=TrialStatus.RUNNING)
    # Nothing finished: no fit, so the Sobol sequence continues after the 16 planned configurations.
    assert propose(db, spec, study_id, 3, np.random.default_rng(0)) == sobol_points(spec, 16, 3)


def test_boundary_filter_skips_predicted_explosions():
    import optuna

    from sweeper.sweep.search import ask_filtered

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = parse_study(study_text('kind = "optuna"\nconfigs = 4\nboundary_fit = "g"\nmax_skips = 30'))
    ostudy = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), directions=["minimize"])

    def predict(point):  # stable only at lr * plasticity < 1
        return 1.0 if point["lr"] * point["plasticity"] < 1 else 0.0

    number, point = ask_filtered(ostudy, spec, predict)
    assert point["lr"] * point["plasticity"] < 1
    skipped = [t for t in ostudy.trials if t.number != number]
    assert skipped and all(t.state == optuna.trial.TrialState.FAIL for t in skipped)
    assert all(t.user_attrs["sweeper_verdict"].startswith("skipped: predicted to explode (P(stable)=0")
               for t in skipped)
    assert all(t.params["lr"] * t.params["plasticity"] >= 1 for t in skipped)

    never = parse_study(study_text('kind = "optuna"\nconfigs = 4\nboundary_fit = "g"\nmax_skips = 3'))
    before = len(ostudy.trials)
    number, point = ask_filtered(ostudy, never, lambda p: 0.1 * p["lr"])  # nothing passes: bounded retries
    assert len(ostudy.trials) == before + 4  # 3 skipped, then the most stable of them, enqueued
    best = max(ostudy.trials[before:before + 3], key=lambda t: t.params["lr"])
    assert point == best.params


# ---------------------------------------------------------------------------------------------------
# Frontier vs grid


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the comparison is arithmetic; the reads run on both elsewhere
def test_compare_counts_configurations_until_inside_the_reference(db):
    from sweeper.analysis.compare import compare_studies, format_comparison

    configs, outcomes = synthetic(np.random.default_rng(0))
    insert_study(db, "ref", configs, outcomes)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(configs))
    insert_study(db, "again", [configs[i] for i in order], [outcomes[i] for i in order])
    r = compare_studies(db, "ref", "again", bootstrap=20)
    assert r["reference"]["configs"] == len(configs) and r["study"]["configs"] == len(configs)
    assert [c["configs"] for c in r["curve"]] == list(range(1, len(configs) + 1))
    assert r["curve"][-1]["inside"]  # the same members give the reference's own estimate
    assert r["stays_inside_from"] is not None and r["first_inside"] <= r["stays_inside_from"]
    assert r["fraction_of_reference"] == r["stays_inside_from"] / len(configs)
    assert not r["curve"][0]["inside"] and r["curve"][0]["slope"] is None  # one configuration: no fit
    json.dumps(r, allow_nan=False)
    assert "inside from n =" in format_comparison(r)
    # the same members: the final refit is the reference's own line, so it errs on as many of them
    assert r["curve"][-1]["errors_on_reference"] == r["reference_errors"] == r["study_errors_on_reference"]
    assert r["predicts_from"] is not None and "refits err on at most as many" in format_comparison(r)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_compare_counts_the_reference_members_a_refit_misplaces(db):
    """A study whose boundary lies one decade of plasticity lower misplaces the reference's members between
    the two lines: it never predicts them as well as the reference's own line."""
    from sweeper.analysis.boundary import fit_members, load_members
    from sweeper.analysis.compare import compare_studies, errors_on, format_comparison

    configs, outcomes = synthetic(np.random.default_rng(0))
    insert_study(db, "ref", configs, outcomes)
    shifted = [{**c, "plasticity": c["plasticity"] / 10} for c in configs]  # the same outcomes a decade lower
    insert_study(db, "shifted", shifted, outcomes)
    r = compare_studies(db, "ref", "shifted", bootstrap=20)
    ref = load_members(db, "ref")
    s = np.log10(ref.hypers["lr"] * ref.hypers["plasticity"])
    moved = int((ref.stable & (s >= C - 1) & (s < C - 0.25)).sum())  # stable, well below the shifted line
    assert moved > 10 and r["study_errors_on_reference"] >= r["reference_errors"] + moved
    assert r["predicts_from"] is None and "never stay at or below" in format_comparison(r)
    assert errors_on(fit_members(ref, bootstrap=0, cv=False), ref) == r["reference_errors"]


# ---------------------------------------------------------------------------------------------------
# End to end (Ray)


FRONTIER_E2E = """
name = "frontier_e2e"
[task]
name = "reversal"
n = 3
[model]
depth = 1
width = 16
[train]
batch_size = 8
batches = 60
metrics_every = 10
[search]
kind = "frontier"
configs = 8
initial = 4
[[objectives]]
metric = "explosion_rate"
[space.lr]
low = 1e-3
high = 3e-1
log = true
[space.plasticity]
low = 10.0
high = 1e5
log = true
[execution]
seeds = 3
members_per_trial = 6
eval_batches = 1
report_every = 20
"""


@pytest.mark.slow
def test_frontier_study_end_to_end(local_ray, tmp_path: Path):
    from sweeper.db import open_db
    from sweeper.sweep.driver import submit

    path = tmp_path / "frontier.toml"
    path.write_text(FRONTIER_E2E)
    url = f"sqlite:///{tmp_path / 'sweeper.sqlite3'}"
    result = submit(str(path), storage=url, progress=False)
    assert result.status == "COMPLETE" and result.planned == 4
    assert sum(result.members.values()) == 8 * 3
    db = open_db(url)
    import sqlalchemy as sa

    with db.read_session() as s:
        index = sorted(s.scalars(sa.select(Member.config_index).distinct()).all())
        points = [p for ps in s.scalars(sa.select(Trial.points)).all() for p in ps]
    assert index == list(range(8))
    assert len({(p["point"]["lr"], p["point"]["plasticity"]) for p in points}) == 8
    assert all(p["optuna"] is not None for p in points)
    db.dispose()


def test_boundary_filter_repairs_a_proposal_onto_the_stable_side(grid_study):
    from sweeper.sweep.frontier import BoundaryFilter

    fit_boundary(grid_study, "grid", bootstrap=0)
    spec = parse_study(study_text('kind = "optuna"\nconfigs = 4\nboundary_fit = "grid"\nmin_p_stable = 0.6'))
    flt = BoundaryFilter.open(grid_study, spec, study_id=0)
    point = {"lr": 0.05, "plasticity": 5000.0}  # deep in the exploding corner
    assert flt.predict(point) < 0.1
    moved = flt.repair(point)
    assert 0.6 <= flt.predict(moved) < 0.7  # just across, not to the far corner
    assert 1e-3 <= moved["lr"] <= 1e-1 and 10 <= moved["plasticity"] <= 1e4
    missing = parse_study(study_text('kind = "optuna"\nconfigs = 4\nboundary_fit = "nofit"'))
    from sweeper.sweep.frontier import check_source

    with pytest.raises(StudyError, match="no study named 'nofit'"):
        check_source(grid_study, missing)


# ---------------------------------------------------------------------------------------------------
# The fast-weight families: each in its own plane


@pytest.mark.parametrize("kind, y", [("fwp", "beta_scale"), ("fastweights", "eta")])
def test_family_fit_recovers_the_planted_line_in_its_plane(db, kind, y):
    make_study(db, kind, members=900, steps=1, seed=2, kind=kind)
    report = fit_boundary(db, kind, bootstrap=60)
    p = report.payload
    assert report.plane == ("lr", y) and p["plane"] == ["lr", y] and p["model_kind"] == kind
    assert p["features"] == ["lr", y, "lambda", "clip"]  # the family's axes, never plasticity
    assert p["transforms"] == {"lr": "log10", y: "log10", "lambda": "log10(1 - lambda)", "clip": "log10"}
    lo, hi = report.slope_ci
    assert lo <= FAMILY_SLOPE <= hi and hi - lo < 0.5 and report.consistent_with_product is True
    ilo, ihi = report.intercept_ci
    assert ilo <= FAMILY_INTERCEPT <= ihi
    assert report.cv_accuracy >= 0.8 and report.auroc >= 0.9
    b = p["boundary"]
    assert (b["x"], b["y"]) == ("lr", y) and b["equation"].startswith(f"log10 {y} = slope * log10 lr + intercept")
    assert b["stable_side"] == "below"
    hypothesis = p["product_hypothesis"]
    assert hypothesis["product"] == f"lr * {y}" and f"stability set by lr * {y})" in hypothesis["statement"]
    assert set(p["cells"][0]) == {"lr", y, "members", "unstable", "explosion_rate", "ci95"}
    # lambda = 1 and clip inf each one decade beyond the others (0.9: log10(1 - 0.9) = -1; clip 1: 0)
    assert p["limits"]["lambda"] == pytest.approx(-2.0) and p["limits"]["clip"] == pytest.approx(1.0)
    assert p["clip_inf_log10"] == p["limits"]["clip"]
    json.dumps(p, allow_nan=False)
    lr = np.logspace(-3, -1.5, 4)
    on_line = 10 ** (b["slope"] * np.log10(lr) + b["intercept"])
    at = {"lambda": b["others_at_median"]["lambda"], "clip": b["others_at_median"]["clip"] or math.inf}
    assert np.allclose(p_stable(p, {"lr": lr, y: on_line, **at}), 0.5, atol=1e-6)  # its own feature names
    ends = p_stable(p, {"lr": 1e-2, y: 1.0, "lambda": [1.0, 1 - 10**-2.0], "clip": [math.inf, 10.0]})
    assert ends[0] == pytest.approx(ends[1])  # lambda 1 and clip inf sit where the fit put them
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        p_stable(p, {"lr": 1e-2, "momentum": 0.9})


def test_eta_zero_is_placed_one_decade_below_the_smallest_positive_eta(db):
    make_study(db, "fw", members=600, steps=1, seed=3, kind="fastweights")
    p = fit_boundary(db, "fw", bootstrap=0, store=False).payload
    assert p["limits"]["eta"] == pytest.approx(-2.0)  # the smallest positive eta is 0.1
    zero, tenth_of_smallest = p_stable(p, {"lr": 1e-2, "eta": [0.0, 0.01]})
    assert zero == pytest.approx(tenth_of_smallest) and zero > 0.9  # no fast weights: stable


def test_a_study_files_plane_is_read_from_its_stored_spec(db):
    make_study(db, "decay", members=600, steps=1, seed=4, kind="fwp", plane=["lr", "lambda"])
    report = fit_boundary(db, "decay", bootstrap=0, store=False)
    assert report.plane == ("lr", "lambda")
    assert report.payload["boundary"]["equation"].startswith("log10(1 - lambda) = slope * log10 lr + intercept")
    assert "lr * (1 - lambda)" in report.payload["product_hypothesis"]["product"]
    assert set(report.payload["boundary"]["others_at_median"]) == {"beta_scale", "clip"}


def test_a_family_plane_axis_that_does_not_vary_is_refused_naming_the_plane(db):
    configs = [{"lr": lr} for lr in (1e-3, 1e-2, 1e-1)]
    with db.session() as s:  # a fwp study whose beta_scale stayed at 1
        study, trial = add_study_with_trial(s, name="flat", spec={"model": {"kind": "fwp"}}, status=StudyStatus.COMPLETE,
                                            trial_columns={"points": []})
        for i, config in enumerate(configs):
            for seed in range(6):
                s.add(Member(trial_id=trial.id, study_id=study.id, pack_index=10 * i + seed, config_index=i, seed=seed,
                             config={}, model_kind="fwp", beta_scale=1.0, lam=1.0, clip=math.inf, steps_done=10,
                             outcome=Outcome("exploded" if i == 2 or seed < i else "stable"), **config))
    with pytest.raises(BoundaryError, match=r"beta_scale takes a single value \(1\).*\(lr, beta_scale\) plane"):
        fit_boundary(db, "flat")


def test_a_format_1_payload_still_means_lr_and_plasticity(grid_study):
    """Fits stored before payloads named their plane: (lr, plasticity), log10, clip's limit only."""
    from sweeper.analysis.boundary import payload_kind, payload_limits, payload_plane
    from sweeper.dashboard.optional import _headline

    payload = fit_boundary(grid_study, "grid", bootstrap=20, store=False).payload
    old = {k: v for k, v in payload.items() if k not in ("plane", "model_kind", "transforms", "limits")}
    old["format"], old["clip_inf_log10"] = 1, None
    assert (payload_plane(old), payload_kind(old), payload_limits(old)) == (("lr", "plasticity"), "ephemeral", {})
    points = {"lr": np.logspace(-3, -1, 5), "plasticity": np.logspace(1, 4, 5)}
    np.testing.assert_array_equal(p_stable(old, points), p_stable(payload, points))
    headline = _headline(old, {"kind": "logistic"})
    assert "log10 plasticity = " in headline and "log10 lr + " in headline and "(lr * plasticity)" in headline


def test_cli_prints_a_family_fit_with_its_own_axis_names(db, db_url, capsys):
    make_study(db, "fwp_cli", members=600, steps=1, seed=5, kind="fwp")
    code, out, _ = run_cli("boundary", "fwp_cli", "--bootstrap", "20", "--no-store", "--storage", db_url, capsys=capsys)
    assert code == 0, out
    assert "plane (lr, beta_scale)" in out and "log10 beta_scale = " in out and "* log10 lr + " in out
    assert "lr * beta_scale hypothesis" in out and "log10(1 - lambda)" in out
    assert "lambda 1 at log10(1 - lambda) = -2" in out and "no clip at log10 clip = 1" in out
    assert "plasticity" not in out
    code, out, _ = run_cli("boundary", "fwp_cli", "--bootstrap", "0", "--no-store", "--json", "--storage", db_url,
                           capsys=capsys)
    data = json.loads(out)
    assert data["plane"] == ["lr", "beta_scale"] and data["boundary"]["y"] == "beta_scale"


def test_fig7_of_a_family_study_is_in_its_plane(db):
    from sweeper.analysis.figures import fig6_info, fig7, fig7_info

    make_study(db, "fw_fig", members=600, steps=3, seed=6, kind="fastweights")
    info = fig7_info(db, "fw_fig")
    assert info["plane"] == ["lr", "eta"] and info["x_title"] == "log10 lr"
    assert info["y_title"] == "log10 eta (eta 0 at -2)"  # eta 0 is drawn, one decade below 0.1
    assert min(min(g["y"]) for g in info["members"].values() if g["count"]) < -1.9
    assert info["boundary"]["product"]["name"] == "lr * eta"
    assert fig7(db, "fw_fig").layout.yaxis.title.text == "log10 eta (eta 0 at -2)"
    traces = fig6_info(db, "fw_fig", per_class=2, max_points=5)
    assert traces["metrics"] == ["grad_fast_ratio", "grad_fast", "grad_rest"]
    assert all(set(t) >= {"lr", "eta", "grad_fast_ratio"} and "plasticity" not in t for t in traces["traces"])
