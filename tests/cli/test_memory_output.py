"""What `sweeper status`, the `sweeper submit` summary and `sweeper train` say about memory: stable
members counted by their memory judgement, and `train` judging "remembers" by the studies' rule
(`sweeper.outcomes.judge_memory`) rather than by a plain comparison with the no-memory baseline."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from sweeper.db import Member, Outcome, open_db, upgrade
from sweeper.outcomes import memory_threshold
from tests.helpers.cli import sweeper
from tests.helpers.db import add_study_with_trial

# (outcome, remembers): 3 remember, 2 stable without memory, 1 stable unjudged, 2 exploded, 1 failed
MEMBERS = [("stable", True)] * 3 + [("stable", False)] * 2 + [("stable", None), ("exploded", None),
                                                               ("exploded", None), ("failed", None)]


@pytest.fixture
def judged_url(db_url):
    upgrade(db_url)
    db = open_db(db_url)
    with db.session() as s:
        study, trial = add_study_with_trial(s, name="judged", spec={}, planned_trials=1)
        for i, (outcome, remembers) in enumerate(MEMBERS):
            s.add(Member(trial_id=trial.id, study_id=study.id, pack_index=i, config_index=i, lr=1e-2,
                         plasticity=1e3, ratio=0.1, gamma=0.7, clip=math.inf, seed=i, config={},
                         outcome=Outcome(outcome), remembers=remembers, eval_mem_acc=0.9 if remembers else 0.1))
    db.dispose()
    return db_url


def test_status_counts_stable_members_by_their_memory_judgement(judged_url, capsys):
    code, out, _ = sweeper("status", "judged", "--storage", judged_url, capsys=capsys)
    assert code == 0, out
    header, _, row, *_ = out.splitlines()
    columns = header.split("  ")
    columns = [c.strip() for c in columns if c.strip()]
    values = row.split()
    counts = dict(zip(columns[-8:-1], [int(v) for v in values[-8:-1]]))
    assert counts == {"running": 0, "stable (memory)": 3, "stable (no memory)": 2, "stable (not judged)": 1,
                      "exploded": 2, "stopped_early": 0, "failed": 1}
    assert "judged stable (memory) or stable (no memory)" in out
    code, out, _ = sweeper("status", "judged", "--json", "--storage", judged_url, capsys=capsys)
    (progress,) = json.loads(out)
    assert progress["memory_outcomes"] == {"running": 0, "stable": 1, "stable (no memory)": 2, "stable (memory)": 3,
                                           "exploded": 2, "stopped_early": 0, "failed": 1}
    assert progress["members"]["stable"] == 6  # the stored outcome, unchanged


def test_the_submit_summary_counts_memory_when_the_study_judged_it():
    from sweeper.sweep.driver import SubmitResult, format_result

    memory = {"running": 0, "stable": 1, "stable (no memory)": 62, "stable (memory)": 25, "exploded": 57,
              "stopped_early": 0, "failed": 0}
    text = format_result(SubmitResult(study="s", status="COMPLETE", resumed=False, planned=6, ran=6,
                                      members={"stable": 88, "exploded": 57}, memory=memory))
    assert text.splitlines()[1] == ("  members: exploded 57, stable (memory) 25, stable (no memory) 62, "
                                    "stable (not judged) 1")
    unjudged = {**memory, "stable": 88, "stable (no memory)": 0, "stable (memory)": 0}
    text = format_result(SubmitResult(study="s", status="COMPLETE", resumed=False, planned=6, ran=6,
                                      members={"stable": 88, "exploded": 57}, memory=unjudged))
    assert text.splitlines()[1] == "  members: exploded 57, stable 88"  # nothing judged: as the outcomes are


def test_train_judges_memory_by_the_studies_rule(capsys):
    code, out, _ = sweeper("train", "--width", "16", "--batches", "10", "--batch-size", "4", "--lr", "1e-2",
                           "--seeds", "3", "--json", capsys=capsys)
    assert code == 0
    report = json.loads(out)
    (member,) = report["members"]
    positions = 10 * 4  # 10 evaluation batches of 4 key-recall sequences, one memory position each
    assert member["memory"]["positions"] == positions
    assert member["memory"]["threshold"] == pytest.approx(memory_threshold(1 / 9, positions))
    beats = member["eval"]["mem_acc"] * positions > member["memory"]["threshold"] * positions + 0.5
    assert member["memory"]["remembers"] is beats
    code, out, _ = sweeper("train", "--width", "16", "--batches", "10", "--batch-size", "4", "--lr", "1e-2",
                           "--seeds", "3", "--no-progress", capsys=capsys)
    lines = out.strip().splitlines()
    assert " memory " in next(line for line in lines if line.lstrip().startswith("#"))
    assert lines[-2].startswith("stable members that remember: ") and lines[-2].split(": ")[1].startswith(
        f"{int(beats)} of 1")
    assert lines[-1].startswith("best eval memory accuracy ")


@pytest.mark.parametrize("acc, verdict", [(0.512, "does not remember"), (0.6, "remembers")])
def test_train_does_not_call_a_chance_score_above_the_baseline(acc, verdict):
    """0.512 against a no-memory baseline of 0.500 over 640 memory positions is chance (the 95% bound is
    about 0.533), not memory; 0.6 is memory."""
    from sweeper.config import Hyper, RunConfig
    from sweeper.engine.train import format_summary, judge, train
    from sweeper.tasks import make_task

    run = RunConfig(task=make_task("key_recall"))
    run = replace(run, model=replace(run.model, width=8), train=replace(run.train, batches=2, batch_size=2))
    result = train(run, [Hyper(lr=1e-2, plasticity=300.0, seed=0)], eval_batches=1)
    (member,) = result.eval
    result = replace(result, baseline=0.5, eval={member: {**result.eval[member], "mem_acc": acc}})
    judged = judge(result, {0: 640})
    threshold = memory_threshold(0.5, 640)
    assert judged.memory[member].remembers is (verdict == "remembers") and judged.memory[member].threshold == threshold
    last = format_summary(judged).splitlines()[-1]
    assert last.startswith(f"best eval memory accuracy {acc:.3f} (member {member}): {verdict}"), last
    assert f"{threshold:.3f}" in last and "640 memory positions" in last and "the no-memory baseline 0.500" in last
    assert "above the no-memory baseline" not in last
