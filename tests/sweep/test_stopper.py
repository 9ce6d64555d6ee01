"""Whole packs stopped through Ray Tune (`[early_warning] pack_stop`), on a real local Ray; and the member-level
watcher in a fast-weight family's pack (fwp DeltaNet under `transition_bound`).

The rule: once `pack_stop` of a pack's members exploded or were stopped, Tune's PackStopper ends the
trial and the survivors are recorded as stopped early. What must hold: the pack's results are all
written (the write is not raced by Tune's end of the trial), the stopped survivors carry a warning
event, Optuna hears PRUNED for them, and packs that do not meet the rule run to the end.
"""

from __future__ import annotations

import json

import pytest

from sweeper.config import ConfigError
from sweeper.study import parse_study
from sweeper.sweep.stopper import pack_stop_due
from tests.helpers.sweep import rows

pytestmark = pytest.mark.slow

STUDY = """
name = "packstop"
[task]
name = "key_recall"
[model]
depth = 1
width = 16
[train]
updater = "dfa"
batch_size = 8
batches = 200
metrics_every = 10
[search]
kind = "grid"
[[objectives]]
metric = "final_loss"
[space.plasticity]
values = [1e7, 1e2, 2e2, 3e2]
[fixed]
lr = 0.1
[execution]
seeds = 2
members_per_trial = 4
report_every = 20
eval_batches = 0
[early_warning]
enabled = true
predictor = "ratio_rule"
threshold = 1e9          # the member-level rule never fires: only explosions count towards the pack rule
{pack_stop}
"""


def test_rule_counts_exploded_and_stopped_and_needs_survivors():
    report = {"members": 4, "running": 2, "exploded": 1, "stopped": 1}
    assert pack_stop_due(report, 0.5)
    assert not pack_stop_due(report, 0.75)
    assert not pack_stop_due({**report, "running": 0}, 0.5)  # nothing left to stop: the pack ends by itself
    assert not pack_stop_due(report, None)


def test_pack_stop_is_checked():
    with pytest.raises(ConfigError, match=r"early_warning.pack_stop: got 1; expected a number in \(0, 1\)"):
        parse_study(STUDY.format(pack_stop="pack_stop = 1.0"), "x.toml")
    with pytest.raises(ConfigError, match="early_warning.pack_stop: set, but early_warning.enabled is false"):
        parse_study(STUDY.format(pack_stop="pack_stop = 0.5").replace("enabled = true", "enabled = false"),
                    "x.toml")
    spec = parse_study(STUDY.format(pack_stop="pack_stop = 0.5"), "x.toml")
    assert spec.early_warning.pack_stop == 0.5 and spec.to_dict()["early_warning"]["pack_stop"] == 0.5


def test_tune_stops_the_pack_whose_members_exploded_and_nothing_is_lost(local_ray, tmp_path, db_url):
    from sweeper.sweep.driver import submit

    url = db_url  # SQLite and PostgreSQL
    path = tmp_path / "packstop.toml"
    path.write_text(STUDY.format(pack_stop="pack_stop = 0.5"))
    result = submit(str(path), storage=url, progress=False)
    assert result.status == "COMPLETE" and result.ran == 2
    # Pack 0 holds plasticity 1e7 (both seeds explode, 2 of 4 members) and 1e2; pack 1 is all stable.
    assert result.pack_stops == {"packs": 1, "tune": 1}

    members = rows(url, "SELECT t.number, m.plasticity, m.outcome, m.explode_step, m.stop_step, m.steps_done "
                        "FROM sw_members m JOIN sw_trials t ON t.id = m.trial_id ORDER BY t.number, m.pack_index")
    assert len(members) == 8
    pack0 = [m for m in members if m[0] == 0]
    exploded = [m for m in pack0 if m[1] == 1e7]
    survivors = [m for m in pack0 if m[1] == 1e2]
    assert [m[2] for m in exploded] == ["exploded", "exploded"]
    (stop,) = {m[4] for m in survivors}
    assert [m[2] for m in survivors] == ["stopped_early", "stopped_early"]
    assert stop is not None and (stop + 1) % 20 == 0 and stop < 199  # at a report, before the end
    assert all(m[5] == stop + 1 for m in survivors)
    assert stop >= max(m[3] for m in exploded)
    assert all(m[2] == "stable" and m[5] == 200 for m in members if m[0] == 1)

    events = rows(url, "SELECT w.predictor, w.action, w.step, w.score FROM sw_warnings w "
                       "JOIN sw_members m ON m.id = w.member_id ORDER BY m.pack_index")
    assert events == [("pack_stop", "stopped", stop, 0.5)] * 2
    assert rows(url, "SELECT status, count(*) FROM sw_trials GROUP BY status") == [("COMPLETE", 2)]
    states = rows(url, "SELECT t.number, t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
                       "WHERE s.study_name = 'sweeper/packstop' ORDER BY t.number")
    assert [s for _, s in states] == ["FAIL", "PRUNED", "COMPLETE", "COMPLETE"]


