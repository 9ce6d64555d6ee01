"""`sweeper bench` on a tiny size: alternating rounds, the ratio from the rounds, the state sizes."""

from __future__ import annotations

import json
import statistics

import pytest

from sweeper.cli import main
from sweeper.engine.bench import bench, format_bench


def test_bench_reports_the_median_of_alternating_rounds_and_the_state_sizes():
    report = bench(width=16, depth=2, members=2, batch_size=4, batches=3, rounds=3, metrics_every=2,
                   updaters=("dfa", "bptt"))
    assert report["config"]["rounds"] == 3 and report["config"]["metrics_every"] == 2
    for r in report["results"]:
        assert len(r["speedup_rounds"]) == 3 and all(x > 0 for x in r["speedup_rounds"])
        assert r["speedup"] == statistics.median(r["speedup_rounds"])
        assert r["engine_member_steps_per_s"] > 0 and r["reference_member_steps_per_s"] > 0
        # the engine keeps the masked entries only (on average per member, at most the largest mask);
        # the reference keeps a dense copy of every hidden matrix per sequence
        assert 0 < r["engine_eph_state_bytes_per_sequence"] <= r["masked_entries_bytes_per_sequence"]
        assert r["reference_eph_state_bytes_per_sequence"] > 3 * r["engine_eph_state_bytes_per_sequence"]
    text = format_bench(report)
    assert "median of the rounds" in text and "bptt" in text


def test_bench_engine_alone_and_json(capsys):
    assert main(["bench", "--width", "16", "--members", "2", "--batch-size", "2", "--batches", "2",
                 "--rounds", "1", "--no-reference", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (r,) = out["results"]
    assert r["engine_member_steps_per_s"] > 0 and "speedup" not in r


@pytest.mark.parametrize("flag", ["--rounds", "--batches", "--reference-batches"])
def test_bench_refuses_an_empty_timing_before_any_compute(flag, capsys):
    assert main(["bench", "--width", "16", flag, "0"]) == 2
    err = capsys.readouterr().err
    assert "got 0; expected an integer in [1, 1000000]" in err and flag.lstrip("-").replace("-", "_") in err
