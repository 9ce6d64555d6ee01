"""`sweeper warn transfer`: the scale-free (`portable`) features' invariances, stated and checked
directly; the replay shortcut the matrix uses against OnlineWarner's own decisions; the matrix on
synthetic studies built so that what should carry over is known (a study whose explosions announce
themselves the same way in other units, another `metrics_every` and another task; one whose
explosions give no sign before they happen); `ratio_growth`; the CLI and its refusals.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest

from sweeper.db import Member, MemberMetric, Outcome, StudyStatus
from sweeper.engine.metrics import METRIC_NAMES
from sweeper.warn import RatioRule
from sweeper.warn.carry import feature_range, outside, precursor_shift, precursors
from sweeper.warn.evaluate import _run_warner, evaluate, outcomes_from_scores, scores_of
from sweeper.warn.features import (
    CHANCE_FEATURES,
    GROWTH_FEATURES,
    PORTABLE_FEATURES,
    TRAJECTORY_FEATURES,
    feature_matrix,
)
from sweeper.warn.history import History
from sweeper.warn.predictors import LossZScore
from sweeper.warn.signals import ModelSignals, chance_loss
from sweeper.warn.traces import load_traces
from sweeper.warn.transfer import (
    StudyTraces,
    TransferError,
    TransferSettings,
    check_request,
    fig6_data,
    load_study,
    ratio_growth,
    transfer_matrix,
)
from tests.helpers.cli import sweeper
from tests.helpers.db import add_study_with_trial

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
"""The fits take seconds each; both storage backends are covered by tests/warn/test_warn.py."""

KEY_RECALL, REVERSAL = {"name": "key_recall"}, {"name": "reversal", "n": 3}
LN_KEY_RECALL, LN_REVERSAL = math.log(12), math.log(9)  # 3 symbols + 9 values; separator + 8 symbols


# ---------------------------------------------------------------------------------------------------
# Synthetic members: signals smooth in log10 over batches, so that where a study records them (every
# `every` batches) and in which units does not change what they are.


@dataclass(frozen=True)
class Run:
    outcome: str = "stable"
    explode_step: int | None = None
    onset: int | None = None
    """Stored as explode_onset; from here on the loss is 3 x chance."""
    jump: int | None = None
    """From this batch the ephemeral gradient rises a decade per 20 batches (the announced explosion)."""
    every: int = 5
    budget: int = 160
    chance: float = LN_KEY_RECALL
    grad_unit: float = 1.0
    """A constant on both gradient norms (another unit)."""
    weight_unit: float = 1.0
    eph_unit: float = 1.0
    """A constant on the ephemeral gradient alone."""
    entries: tuple[int, int] = (1000, 9000)
    """(ephemeral, slow) entry counts: the raw ratio is the per-entry one times sqrt(n_eph / n_slow)."""
    noise: float = 0.02
    seed: int = 0

    def signals(self, step: int, rng) -> dict[str, float]:
        rise = 0.0 if self.jump is None or step < self.jump else (step - self.jump) / 20.0
        rms_ratio = 0.3 * 10 ** (rise - 0.002 * step + self.noise * rng.normal())
        n_eph, n_slow = self.entries
        grad_slow = 2.0 * 10 ** (-0.001 * step) * math.sqrt(n_slow) / 100
        grad_eph = rms_ratio * grad_slow * math.sqrt(n_eph / n_slow)
        loss = self.chance * 10 ** (-0.0008 * step + 0.01 * self.noise * rng.normal())
        if self.onset is not None and step >= self.onset:
            loss = 3.0 * self.chance
        return {
            "loss": loss, "acc": 0.3, "mem_acc": 0.2, "max_logit": 4.0 * 10 ** (0.001 * step + rise / 4),
            "grad_eph": self.grad_unit * self.eph_unit * grad_eph, "grad_slow": self.grad_unit * grad_slow,
            "grad_ratio": self.eph_unit * grad_eph / grad_slow, "grad_rms_ratio": self.eph_unit * rms_ratio,
            "w_eph": self.weight_unit * 0.5 * 10 ** (0.001 * step), "w_slow": self.weight_unit * 30.0,
        }  # fmt: skip

    def rows(self) -> list[tuple[int, bool, dict[str, float]]]:
        """(batch, full, metrics): the full rows every `every` batches, and a loss-only explosion row."""
        rng = np.random.default_rng(self.seed)
        out = []
        for step in range(0, self.budget, self.every):
            if self.explode_step is not None and step > self.explode_step:
                break
            out.append((step, True, self.signals(step, rng)))
        if self.explode_step is not None and self.explode_step % self.every:
            out.append((self.explode_step, False, {"loss": 9.0, "acc": 0.0, "mem_acc": 0.0, "max_logit": 1e3}))
        return out

    def history(self) -> History:
        h = History(0, {"lr": 1e-2, "plasticity": 1e3}, self.chance)
        for step, full, values in self.rows():
            h.append(step, full, step == self.explode_step, values)
        return h


def insert(db, name: str, runs: list[Run], *, task=KEY_RECALL, width: int = 64, updater: str = "dfa") -> None:
    """A finished study of these runs (one trial), its spec naming the task, width, updater and cadence."""
    every, budget = runs[0].every, runs[0].budget
    spec = {"task": dict(task), "model": {"kind": "ephemeral", "width": width},
            "train": {"batches": budget, "metrics_every": every, "explode_grace": 50, "updater": updater},
            "early_warning": {"min_step": 10}}
    with db.session() as s:
        study, trial = add_study_with_trial(s, name=name, status=StudyStatus.COMPLETE, spec=spec)
        for i, r in enumerate(runs):
            row = Member(trial_id=trial.id, study_id=study.id, pack_index=i, lr=1e-2 * (1 + i), plasticity=1e3,
                         ratio=0.1, gamma=0.7, clip=math.inf, seed=r.seed, config={}, outcome=Outcome(r.outcome),
                         explode_step=r.explode_step, explode_onset=r.onset, steps_done=budget)
            s.add(row)
            s.flush()
            s.add_all(MemberMetric.from_metrics(row.id, step, values) for step, _, values in r.rows())


def announced(n: int, seed0: int, **kw) -> list[Run]:
    """n exploding runs whose ephemeral gradient climbs from `jump`, 40-60 batches before the onset (half of
    the onsets at or after batch 100), and n stable runs."""
    exploding = []
    for i in range(n):
        jump = 40 + 15 * (i % 5)
        onset = jump + 40 + 5 * (i % 3)
        exploding.append(Run("exploded", onset + 7, onset=onset, jump=jump, seed=seed0 + i, **kw))
    return exploding + [Run(seed=seed0 + 100 + i, **kw) for i in range(n)]


def unannounced(n: int, seed0: int, **kw) -> list[Run]:
    """n exploding runs that look like stable ones until the batch they blow up (a loss-only row between
    two full ones, so no scored batch ever sees it), and n stable runs."""
    exploding = [Run("exploded", 63 + 10 * (i % 4), onset=63 + 10 * (i % 4), seed=seed0 + i, **kw) for i in range(n)]
    return exploding + [Run(seed=seed0 + 100 + i, **kw) for i in range(n)]


def features(run: Run, names=PORTABLE_FEATURES, upto: int | None = None) -> np.ndarray:
    v = run.history().view()
    return feature_matrix([v if upto is None else v.upto(upto)], names)[0]


def moved(a: np.ndarray, b: np.ndarray, names) -> set[str]:
    return {n for n, x, y in zip(names, a, b) if not math.isclose(x, y, rel_tol=0, abs_tol=1e-9)}


# ---------------------------------------------------------------------------------------------------
# The scale-free features


EXPLODING = Run("exploded", 127, onset=120, jump=70)


def test_portable_features_do_not_move_under_a_constant_on_the_signals():
    base = features(EXPLODING)
    units = replace(EXPLODING, grad_unit=30.0, weight_unit=0.01)  # every norm in other units
    assert moved(base, features(units), PORTABLE_FEATURES) == set()
    # the trajectory set reads levels: the same change of units moves it (so this test can fail)
    assert {"log_grad_slow_now"} <= moved(features(EXPLODING, TRAJECTORY_FEATURES), features(units, TRAJECTORY_FEATURES),
                                          TRAJECTORY_FEATURES)
    # a constant on the ephemeral gradient alone moves the ratio's level (a ratio of two norms) and nothing else
    eph = features(replace(EXPLODING, eph_unit=7.0))
    assert moved(base, eph, PORTABLE_FEATURES) == {"rms_ratio_start", "rms_ratio_now"}
    # every rise is the same for independent constants on each norm: GROWTH_FEATURES are scale-free too
    assert moved(features(EXPLODING, GROWTH_FEATURES), features(replace(units, eph_unit=7.0), GROWTH_FEATURES),
                 GROWTH_FEATURES) == set()


def _entries(width: int, V: int = 12, ratio: float = 0.1) -> tuple[int, int]:
    """(ephemeral, slow) entry counts of the ephemeral model, depth 2: hidden weights V x w and w x w (a
    `ratio` of them ephemeral), biases 2w, output w x V + V (docs/engine.md)."""
    hidden = V * width + width * width
    n_eph = round(ratio * hidden)
    return n_eph, hidden - n_eph + 2 * width + width * V + V


def test_portable_features_do_not_move_with_the_width():
    """The same per-entry dynamics at width 64 and 128: the raw norms and ratio differ by the entry counts
    (the raw ratio by sqrt(n_eph / n_slow)), and the portable features, which read the ratio per entry, do not."""
    w64, w128 = replace(EXPLODING, entries=_entries(64)), replace(EXPLODING, entries=_entries(128))
    h64, h128 = w64.history().view(), w128.history().view()
    assert not np.allclose(h64["grad_ratio"], h128["grad_ratio"], equal_nan=True)
    assert np.allclose(h64["grad_rms_ratio"], h128["grad_rms_ratio"], equal_nan=True)
    assert moved(features(w64), features(w128), PORTABLE_FEATURES) == set()
    assert "log_ratio_first" in moved(features(w64, TRAJECTORY_FEATURES), features(w128, TRAJECTORY_FEATURES),
                                      TRAJECTORY_FEATURES)


@pytest.mark.parametrize("upto", [40, 60, 120, 150])
def test_portable_features_do_not_move_with_metrics_every(upto):
    """Windows in batches, not rows: every 5th or every 10th batch of a signal log-linear over each window
    reads the same (the climb starts at batch 70: the windows of batch 120 lie after it, those of 60 before;
    a window across the kink is read differently by the two samplings, as any finite sampling would)."""
    smooth = replace(EXPLODING, noise=0.0, outcome="stable", onset=None, explode_step=None)
    five, ten = features(smooth, upto=upto), features(replace(smooth, every=10), upto=upto)
    assert moved(five, ten, PORTABLE_FEATURES) == set()
    # GROWTH_FEATURES' windows are rows: the same run recorded half as often reads differently
    assert moved(features(smooth, GROWTH_FEATURES, upto), features(replace(smooth, every=10), GROWTH_FEATURES, upto),
                 GROWTH_FEATURES)


def test_loss_features_read_the_loss_against_the_tasks_chance_loss():
    assert chance_loss(KEY_RECALL) == pytest.approx(LN_KEY_RECALL) and chance_loss(REVERSAL) == pytest.approx(LN_REVERSAL)
    assert chance_loss({"name": "palindrome", "length": 9, "n_symbols": 8}) == pytest.approx(math.log(8))
    assert chance_loss({"name": "nope"}) is None and chance_loss(None) is None
    assert ModelSignals.of_spec({"task": REVERSAL}).chance_loss == pytest.approx(LN_REVERSAL)
    assert ModelSignals.of_spec({"task": REVERSAL}) == ModelSignals("ephemeral")  # the task is no part of the signals
    kr, rev = features(EXPLODING), features(replace(EXPLODING, chance=LN_REVERSAL))
    assert moved(kr, rev, PORTABLE_FEATURES) == set()  # the same run relative to chance in either task
    assert "log_loss_now" in moved(features(EXPLODING, TRAJECTORY_FEATURES),
                                   features(replace(EXPLODING, chance=LN_REVERSAL), TRAJECTORY_FEATURES),
                                   TRAJECTORY_FEATURES)
    at_chance = dict(zip(PORTABLE_FEATURES, features(EXPLODING, upto=0)))
    assert at_chance["loss_vs_chance_now"] == pytest.approx(0.0, abs=1e-3)  # batch 0: the loss is ln V
    no_task = History(0, None, None)
    for step, full, values in EXPLODING.rows()[:3]:
        no_task.append(step, full, False, values)
    row = dict(zip(PORTABLE_FEATURES, feature_matrix([no_task.view()], PORTABLE_FEATURES)[0]))
    assert all(math.isnan(row[n]) for n in CHANCE_FEATURES)


def test_the_chance_loss_reaches_the_worker_and_a_predictor_needing_it_refuses_without():
    """The worker's warner gets ModelSignals.of_study(spec): its chance loss comes from the study's task."""
    from pathlib import Path

    from sweeper.study import load_study as load_study_file
    from sweeper.warn import LearnedPredictor

    root = Path(__file__).resolve().parents[2] / "studies"
    for name, ln_v in (("transfer_reversal3_w64_dfa_cpu", LN_REVERSAL), ("warn_keyrecall_fit_cpu", LN_KEY_RECALL),
                       ("transfer_palindrome_w64_dfa_cpu", math.log(8))):
        assert ModelSignals.of_study(load_study_file(root / f"{name}.toml")).chance_loss == pytest.approx(ln_v)
    p = LearnedPredictor(None, PORTABLE_FEATURES, 0.5, name="p")
    assert p.refusal(ModelSignals("ephemeral", chance_loss=LN_KEY_RECALL)) is None
    assert "loss_vs_chance_now, loss_vs_chance_best, the loss against the task's chance loss" in p.refusal(
        ModelSignals("ephemeral"))
    assert LearnedPredictor(None, GROWTH_FEATURES, 0.5).refusal(ModelSignals("ephemeral")) is None


# ---------------------------------------------------------------------------------------------------
# The replay shortcut: decisions at any threshold from one replay's scores


@SQLITE_ONLY
def test_outcomes_from_scores_agree_with_online_warner(db):
    insert(db, "mixed", announced(4, 0) + unannounced(2, 50)[:2])
    traces = load_traces(db, "mixed")
    for predictor in (RatioRule(), LossZScore(), RatioRule(threshold=0.1)):
        scores = scores_of(traces, predictor, 10)
        for threshold in (predictor.threshold, 0.05, 0.6):
            direct = _run_warner(traces, predictor, 10, threshold, 30)
            derived = outcomes_from_scores(scores, threshold, 30)
            assert derived.alarm == direct.alarm
            assert derived.max_score == pytest.approx(direct.max_score)
            assert derived.first_scores == direct.first_scores
    assert any(a is not None for a in outcomes_from_scores(scores_of(traces, RatioRule(), 10), 0.3, 10).alarm)


# ---------------------------------------------------------------------------------------------------
# The matrix


@pytest.fixture(scope="module")
def three_studies(fresh_database, tmp_path_factory):
    """fit: announced explosions, key recall, every 5. elsewhere: the same dynamics in other units, every 10,
    reversal, width 128. silent: explosions with no sign before them, under another updater. (url, db)"""
    from sweeper.db import open_db, upgrade

    with fresh_database("sqlite", tmp_path_factory.mktemp("transfer")) as url:
        upgrade(url)
        db = open_db(url)
        insert(db, "fit", announced(8, 0))
        insert(db, "elsewhere", announced(6, 500, every=10, grad_unit=30.0, weight_unit=0.1, chance=LN_REVERSAL,
                                          entries=_entries(128, V=9)), task=REVERSAL, width=128)
        insert(db, "silent", unannounced(6, 900), updater="backprop")
        yield url, db
        db.dispose()


@pytest.fixture(scope="module")
def matrix(three_studies):
    """Fitted on fit and on elsewhere in turn, evaluated on all three (the fits take seconds: done once)."""
    studies = [load_study(three_studies[1], n) for n in ("fit", "elsewhere", "silent")]
    return studies, transfer_matrix(studies, ["fit", "elsewhere"], TransferSettings(features="portable", min_step=10))


def test_matrix_cells_of_a_predictor_fitted_on_one_study(three_studies, matrix):
    db = three_studies[1]
    studies, r = matrix
    assert studies[1].setting == {"model": "ephemeral", "task": "reversal n=3", "width": 128, "updater": "dfa",
                                  "metrics_every": 10, "batches": 160}
    json.dumps(r, allow_nan=False)
    cells = {c["evaluated_on"]: c for c in r["cells"] if c["fitted_on"] == "fit"}
    assert list(cells) == ["fit", "elsewhere", "silent"]
    own, there, silent = cells["fit"], cells["elsewhere"], cells["silent"]
    assert own["out_of_fold"] and own["meets_target"] is None  # the diagonal is a reference, not counted
    assert there["changed"] == ["task", "width", "metrics_every"] and silent["changed"] == ["updater"]
    learned = there["detectors"]["learned"]
    assert learned["auroc"] >= 0.9 and learned["false_stop_rate"] <= 0.05 and there["meets_target"]
    onsets = [t.explode_onset for t in studies[1].traces if t.exploded]
    assert there["late_explosions"] == sum(o >= 100 for o in onsets) >= 3 and learned["late_recall"] == 1.0
    assert learned["median_lead_time"] > 0  # the climb starts 40 batches before the onset
    assert not silent["meets_target"] and "AUROC" in silent["why"]
    assert {"fitted_on": "fit", "evaluated_on": "elsewhere"} in r["meeting"]
    missing = {m["evaluated_on"]: m for m in r["missing"] if m["fitted_on"] == "fit"}
    assert missing["silent"]["why"] == silent["why"] and missing["silent"]["reasons"] == silent["reasons"]
    # the rules' figures are those of `warn eval` on the same members
    rule = evaluate(db, "elsewhere", RatioRule(), min_step=10)["results"]["predictor"]
    keys = ("auroc", "false_stop_rate", "recall", "median_lead_time", "compute_saved")
    assert {k: there["detectors"]["ratio_rule"][k] for k in keys} == {k: rule[k] for k in keys}
    assert set(there["detectors"]) == {"learned", "ratio_rule", "loss_zscore", "median_rule"}
    assert r["studies"][2]["exploded"] == 6 and r["studies"][2]["late_explosions"] == 0
    fit = r["fits"][0]
    assert (fit["fitted_on"], fit["members"], fit["exploded"]) == ("fit", 16, 8)
    assert fit["threshold"] == fit["out_of_fold"]["threshold"]


def test_a_missed_cell_says_which_explosions_no_detector_could_see_and_what_moved_its_false_stops(three_studies,
                                                                                                  matrix):
    """`shifted`: its stable runs' ephemeral gradient climbs as the fitted study's explosions do (and never
    explodes), and a third of its explosions are decided at batch 5, before the first scored batch."""
    studies, _ = matrix
    db = three_studies[1]
    climbing = [Run(seed=700 + i, jump=40) for i in range(6)]
    early = [Run("exploded", 5, onset=0, seed=720 + i) for i in range(3)]
    insert(db, "shifted", announced(6, 740)[:6] + early + climbing)
    target = load_study(db, "shifted")
    r = transfer_matrix([studies[0], target], ["fit"], TransferSettings(features="portable", min_step=10))
    cell = next(c for c in r["cells"] if c["evaluated_on"] == "shifted")
    assert cell["meets_target"] is False and "false stops" in cell["why"]
    why = cell["reasons"]
    assert why["exploded_before_min_step"] == 3 and why["exploded"] == 9
    learned = cell["detectors"]["learned"]  # the three decided at batch 5 rank lowest, unless left out
    assert learned["auroc_running"] > learned["auroc"]
    assert why["false_stop_batch_median"] >= 40  # alarmed once their climb began
    top = why["false_stops"][0]
    assert top["feature"] in {"ratio_rise", "grad_eph_rise", "ratio_trend"}, why["false_stops"]
    assert top["median_push"] > 0 and top["median_value"] > top["fitted_stable_median"] + 0.3
    code_text = _transfer_lines(r)
    assert "3 of 9 explosions were decided before batch 10" in code_text
    assert f"pushed over the threshold by: {top['feature']}" in code_text


@SQLITE_ONLY
def test_a_precursor_that_points_the_other_way_is_named_reversed(db):
    """leads: the runs that explode climb from batch 0 (their ratio rises before the onset at 80); flipped:
    the stable runs climb and the exploding ones do not; flat: nothing climbs. Read at batch 30, before
    any onset."""
    def study(n: int, seed0: int, climbing: str | None) -> list[Run]:
        exploding = [Run("exploded", 87, onset=80, jump=0 if climbing == "exploded" else None, seed=seed0 + i)
                     for i in range(n)]
        return exploding + [Run(seed=seed0 + 100 + i, jump=0 if climbing == "stable" else None) for i in range(n)]

    insert(db, "leads", study(8, 0, "exploded"))
    insert(db, "flipped", study(8, 300, "stable"))
    insert(db, "flat", study(8, 600, None))
    leads, flipped, flat = (load_study(db, n) for n in ("leads", "flipped", "flat"))
    signs = {s.name: precursors(s.traces, PORTABLE_FEATURES, 30) for s in (leads, flipped, flat)}
    assert signs["leads"]["ratio_rise"] == 1.0 and signs["flipped"]["ratio_rise"] == 0.0
    assert abs(signs["flat"]["ratio_rise"] - 0.5) < 0.3  # noise only
    assert signs["leads"]["nonfinite"] is None  # constant: no ranking
    assert precursors(leads.traces, ("ratio_rise",), 100) == {"ratio_rise": None}  # every onset is before it
    shift = {p["feature"]: p for p in precursor_shift(signs["leads"], signs["flipped"])}
    assert shift["ratio_rise"]["verdict"] == "reversed" and shift["ratio_rise"]["fitted_auroc"] == 1.0
    assert len(shift) == 4 and all(abs(p["fitted_auroc"] - 0.5) >= 0.1 for p in shift.values())
    assert {p["feature"]: p["verdict"] for p in precursor_shift(signs["leads"], signs["leads"])} == {
        f: "kept" for f in shift}
    r = transfer_matrix([leads, flipped], ["leads"], TransferSettings(features="portable", min_step=30))
    assert r["precursors"] == {"at": 30, "by_study": {"leads": signs["leads"], "flipped": signs["flipped"]}}
    (miss,) = r["missing"]
    assert miss["evaluated_on"] == "flipped" and "AUROC" in miss["why"]
    assert {p["feature"]: p["verdict"] for p in miss["reasons"]["precursors"]}["ratio_rise"] == "reversed"
    text = _transfer_lines(r)
    assert "ratio_rise 1.00 -> 0.00 (reversed)" in text and "each feature alone at batch 30" in text
    # flipped's runs are leads' with the climb moved to the other outcome: inside the range of the climb
    assert r["cells"][1]["outside"]["by_feature"]["ratio_rise"] <= 0.2


@SQLITE_ONLY
def test_the_share_of_members_outside_the_fitted_range_needs_no_outcomes(db):
    """Runs in other units on the ephemeral gradient (a level the portable set reads: rms_ratio_*) fall
    outside the fitted range in those features; the same dynamics in other units of every norm do not."""
    insert(db, "base", announced(40, 0))
    insert(db, "units", announced(40, 1000, grad_unit=30.0, weight_unit=0.1))
    insert(db, "eph", announced(40, 2000, eph_unit=100.0))
    base, units, eph = (load_traces(db, n) for n in ("base", "units", "eph"))
    fitted = feature_range(base, PORTABLE_FEATURES, 20)
    assert fitted["members"] == 80 and fitted["low"]["ratio_rise"] < fitted["high"]["ratio_rise"]
    assert max(outside(base, fitted)["by_feature"].values()) <= 2 / 80  # its own: the extremes at most
    assert "log_step" not in outside(base, fitted)["by_feature"]
    assert max(outside(units, fitted)["by_feature"].values()) <= 0.15  # other seeds' noise only
    far = outside(eph, fitted)
    assert far["any"] == 1.0 and list(far["by_feature"])[:2] in (["rms_ratio_start", "rms_ratio_now"],
                                                                  ["rms_ratio_now", "rms_ratio_start"])
    assert far["by_feature"]["rms_ratio_now"] == 1.0 and far["by_feature"]["ratio_rise"] <= 0.3
    assert outside([], fitted) == {"at": 20, "members": 0, "any": None, "by_feature": {}}


def _transfer_lines(report) -> str:
    from sweeper.cli.db import format_table
    from sweeper.cli.warn import _transfer_text

    return _transfer_text(report, format_table)


def test_all_pairs_fits_on_each_study_in_turn(matrix):
    _, r = matrix
    assert [(c["fitted_on"], c["evaluated_on"], c["out_of_fold"]) for c in r["cells"]] == [
        ("fit", "fit", True), ("fit", "elsewhere", False), ("fit", "silent", False),
        ("elsewhere", "fit", False), ("elsewhere", "elsewhere", True), ("elsewhere", "silent", False)]
    # the baselines do not depend on what was fitted: the same figures in every row
    by = {(c["fitted_on"], c["evaluated_on"]): c["detectors"] for c in r["cells"]}
    for target in ("fit", "elsewhere", "silent"):
        for name in ("ratio_rule", "loss_zscore", "median_rule"):
            assert by[("fit", target)][name] == by[("elsewhere", target)][name]
    assert len(r["meeting"]) + len(r["missing"]) == 4
    assert {"fitted_on": "elsewhere", "evaluated_on": "fit"} in r["meeting"]  # the way back carries over too


def test_requests_that_cannot_be_answered_are_refused():
    assert check_request(["a", "b", "c"], None, False) == ["a"]
    assert check_request(["a", "b"], "b", False) == ["b"]
    assert check_request(["a", "b"], "z", False) == ["z"]  # fit elsewhere, evaluate on both
    assert check_request(["a", "b"], None, True) == ["a", "b"]
    with pytest.raises(TransferError, match="STUDY: nothing to evaluate on"):
        check_request(["a"], None, False)
    with pytest.raises(TransferError, match="STUDY: nothing to evaluate on"):
        check_request(["a"], "a", False)
    with pytest.raises(TransferError, match="STUDY: got one study"):
        check_request(["a"], None, True)
    with pytest.raises(TransferError, match="given twice"):
        check_request(["a", "a"], None, False)
    with pytest.raises(TransferError, match="--fit"):
        check_request(["a", "b"], "a", True)
    one = StudyTraces("a", [], {"model": "ephemeral"})
    with pytest.raises(TransferError, match="--fit: z is not among"):
        transfer_matrix([one], ["z"])
    with pytest.raises(TransferError, match="no finished"):
        transfer_matrix([one], ["a"])


# ---------------------------------------------------------------------------------------------------
# The paper's claim, on synthetic traces


@SQLITE_ONLY
def test_ratio_growth_compares_members_before_their_onset(db):
    insert(db, "grow", announced(5, 0))
    r = ratio_growth(load_study(db, "grow"), upto=100)
    # climbs from 40, 55, 70, 85, 100, onsets 80, 100, 120, 125, 145: the three with onsets after batch 100 are
    # compared with the stable ones, having risen by about 1.5, 0.75 and 0 decades
    assert (r["stable"], r["exploded_later"], r["exploded_before"]) == (5, 3, 2)
    assert r["raw"]["median_growth_exploded"] > 0.2 > 0 > r["raw"]["median_growth_stable"]
    assert r["raw"]["grew_exploded"] >= 2 / 3
    # the per-entry ratio is the raw one times the member's constant: the same growth, another level
    assert r["rms"]["median_growth_exploded"] == pytest.approx(r["raw"]["median_growth_exploded"])
    assert r["rms"]["median_start_stable"] != pytest.approx(r["raw"]["median_start_stable"])
    assert 0.6 <= r["raw"]["auroc_growth"] < 1.0  # the climb from batch 100 has not begun: it ranks with the stable
    # the two that exploded by batch 100 (onsets 80, 100): their climb, up to the batches before the onset
    assert r["exploded_early_measured"] == 2 and r["raw"]["early_median_growth"] > 1.0 and r["raw"]["early_grew"] == 1.0


@SQLITE_ONLY
def test_fig6_data_bands_and_traces_stop_at_each_onset(db):
    runs = announced(5, 0)
    insert(db, "fig", runs)
    d = fig6_data(load_study(db, "fig"), upto=120, per_class=2, late_onset=100)
    c = d["classes"]
    onsets = sorted(r.onset for r in runs if r.onset is not None)  # 80, 100, 120, 125, 145
    assert (c["stable"]["members"], c["exploded_late"]["members"], c["exploded_early"]["members"]) == (
        5, sum(o >= 100 for o in onsets), sum(o < 100 for o in onsets))
    early = c["exploded_early"]
    assert max(row["step"] for row in early["bands"]) == 75  # its one member's onset is 80: rows up to 75
    assert max(row["step"] for row in c["stable"]["bands"]) == 120 and all(r["n"] == 5 for r in c["stable"]["bands"])
    assert len({t["member_id"] for t in c["stable"]["traces"]}) == 2  # per_class
    # a band is the quartiles of log10 of the members' values at that batch
    stable = [t for t in load_traces(db, "fig") if not t.exploded]
    for signal in ("loss", "grad_ratio", "grad_rms_ratio"):
        at50 = [float(t.history.view()[signal][t.history.view().step == 50][0]) for t in stable]
        band = {row["step"]: row for row in c["stable"]["bands"]}[50]
        assert [band[f"{signal}_q25"], band[f"{signal}_median"], band[f"{signal}_q75"]] == pytest.approx(
            list(np.percentile(np.log10(at50), [25, 50, 75])))
    first = c["stable"]["traces"][0]
    assert first["loss"] == pytest.approx(stable[0].history.view()["loss"][0])  # traces keep the stored values
    json.dumps(d, allow_nan=False)


# ---------------------------------------------------------------------------------------------------
# CLI


def test_cli_prints_the_matrix_and_refuses_by_field(three_studies, matrix, capsys):
    url = three_studies[0]
    code, out, err = sweeper("warn", "transfer", "fit", "elsewhere", "silent", "--features", "portable",
                             "--min-step", "10", "--json", "--storage", url, capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["cells"] == [c for c in matrix[1]["cells"] if c["fitted_on"] == "fit"]
    code, out, err = sweeper("warn", "transfer", "silent", "fit", "--fit", "fit", "--features", "portable",
                             "--min-step", "10", "--storage", url, capsys=capsys)
    assert code == 0, err
    assert "fitted on fit (key_recall, ephemeral w64, dfa, every 5): 16 members (8 exploded, 8 stable)" in out
    assert "learned predictor: AUROC / false stops" in out
    assert "0 of 1 cells off the diagonal meet it" in out and "misses: fit -> silent: AUROC" in out

    def refused(*argv):
        code, out, err = sweeper("warn", "transfer", *argv, "--storage", url, capsys=capsys)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (code, out, err)
        return err

    assert "STUDY: nothing to evaluate on" in refused("fit")
    assert "study: no study named 'absent'" in refused("fit", "absent")
    assert "--late-onset: got -1" in refused("fit", "elsewhere", "--late-onset", "-1")
    assert "--features: unknown feature set 'levels'" in refused("fit", "elsewhere", "--features", "levels")
    assert "--steps: 5 is before --min-step 20" in refused("fit", "elsewhere", "--steps", "5")
    with pytest.raises(SystemExit) as e:  # argparse: one of --fit and --all-pairs
        sweeper("warn", "transfer", "fit", "elsewhere", "--fit", "fit", "--all-pairs", "--storage", url,
                capsys=capsys)
    assert e.value.code == 2


def test_every_metric_the_synthetic_runs_record_is_an_engine_metric():
    assert set(Run().signals(0, np.random.default_rng(0))) == set(METRIC_NAMES)


# ---------------------------------------------------------------------------------------------------
# Cadences: a member as a sparser recording would have stored it


def _trace(run: Run, k: int = 0):
    from sweeper.warn.traces import Trace

    return Trace(k, "s", Outcome(run.outcome), run.explode_step, run.onset, False, run.budget, run.budget, 50,
                 {"lr": 1e-2, "plasticity": 1e3}, run.history(), ModelSignals("ephemeral", chance_loss=run.chance))


@pytest.mark.parametrize("explode_step", [None, 127, 125])
def test_a_trace_thinned_by_two_is_the_run_recorded_twice_as_sparsely(explode_step):
    """127: the explosion row between two full ones (loss-only either way); 125: a full row of every 5th
    batch that every 10th batch does not keep, so the thinned trace keeps it as the loss-only row a study
    recording every 10th batch stores."""
    from sweeper.warn.traces import thinned

    outcome = "stable" if explode_step is None else "exploded"
    five = replace(EXPLODING, noise=0.0, outcome=outcome, explode_step=explode_step,
                   onset=None if explode_step is None else 120)
    ten = replace(five, every=10)
    got, want = thinned(_trace(five), 2).history.view(), _trace(ten).history.view()
    assert got.step.tolist() == want.step.tolist()
    assert got.full.tolist() == want.full.tolist() and got.exploded.tolist() == want.exploded.tolist()
    full = want.full
    for name in ("loss", "grad_eph", "grad_slow", "w_eph", "max_logit"):
        assert np.allclose(got[name][full], want[name][full])
    if explode_step is not None:
        assert got.step[-1] == explode_step and not got.full[-1] and got.exploded[-1]
        assert math.isnan(got["grad_slow"][-1])  # a loss-only row
    assert thinned(_trace(five), 1) is not None and len(thinned(_trace(five), 1).history) == len(_trace(five).history)


def test_a_fit_over_cadences_learns_from_each_and_keeps_the_false_stop_budget_at_each():
    from sweeper.warn.fit import FitError, fit_traces

    runs = announced(10, 0)
    traces = [_trace(r, k) for k, r in enumerate(runs)]
    one = fit_traces(traces, PORTABLE_FEATURES, what="t", min_step=10)
    three = fit_traces(traces, PORTABLE_FEATURES, what="t", min_step=10, cadences=(1, 2, 4))
    r1, r3 = one.predictor.payload["report"], three.predictor.payload["report"]
    assert r3["examples"] == 3 * r1["examples"]  # every member gives as many points at each cadence
    oof = r3["out_of_fold"]
    assert oof["cadences"] == [1, 2, 4] and set(oof["false_stop_rate_by_cadence"]) == {"1", "2", "4"}
    assert all(v <= 0.05 for v in oof["false_stop_rate_by_cadence"].values())
    assert three.predictor.payload["cadences"] == [1, 2, 4] and one.predictor.payload["cadences"] == [1]
    assert "cadences" not in r1["out_of_fold"]
    for bad in (["0"], ["x"], [], ["1", "200"], ["2", "4"]):
        with pytest.raises(FitError, match="--cadences") as err:
            fit_traces(traces, PORTABLE_FEATURES, what="t", min_step=10, cadences=bad)
        assert f"got {','.join(bad)};" in str(err.value)  # as the flag is written, not a Python list


@SQLITE_ONLY
def test_a_fit_does_not_depend_on_the_order_its_members_were_written_in(db):
    """Member ids follow the order packs happened to finish; the folds of a fit must not."""
    from sweeper.warn.fit import fit_traces

    runs = announced(8, 0)
    insert(db, "forward", runs)
    insert(db, "backward", runs[::-1])
    fits = [fit_traces(load_traces(db, n), PORTABLE_FEATURES, what=n, min_step=10) for n in ("forward", "backward")]
    assert fits[0].oof == fits[1].oof
    assert fits[0].oof_scores == fits[1].oof_scores
