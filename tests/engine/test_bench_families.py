"""`sweeper bench --model fastweights|fwp` on a tiny size: FamilyPopulation against the family's
reference in alternating rounds, the ratio from the rounds; refusals of another engine's options."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from sweeper.cli import main
from sweeper.engine.bench import bench_family, format_bench


@pytest.mark.parametrize("kind, options", [
    ("fastweights", {"hidden": 8}),
    ("fwp", {"d_model": 8, "d_key": 4, "d_value": 4, "rule": "delta", "phi": "identity"}),
])
def test_bench_family_reports_the_median_of_alternating_rounds(kind, options):
    report = bench_family(kind, options, members=2, batch_size=2, batches=2, rounds=2)
    c = report["config"]
    assert c["model"]["kind"] == kind and c["members"] == 2 and c["member_sequences"] == 4
    (r,) = report["results"]
    assert r["form"] in ("matrix", "attention")
    assert len(r["speedup_rounds"]) == 2 and all(x > 0 for x in r["speedup_rounds"])
    assert r["speedup"] == statistics.median(r["speedup_rounds"])
    assert r["engine_member_steps_per_s"] > 0 and r["reference_member_steps_per_s"] > 0
    text = format_bench(report)
    assert "median of the rounds" in text and kind in text.splitlines()[3]


def test_bench_family_from_the_command_line_engine_alone(capsys):
    assert main(["bench", "--model", "fwp", "--rule", "gated_delta", "--decay", "learned", "--width", "8",
                 "--d-key", "4", "--d-value", "4", "--members", "2", "--batch-size", "2", "--batches", "1",
                 "--rounds", "1", "--no-reference", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["model"]["rule"] == "gated_delta" and out["config"]["model"]["d_model"] == 8
    (r,) = out["results"]
    assert r["engine_member_steps_per_s"] > 0 and "speedup" not in r


def test_bench_family_text(capsys):
    assert main(["bench", "--model", "fastweights", "--width", "8", "--members", "2", "--batch-size", "2",
                 "--batches", "1", "--rounds", "1", "--no-layer-norm", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fastweights hidden 8 relu, no layer norm, 1 inner step; key_recall, P=2 x B=2")
    assert "float64" in out and "x " in out.splitlines()[3]


@pytest.mark.parametrize("argv, field", [
    (["--model", "fwp", "--depth", "3"], "--depth"),
    (["--model", "fastweights", "--updaters", "bptt"], "--updaters"),
    (["--phi", "identity"], "--phi"),  # the ephemeral bench
    (["--optimizer", "sgd"], "--optimizer"),
    (["--model", "rnn"], "--model"),
    (["--model", "fwp", "--phi", "relu"], "model.phi"),
    (["--model", "fastweights", "--rounds", "0"], "rounds"),
])
def test_bench_refuses_options_of_another_engine_before_any_compute(capsys, argv, field):
    assert main(["bench", "--members", "1", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"sweeper: error: {field}: ") and captured.err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="refused only where no CUDA device is present")
def test_bench_family_on_a_missing_gpu_is_refused(capsys):
    assert main(["bench", "--model", "fwp", "--device", "cuda", "--no-reference"]) == 2
    assert capsys.readouterr().err.startswith("sweeper: error: train.device: ")
