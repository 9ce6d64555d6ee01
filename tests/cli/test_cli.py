"""The `sweeper` command, run in-process as a user would type it."""

from __future__ import annotations

import json
import math

import pytest

from sweeper.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_a_summary_per_member(capsys):
    code, out, _ = run_cli(capsys, "train", "--width", "16", "--batches", "20", "--batch-size", "4",
                           "--lr", "1e-2,3e-2", "--plasticity", "300", "--seeds", "0-1", "--no-progress")
    assert code == 0
    assert "no-memory baseline on memory positions: 0.111" in out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit() and ("stable" in line or "exploded" in line)]
    assert len(rows) == 4


def test_train_json_is_strict_and_traceable(capsys):
    code, out, _ = run_cli(capsys, "train", "--width", "16", "--batches", "10", "--batch-size", "4",
                           "--lr", "1e-2", "--seeds", "3", "--json")
    assert code == 0
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    (member,) = report["members"]
    assert member["seed"] == 3 and member["lr"] == 1e-2
    assert report["task"]["name"] == "key_recall" and report["model"]["width"] == 16
    assert member["outcome"] == "stable" and member["steps_done"] == 10
    assert 0 <= member["eval"]["mem_acc"] <= 1


def test_train_from_a_run_file(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text('[task]\nname = "reversal"\nn = 2\n[model]\nwidth = 8\n[train]\nbatches = 5\nbatch_size = 2\n'
                    "[members]\nlr = [1e-3, 1e-2]\nseed = [0, 1]\n")
    code, out, _ = run_cli(capsys, "train", str(path), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["task"] == {"name": "reversal", "n": 2, "n_symbols": 8, "repeats": 1}
    assert sorted((m["lr"], m["seed"]) for m in report["members"]) == [(1e-3, 0), (1e-3, 1), (1e-2, 0), (1e-2, 1)]


@pytest.mark.parametrize(
    "argv,field",
    [
        (["--lr=-1e-3"], "lr"),
        (["--lr", "nan"], "lr"),
        (["--plasticity", "0.5"], "plasticity"),
        (["--gamma", "0"], "gamma"),
        (["--ratio", "2"], "ratio"),
        (["--clip", "0"], "clip"),
        (["--task", "sudoku"], "task.name"),
        (["--task-param", "gap_max=0"], "task.gap_max"),
        (["--task-param", "colour=3"], "task.colour"),
        (["--updater", "hebb"], "train.updater"),
        (["--model", "lstm"], "model.kind"),
        (["--width", "0"], "model.width"),
        (["--batch-size", "0"], "train.batch_size"),
        (["--optimizer", "adam"], "train.optimizer"),
        (["--width", "65536", "--batch-size", "100000", "--seeds", "0-63"], "population"),
    ],
)
def test_bad_input_is_refused_before_compute(capsys, argv, field):
    code, out, err = run_cli(capsys, "train", "--batches", "1", *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"sweeper: error: {field}:"), err


@pytest.mark.parametrize(
    "text,field",
    [
        ("[task]\nname = 'key_recall'\n[model]\nwidht = 3\n", "model.widht"),
        ("[task]\nname = 'key_recall'\n[members]\nlr = [1e-3, nan]\n", "lr"),
        ("[task]\nname = 'key_recall'\n[members]\nlr = []\n", "members.lr"),
        ("[task]\nname = 'key_recall'\n[members]\nlearning_rate = 1e-3\n", "members.learning_rate"),
        ("[task]\nname = 'key_recall'\n[train]\nbatches = true\n", "train.batches"),
        ("[task]\nname = 'key_recall'\nname = 'reversal'\n", None),  # duplicate key: invalid TOML
        ("[tsak]\nname = 'key_recall'\n", "tsak"),
        ("[task]\ngap_max = 3\n", "task.name"),
        ("\ufeff[task]\nname = 'key_recall'\n[model]\ndepth = 'two'\n", None),
    ],
)
def test_bad_run_files_name_the_file_and_field(tmp_path, capsys, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    code, out, err = run_cli(capsys, "train", str(path))
    assert code == 2 and out == ""
    assert str(path) in err
    if field is not None:
        assert f"{field}:" in err or f"{field} " in err, err


def test_nonfinite_values_survive_as_strict_json():
    from sweeper import jsonio

    text = jsonio.dumps({"a": math.nan, "b": [math.inf, -math.inf, 1.5]})
    assert json.loads(text) == {"a": "NaN", "b": ["Infinity", "-Infinity", 1.5]}
