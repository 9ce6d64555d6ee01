"""`sweeper submit`'s flags are checked before anything is written, in seconds, with one error line
naming the flag and what it accepts; and what the command prints around a run (the summary, the
command that resumes after Ctrl-C). No Ray starts here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from sweeper.cli import main
from sweeper.cli.submit import resume_command
from tests.helpers.db import database_with_a_study, snapshot
from tests.helpers.studies import write_study


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    return database_with_a_study(tmp_path_factory.mktemp("flags"))


def refused(populated, tmp_path, capsys, *flags: str) -> str:
    """Submit a good study with `flags`: exit 2, the database exactly as it was; the one error line."""
    path = write_study(tmp_path, "flagged")
    before = snapshot(populated)
    started = time.monotonic()
    assert main(["submit", str(path), "--storage", populated, "--no-progress", *flags]) == 2
    assert time.monotonic() - started < 10
    assert snapshot(populated) == before
    err = capsys.readouterr().err
    assert err.startswith("sweeper: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("count", ["-3", "0", "1.5", "abc", "", str((os.cpu_count() or 1) + 1)])
def test_num_cpus_out_of_range_is_refused(populated, tmp_path, capsys, count):
    err = refused(populated, tmp_path, capsys, "--num-cpus", count)
    assert f"--num-cpus: got {count!r}; expected a whole number from 1 to {os.cpu_count()}" in err


def test_num_cpus_with_a_cluster_is_refused(populated, tmp_path, capsys):
    err = refused(populated, tmp_path, capsys, "--num-cpus", "1", "--address", "127.0.0.1:1")
    assert "--num-cpus:" in err and "--address" in err


@pytest.mark.parametrize("address", ["garbage", "host:", ":6379", "127.0.0.1:99999", "http://127.0.0.1:80",
                                     "ray://nohost"])
def test_unparsable_address_is_refused(populated, tmp_path, capsys, address):
    err = refused(populated, tmp_path, capsys, "--address", address)
    assert f"--address: got {address!r}; expected `auto`, `HOST:PORT` or `ray://HOST:PORT`" in err


def test_address_where_nothing_listens_is_refused(populated, tmp_path, capsys):
    err = refused(populated, tmp_path, capsys, "--address", "127.0.0.1:1")
    assert "--address: no Ray cluster answers at 127.0.0.1:1" in err


def test_address_of_another_service_is_refused(populated, tmp_path, capsys):
    """A port that accepts connections but speaks no gRPC (here a plain TCP server that says hello)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    import threading

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"-ERR unknown command 'PRI'\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        err = refused(populated, tmp_path, capsys, "--address", f"127.0.0.1:{port}")
    finally:
        server.close()
    assert f"--address: 127.0.0.1:{port} accepts connections but is not a Ray cluster" in err


def test_auto_without_a_cluster_is_refused(populated, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where Ray would look for its address file: nothing there
    err = refused(populated, tmp_path, capsys, "--address", "auto")
    assert "--address: auto: no running Ray cluster found" in err and "ray start --head" in err


def test_auto_follows_ray_address(populated, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    err = refused(populated, tmp_path, capsys, "--address", "auto")
    assert "no Ray cluster answers at 127.0.0.1:1 (from $RAY_ADDRESS)" in err


@pytest.mark.parametrize("flags", [["--num-cpus", "-3"], ["--address", "garbage"], ["--address", "127.0.0.1:1"]])
def test_the_command_refuses_bad_flags_within_seconds(tmp_path, flags):
    """The whole command, imports included, as a user runs it; no database file is created."""
    db = tmp_path / "never.sqlite3"
    path = write_study(tmp_path, "fast")
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "sweeper", "submit", str(path), "--storage", f"sqlite:///{db}", *flags],
                       capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 10
    assert r.returncode == 2 and r.stderr.startswith(f"sweeper: error: {flags[0]}: "), r.stderr
    assert r.stderr.count("\n") == 1 and not db.exists()


# ---------------------------------------------------------------------------------------------------
# What the command prints


def test_resume_command_is_the_command_typed():
    args = type("Args", (), {})()
    argv = [".venv/bin/sweeper", "submit", "studies/x.toml", "--storage", "sqlite:///a b.sqlite3"]
    assert resume_command(args, argv) == ".venv/bin/sweeper submit studies/x.toml --storage 'sqlite:///a b.sqlite3'"
    module = ["/work/main/sweeper/__main__.py", "submit", "x.toml", "--no-progress"]
    assert resume_command(args, module) == f"{sys.executable} -m sweeper submit x.toml --no-progress"


def test_resume_command_in_process_is_rebuilt_from_the_flags():
    from sweeper.cli import build_parser

    args = build_parser().parse_args(["submit", "x.toml", "--storage", "sqlite:///y", "--num-cpus", "2",
                                      "--no-progress"])
    assert resume_command(args, ["pytest", "-x"]) == "sweeper submit x.toml --storage sqlite:///y --num-cpus 2 --no-progress"


def test_summary_has_no_empty_lines():
    from sweeper.sweep.driver import SubmitResult, format_result

    text = format_result(SubmitResult(study="s", status="INTERRUPTED", resumed=False, planned=3, ran=0))
    assert text == "study s: INTERRUPTED; 0/3 trials finished, 0 run now, in 0.0 s"
    full = format_result(SubmitResult(study="s", status="COMPLETE", resumed=True, planned=1, ran=1,
                                      counts={"COMPLETE": 1}, members={"stable": 2}))
    assert full.splitlines()[1:] == ["  trials:  complete 1", "  members: stable 2"]


def test_private_ray_keeps_token_auth_chosen_explicitly(monkeypatch):
    from sweeper.sweep.local_ray import private_ray_env

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    private_ray_env()
    assert os.environ["RAY_AUTH_MODE"] == "token"  # on, as Ray's default, but said: Ray stays quiet
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    private_ray_env()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice wins


def test_rays_hints_that_do_not_apply_are_dropped(caplog):
    import logging

    from sweeper.sweep.local_ray import quiet_ray_hints

    quiet_ray_hints()
    quiet_ray_hints()  # once is enough; twice changes nothing
    tune_log = logging.getLogger("ray.tune.tune")
    auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    assert sum(type(f).__name__ == "_DropMessages" for f in tune_log.filters) == 1
    with caplog.at_level(logging.INFO):
        tune_log.warning('Experiment has been interrupted.\nResume experiment with: Tuner.restore(path="/x")')
        auth_log.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled")
        tune_log.warning("Trial pack_0 errored")
    assert [r.getMessage() for r in caplog.records] == ["Trial pack_0 errored"]
