"""The `sweeper` command, run in-process as a user would type it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import sweeper
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


# ---------------------------------------------------------------------------------------------------
# What the commands say when the user has to do something


QUICKSTART = Path(sweeper.__file__).parents[1] / "studies" / "quickstart.toml"


def one_error_line(err: str, field: str) -> str:
    assert err.startswith(f"sweeper: error: {field}: ") and err.count("\n") == 1, err
    return err


def test_train_without_flags_runs_the_measured_key_recall_defaults(capsys):
    from sweeper.cli.run import TRAIN_DEFAULTS

    code, out, err = run_cli(capsys, "train", "--batches", "3", "--no-progress")
    assert code == 0, err
    first, *_, last = out.strip().splitlines()
    model, train, members = TRAIN_DEFAULTS["model"], TRAIN_DEFAULTS["train"], TRAIN_DEFAULTS["members"]
    assert first.startswith(f"training 1 member: task {TRAIN_DEFAULTS['task']['name']} ("), first
    for shown in (f"{model['kind']} {model['depth']}x{model['width']}", f"updater {train['updater']}",
                  f"3 batches of {train['batch_size']}", f"lr {members['lr']:g};", f"plasticity {members['plasticity']:g};",
                  f"ratio {members['ratio']:g};", f"gamma {members['gamma']:g};", f"seed {members['seed']}"):
        assert shown in first, (shown, first)
    assert last.startswith("best eval memory accuracy ") and "the no-memory baseline 0.111" in last, last


@pytest.mark.slow
def test_the_train_defaults_learn_key_recall(capsys):
    code, out, _ = run_cli(capsys, "train", "--json")
    assert code == 0
    report = json.loads(out)
    (member,) = report["members"]
    assert member["outcome"] == "stable"
    assert member["eval"]["mem_acc"] >= 0.9 > report["no_memory_baseline"]
    assert member["eval"]["mem_acc_no_eph"] < 0.5  # the memory is in the ephemeral weights


@pytest.mark.parametrize("flag, text, hint", [
    ("--seeds", "5-2", "write 2-5"),
    ("--seeds", "0-1,9-3", "write 3-9"),
    ("--clip", "10-5", "write 5-10"),
])
def test_a_reversed_range_is_refused_naming_the_flag(capsys, flag, text, hint):
    code, out, err = run_cli(capsys, "train", "--batches", "1", flag, text)
    assert (code, out) == (2, "")
    assert "is a reversed range" in one_error_line(err, flag) and hint in err


@pytest.mark.parametrize("text", [
    None,  # the shipped quickstart study
    "name = 'x'\n[task]\nname = 'key_recall'\n",
    "[task]\nname = 'key_recall'\n[search]\nkind = 'grid'\n",
    "[task]\nname = 'key_recall'\n[space]\nlr = { low = 1e-3, high = 1e-2 }\n",
])
def test_a_study_file_given_to_train_points_to_submit(tmp_path, capsys, text):
    path = QUICKSTART
    if text is not None:
        path = tmp_path / "study.toml"
        path.write_text(text)
    code, out, err = run_cli(capsys, "train", str(path))
    assert (code, out) == (2, "")
    one_error_line(err, str(path))
    assert "sweeper submit STUDY.toml" in err and "run file (sections task, model, train, members)" in err


@pytest.mark.parametrize("argv, field", [
    (["--gpu-memory", "lots"], "--gpu-memory"),
    (["--gpu-memory", "0GiB"], "--gpu-memory"),
    (["--gpus", "1.5"], "--gpus"),
    (["--gpus", "0"], "--gpus"),
    (["--gpus", "nan"], "--gpus"),
    (["--context-mib", "-1"], "--context-mib"),
    (["--context-mib", "inf"], "--context-mib"),
])
def test_plan_refuses_bad_values_naming_the_flag(capsys, argv, field):
    code, out, err = run_cli(capsys, "plan", str(QUICKSTART), *argv)
    assert (code, out) == (2, "")
    one_error_line(err, field)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_dashboard_refusal_is_one_line_naming_the_flag(tmp_path, capsys):
    import socket

    missing = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    cases = [
        (["--port", "0"], "--port", "expected an integer in [1, 65535]"),
        (["--port", "70000"], "--port", "expected an integer in [1, 65535]"),
        (["--host", "0.0.0.0"], "--host", "refusing to bind to 0.0.0.0"),
        (["--token", "short"], "--token", "at least 8 characters"),
        (["--host", "no-such-host.invalid", "--token", "a-long-enough-token"], "--host", "cannot resolve"),
        (["--port", str(_free_port())], "--storage", "no database at"),
    ]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        cases.append((["--port", str(holder.getsockname()[1])], "--port", "cannot listen on"))
        for argv, field, words in cases:
            code, out, err = run_cli(capsys, "dashboard", "--storage", missing, *argv)
            assert (code, out) == (2, ""), argv
            assert words in one_error_line(err, field), (argv, err)
    assert list(tmp_path.iterdir()) == []


MISSING_DATABASE_COMMANDS = [
    ["status"], ["trials", "x"], ["query", "SELECT 1"], ["export", "x", "--format", "csv", "-o", "out.csv"],
    ["boundary", "x"], ["figures", "x", "-o", "figs"], ["warn", "eval", "x"], ["warn", "fit", "x", "--name", "p"],
    ["report", "x", "-o", "report.html"], ["dashboard"],
]


@pytest.mark.parametrize("argv", MISSING_DATABASE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_without_a_database_each_command_says_what_to_run(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEPER_DB", raising=False)
    if argv == ["dashboard"]:
        argv = ["dashboard", "--port", str(_free_port())]
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    looked = Path.cwd() / "sweeper.sqlite3"
    assert one_error_line(err, "--storage").startswith(
        f"sweeper: error: --storage: no database at {looked} (the default, sqlite:///sweeper.sqlite3); ")
    assert "run `sweeper submit STUDY.toml` first" in err and "--storage URL" in err and "$SWEEPER_DB" in err
    assert "sweeper.db" not in err  # a command to run, not a Python call
    assert list(tmp_path.iterdir()) == []  # no database, no output file


def test_an_output_that_cannot_be_written_names_output(tmp_path, capsys):
    from sweeper.db import upgrade

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    upgrade(url)
    code, out, err = run_cli(capsys, "report", "x", "-o", str(tmp_path / "no" / "r.html"), "--storage", url)
    assert (code, out) == (2, "")
    assert "does not exist" in one_error_line(err, "--output")
