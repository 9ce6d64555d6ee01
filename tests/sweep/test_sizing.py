"""`sweeper plan`: pack sizes for a GPU come from the engine's own memory estimate and always fit."""

from __future__ import annotations

import json

import pytest

from sweeper.config import Hyper
from sweeper.engine.population import estimate_bytes
from sweeper.study import load_study
from sweeper.sweep.sizing import member_bytes, parse_bytes, plan_packs

STUDY = "studies/fig7_reversal3_grid.toml"  # the paper's model size, 10 seeds, gpus = 0.25


@pytest.fixture(scope="module")
def spec():
    return load_study(STUDY, budget_bytes=2**62)


def test_parse_bytes():
    assert parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes("40 GB") == 40 * 10**9
    assert parse_bytes("24576MiB") == 24 * 2**30
    assert parse_bytes("1024") == 1024
    for bad in ("80x", "", "-1GiB", "0GiB", "GiB"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


@pytest.mark.parametrize("gpu_gib", [4, 16, 80])
def test_every_option_fits_and_is_the_largest_that_does(spec, gpu_gib):
    plan = plan_packs(spec, gpu_bytes=gpu_gib * 2**30)
    seeds = len(spec.execution.seeds)
    one = member_bytes(spec)
    for o in plan.options:
        assert o.members_per_trial % seeds == 0 and o.memory_members % seeds == 0
        assert o.members_per_trial <= o.memory_members
        if o.members_per_trial:
            # the engine's own estimate for the pack, at the largest ratio, is what the plan counts
            pack = estimate_bytes(spec.run, [Hyper(ratio=spec.fixed["ratio"])] * o.members_per_trial)
            assert o.trial_bytes == pack
            assert o.trials_per_gpu * (pack + plan.context_bytes) <= plan.usable_bytes
            assert o.trials_per_gpu * o.gpus <= 1.0
            assert o.trials * o.members_per_trial >= plan.members_total
        # one more configuration per trial would not fit
        bigger = o.memory_members + seeds
        assert o.trials_per_gpu * (one * bigger + plan.context_bytes) > plan.usable_bytes
    assert plan.recommended.trials_per_gpu == 4  # the study's gpus = 0.25


def test_a_study_too_big_for_the_gpu_is_flagged(spec):
    small = plan_packs(spec, gpu_bytes=int(1.0 * 2**30), context_bytes=0)
    per_trial = member_bytes(spec) * spec.execution.members_per_trial
    assert small.current_fits == (4 * per_trial <= small.usable_bytes)
    tiny = plan_packs(spec, gpu_bytes=64 * 2**20)
    assert not tiny.current_fits
    assert all(o.members_per_trial == 0 for o in tiny.options)  # 512 MiB of context alone does not fit


def test_cli_json_and_refusals(capsys):
    from sweeper.cli import main

    assert main(["plan", STUDY, "--gpu-memory", "24GiB", "--gpus", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"]["trials_per_gpu"] == 2 and out["gpu_bytes"] == 24 * 2**30
    assert main(["plan", STUDY, "--gpu-memory", "lots"]) == 2
    assert "memory size" in capsys.readouterr().err
    assert main(["plan", STUDY, "--gpus", "1.5"]) == 2