def test_without_pack_stop_the_survivors_run_to_the_end(local_ray, tmp_path):
    from sweeper.sweep.driver import submit

    url = f"sqlite:///{tmp_path / 'q.sqlite3'}"
    path = tmp_path / "packstop.toml"
    path.write_text(STUDY.format(pack_stop=""))
    result = submit(str(path), storage=url, progress=False)
    assert result.status == "COMPLETE" and result.pack_stops == {}
    outcomes = rows(url, "SELECT plasticity, outcome, steps_done FROM sw_members ORDER BY plasticity")
    assert [o for p, o, _ in outcomes if p == 1e7] == ["exploded", "exploded"]
    assert all(o == "stable" and d == 200 for p, o, d in outcomes if p != 1e7)
    assert rows(url, "SELECT count(*) FROM sw_warnings") == [(0,)]


# ---------------------------------------------------------------------------------------------------
# The member-level watcher in a fast-weight family's pack

FAMILY_STUDY = """
name = "dn_warn"
[task]
name = "key_recall"
[model]
kind = "fwp"
d_model = 8
d_key = 4
d_value = 4
rule = "delta"
phi = "silu_l2"
psi = "sigmoid"
[train]
optimizer = "adam"
batch_size = 4
batches = 12
metrics_every = 2
[search]
kind = "grid"
[[objectives]]
metric = "eval_mem_acc"
[space.beta_scale]
values = [1.5, 8.0]
[fixed]
lr = 1e-2
[execution]
seeds = 2
members_per_trial = 4
report_every = 6
eval_batches = 2
[early_warning]
enabled = true
predictor = "transition_bound"
min_step = 4
"""


def test_family_pack_stops_the_members_past_the_transition_bound(local_ray, tmp_path):
    """fwp DeltaNet with L2-normalized keys: eta_t ||phi(k_t)||^2 = beta_scale sigmoid(beta_t) < beta_scale, so
    the beta_scale 1.5 members can never reach the bound 2, and the beta_scale 8 members start near 4
    (sigmoid(beta_t) about 1/2 at initialization): those are stopped at the first scored batch, 4."""
    from sweeper.cli import main
    from tests.helpers.sweep import assert_study_sound

    url = f"sqlite:///{tmp_path / 'dn.sqlite3'}"
    path = tmp_path / "dn_warn.toml"
    path.write_text(FAMILY_STUDY)
    assert main(["submit", str(path), "--storage", url, "--no-progress"]) == 0
    assert_study_sound(url, "dn_warn", configs=2, seeds=2)
    members = rows(url, "SELECT beta_scale, outcome, stop_step, steps_done FROM sw_members ORDER BY beta_scale, seed")
    assert members == [(1.5, "stable", None, 12)] * 2 + [(8.0, "stopped_early", 4, 5)] * 2
    events = rows(url, "SELECT w.predictor, w.action, w.step, w.score, w.signals FROM sw_warnings w "
                       "JOIN sw_members m ON m.id = w.member_id ORDER BY m.seed")
    assert [e[:3] for e in events] == [("transition_bound", "stopped", 4)] * 2
    for *_, score, signals in events:
        signals = json.loads(signals) if isinstance(signals, str) else signals
        assert 2 <= score < 8 and signals["transition_max_peak"] == score
        assert {"transition_max", "grad_fast", "grad_rest", "fast_norm"} <= set(signals)  # the family's names
        assert "grad_eph" not in signals
    states = rows(url, "SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
                       "WHERE s.study_name = 'sweeper/dn_warn' ORDER BY t.number")
    assert [s for s, in states] == ["COMPLETE", "PRUNED"]
