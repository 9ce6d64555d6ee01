"""`sweeper train --model fastweights|fwp`, run in-process as a user would type it: the summary with the
families' stability signals, --json, run files, and refusals of options that belong to another model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sweeper.cli import main
from sweeper.cli.run import FAMILY_TRAIN_DEFAULTS
from sweeper.config import ConfigError
from sweeper.study.runfile import build_run

TINY = ("--width", "8", "--batches", "3", "--batch-size", "4", "--no-progress")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def member_rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()[:1].isdigit() and ("stable" in line or "exploded" in line)]


def strict(text: str) -> dict:
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))


def test_fastweights_prints_the_summary_with_its_stability_signals(capsys):
    threads = torch.get_num_threads()
    code, out, err = run_cli(capsys, "train", "--model", "fastweights", *TINY, "--inner-steps", "2",
                             "--lr", "1e-2,3e-3", "--eta", "0.5", "--lambda", "0.9", "--seeds", "0-1")
    assert code == 0, err
    first, *_, last = out.strip().splitlines()
    assert first.startswith("training 4 members: task key_recall (")
    for shown in ("fastweights hidden 8 relu, layer norm, 2 inner steps", "bptt adam float32", "3 batches of 4",
                  "lr 0.003,0.01;", "eta 0.5;", "lambda 0.9;", "seed 0,1", "1 CPU thread"):
        assert shown in first, (shown, first)
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    for column in ("eta", "lambda", "eval_mem", "no_fast", "fast_norm", "g_fast/rest"):
        assert column in header
    assert "trans_max" not in header  # no delta rule in fastweights
    assert len(member_rows(out)) == 4
    assert "no-memory baseline on memory positions: 0.111" in out
    assert last.startswith("best eval memory accuracy ") and "the no-memory baseline 0.111" in last
    assert torch.get_num_threads() == threads  # the run's one thread is the run's only


def test_fwp_delta_shows_the_transition_signal(capsys):
    code, out, err = run_cli(capsys, "train", "--model", "fwp", "--rule", "delta", "--phi", "identity", *TINY,
                             "--d-key", "4", "--d-value", "4", "--beta-scale", "0.5,1")
    assert code == 0, err
    assert "fwp delta d_model 8 d_key 4 d_value 4, 1 layer, phi identity, psi sigmoid, no decay" in out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    assert "beta_scale" in header and "trans_max" in header
    rows = member_rows(out)
    assert len(rows) == 2 and all(not math.isnan(float(row.split()[-1])) for row in rows)


def test_json_is_strict_and_names_the_axes(capsys):
    code, out, err = run_cli(capsys, "train", "--model", "fwp", "--rule", "gated_delta", "--decay", "constant",
                             *TINY, "--lambda", "0.8", "--seeds", "3", "--clip", "1", "--json")
    assert code == 0, err
    report = strict(out)
    assert report["model"]["kind"] == "fwp" and report["model"]["rule"] == "gated_delta"
    assert report["train"]["updater"] == "bptt" and report["train"]["optimizer"] == "adam"
    (member,) = report["members"]
    assert (member["lambda"], member["beta_scale"], member["clip"], member["seed"]) == (0.8, 1.0, 1.0, 3)
    assert member["outcome"] == "stable" and member["steps_done"] == 3
    for name in ("fast_norm", "grad_fast", "grad_rest", "grad_fast_ratio", "grad_fast_rms_ratio", "transition_max"):
        assert name in member["final"]
    assert set(member["eval"]) == {"mem_acc", "acc", "loss", "mem_acc_no_fast"}


def test_without_flags_the_family_defaults_are_announced(capsys):
    code, out, err = run_cli(capsys, "train", "--model", "fastweights", "--batches", "1", "--no-progress")
    assert code == 0, err
    first = out.splitlines()[0]
    d = FAMILY_TRAIN_DEFAULTS["fastweights"]
    for shown in (f"hidden {d['model']['hidden']}", f"bptt {d['train']['optimizer']}",
                  f"1 batches of {d['train']['batch_size']}", f"lr {d['members']['lr']:g};",
                  f"eta {d['members']['eta']:g};", f"lambda {d['members']['lambda']:g};",
                  f"seed {d['members']['seed']}"):
        assert shown in first, (shown, first)


def one_error_line(err: str, field: str) -> str:
    assert err.startswith(f"sweeper: error: {field}: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("argv, flag, own", [
    (["--model", "ephemeral", "--phi", "identity"], "--phi", "--plasticity"),
    (["--phi", "identity"], "--phi", "--plasticity"),  # ephemeral is the default model
    (["--model", "fwp", "--plasticity", "10"], "--plasticity", "--beta-scale"),
    (["--model", "fastweights", "--beta-scale", "2"], "--beta-scale", "--eta"),
    (["--model", "fwp", "--eta", "0.5"], "--eta", "--rule"),
    (["--model", "fastweights", "--depth", "3"], "--depth", "--inner-steps"),
    (["--model", "fwp", "--no-layer-norm"], "--no-layer-norm", "--d-key"),
    (["--model", "rnn", "--lambda", "0.9"], "--lambda", "--gamma"),
])
def test_an_option_of_another_model_is_refused_naming_the_flag_and_the_models_own(capsys, argv, flag, own):
    code, out, err = run_cli(capsys, "train", "--batches", "1", *argv)
    assert (code, out) == (2, "")
    line = one_error_line(err, flag)
    assert "applies to model" in line and "takes " in line and own in line


@pytest.mark.parametrize("argv, field", [
    (["--model", "fwp", "--phi", "relu"], "model.phi"),
    (["--model", "fwp", "--rule", "delta", "--decay", "constant"], "model.decay"),
    (["--model", "fastweights", "--lambda", "1.5"], "lambda"),
    (["--model", "fastweights", "--lambda", "0"], "lambda"),
    (["--model", "fastweights", "--eta=-1"], "eta"),
    (["--model", "fwp", "--lambda", "0.9"], "members[0].lambda"),  # decay none fixes lambda = 1
    (["--model", "fastweights", "--width", "1"], "model.hidden"),
    (["--model", "fastweights", "--updater", "dfa"], "train.updater"),
    (["--model", "fwp", "--grad-clip", "1"], "train.grad_clip"),
    (["--model", "fwp", "--threads", "0"], "--threads"),
    (["--model", "lstm"], "model.kind"),
])
def test_bad_family_values_are_refused_in_one_line(capsys, argv, field):
    code, out, err = run_cli(capsys, "train", "--batches", "1", *argv)
    assert (code, out) == (2, "")
    one_error_line(err, field)


FASTWEIGHTS_FILE = """
[task]
name = "key_recall"
[model]
kind = "fastweights"
hidden = 8
activation = "tanh"
layer_norm = false
[train]
optimizer = "sgd"
batches = 3
batch_size = 2
[members]
lr = [1e-2, 3e-2]
eta = 0.5
lambda = 0.9
seed = [0, 1]
"""

FWP_FILE = """
[task]
name = "reversal"
n = 2
[model]
kind = "fwp"
d_model = 8
d_key = 4
d_value = 4
layers = 2
rule = "hebb"
phi = "elu1"
decay = "learned"
[train]
batches = 3
batch_size = 2
[members]
lr = 1e-2
lambda = [0.8, 0.9]
"""


@pytest.mark.parametrize("text, kind, n", [(FASTWEIGHTS_FILE, "fastweights", 4), (FWP_FILE, "fwp", 2)])
def test_train_from_a_family_run_file(tmp_path, capsys, text, kind, n):
    path = tmp_path / "run.toml"
    path.write_text(text)
    code, out, err = run_cli(capsys, "train", str(path), "--json")
    assert code == 0, err
    report = strict(out)
    assert report["model"]["kind"] == kind and report["train"]["updater"] == "bptt"  # bptt without saying so
    assert report["train"]["optimizer"] == "sgd"  # a run file keeps the dataclass default
    assert len(report["members"]) == n and all(m["outcome"] == "stable" for m in report["members"])
    code, out, err = run_cli(capsys, "train", str(path), "--seeds", "5", "--no-progress")  # flags over the file
    assert code == 0, err
    assert len(member_rows(out)) == 2  # the file's other axes x the one seed


@pytest.mark.parametrize("text, field", [
    (FWP_FILE.replace("d_model = 8", "hidden = 8"), "model.hidden"),
    (FASTWEIGHTS_FILE.replace("eta = 0.5", "plasticity = 10"), "members.plasticity"),
    (FWP_FILE.replace("lambda = [0.8, 0.9]", "lambda = 1.0"), "members[0].lambda"),
    (FASTWEIGHTS_FILE.replace('kind = "fastweights"', 'kind = "lstm"'), "model.kind"),
])
def test_bad_family_run_files_name_the_file_and_field(tmp_path, capsys, text, field):
    path = tmp_path / "run.toml"
    path.write_text(text)
    code, out, err = run_cli(capsys, "train", str(path))
    assert (code, out) == (2, "")
    one_error_line(err, f"{path}: {field}")


def test_a_run_files_model_is_changed_in_the_file_not_by_flag(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(FWP_FILE)
    code, out, err = run_cli(capsys, "train", str(path), "--model", "fastweights")
    assert (code, out) == (2, "")
    assert "the run file's model is fwp" in one_error_line(err, "--model")


def test_a_study_does_not_take_a_family():
    with pytest.raises(ConfigError) as exc:
        build_run({"name": "key_recall"}, {"kind": "fwp"})
    assert exc.value.field == "model.kind" and "sweeper train" in exc.value.message


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fastweights", "fwp"])
def test_the_family_defaults_learn_key_recall(capsys, kind):
    code, out, err = run_cli(capsys, "train", "--model", kind, "--json")
    assert code == 0, err
    report = strict(out)
    (member,) = report["members"]
    assert member["outcome"] == "stable"
    assert member["eval"]["mem_acc"] >= 0.9 > report["no_memory_baseline"]
