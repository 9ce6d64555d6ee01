"""tools/gpu_check: the pieces that can be checked without a GPU (the check itself needs one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sweeper.study.spec import parse_study
from tools import gpu_check

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_quickstart_is_the_quickstart_on_a_shared_cuda_device():
    source = (ROOT / "studies" / "quickstart.toml").read_text()
    cpu, gpu = parse_study(source), parse_study(gpu_check.gpu_quickstart(source))
    assert gpu.name == cpu.name + "_gpu"
    assert gpu.run.train.device == "cuda" and cpu.run.train.device == "cpu"
    assert gpu.execution.gpus == gpu_check.GPU_SHARE < 1
    assert gpu.space == cpu.space and gpu.fixed == cpu.fixed and gpu.execution.seeds == cpu.execution.seeds


def test_a_quickstart_without_the_edited_lines_is_refused():
    with pytest.raises(ValueError, match="gpus = 0"):
        gpu_check.gpu_quickstart('name = "q"\n[train]\n')


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal happens only where no CUDA device is present")
def test_without_cuda_it_refuses_and_says_so_in_the_json(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["device"]["cuda"] is False and "oracle" not in report


def test_every_model_is_benchmarked_and_the_oracle_files_exist():
    models = {args[args.index("--model") + 1] for _, args in gpu_check.BENCHES}
    assert models == {"ephemeral", "fastweights", "fwp"}
    assert all((ROOT / f).exists() for f in gpu_check.ORACLE_TESTS)
