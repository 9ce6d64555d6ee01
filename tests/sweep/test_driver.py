"""Studies end to end on a real local Ray, real Optuna and real databases (SQLite and PostgreSQL).

In-process tests share one local Ray (started once, bound to loopback). The fault tests run the
`sweeper submit` command as separate processes and kill them (driver, worker) as a user's machine
would, at a known point (every pack holds at batch 20 until let go, `tests.helpers.sweep.Pause`),
then check that no trial is lost, duplicated or left RUNNING.
"""

from __future__ import annotations

import glob
import os
import shlex
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.helpers.studies import rows, write_study
from tests.helpers.sweep import RANGE_SPACE, Pause, assert_study_sound

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------------
# In-process: the study runs, Optuna hears the truth, a second submit finds nothing to do


def test_grid_study_runs_every_configuration_once(local_ray, db_url, tmp_path):
    from sweeper.sweep.driver import submit

    path = write_study(tmp_path, "grid", batches=60)
    result = submit(str(path), storage=db_url, progress=False)
    assert result.status == "COMPLETE" and result.planned == 3 and result.ran == 3
    # Tune's temporary directory (named by this process's pid: another run on the machine has its own)
    assert glob.glob(f"{tempfile.gettempdir()}/sweeper-tune-grid-{os.getpid()}-*") == []
    assert_study_sound(db_url, "grid", configs=6, seeds=2)
    # lr 0.1 x plasticity 1e6 explodes on this budget; its Optuna trial is never a COMPLETE best.
    assert rows(db_url, "SELECT count(*) FROM sw_member_metrics") [0][0] > 0
    again = submit(str(path), storage=db_url, progress=False)
    assert again.status == "COMPLETE" and again.ran == 0 and again.resumed


def test_optuna_study_asks_one_trial_per_configuration(local_ray, tmp_path):
    from sweeper.sweep.driver import submit

    url = f"sqlite:///{tmp_path / 'o.sqlite3'}"
    path = write_study(tmp_path, "tpe", kind="optuna", search='sampler = "tpe"\nconfigs = 5', space=RANGE_SPACE,
                       seeds=1, per_trial=2)
    result = submit(str(path), storage=url, progress=False)
    assert result.status == "COMPLETE" and result.planned == 3
    assert_study_sound(url, "tpe", configs=5, seeds=1)


# ---------------------------------------------------------------------------------------------------
# The command, as separate processes: refusals, kills, concurrency


def sweeper(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeper", *args], capture_output=True, text=True, timeout=600, **kw)


def start(*args, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweeper", *args, "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)


def cleanup(proc: subprocess.Popen) -> str:
    """Wait for the driver (or kill it) and whatever Ray processes it left in its session."""
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return out


def test_bad_study_or_storage_is_refused_before_anything(tmp_path):
    db = tmp_path / "never.sqlite3"
    bad = tmp_path / "bad.toml"
    bad.write_text(write_study(tmp_path, "bad").read_text().replace("batches = 40", "batches = -1"))
    r = sweeper("submit", str(bad), "--storage", f"sqlite:///{db}")
    assert r.returncode == 2 and "train.batches" in r.stderr and str(bad) in r.stderr
    assert not db.exists()
    good = write_study(tmp_path, "good")
    r = sweeper("submit", str(good), "--storage", "mysql://root@127.0.0.1/test")
    assert r.returncode == 2 and "storage" in r.stderr.lower()
    r = sweeper("submit", str(good), "--storage", f"sqlite:///{tmp_path}/no/such/dir/x.sqlite3")
    assert r.returncode == 2


def test_same_name_with_another_file_is_refused_and_changes_nothing(local_ray, tmp_path):
    from sweeper.sweep.driver import submit

    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    submit(str(write_study(tmp_path, "same")), storage=url, progress=False)
    before = rows(url, "SELECT * FROM sw_studies") + rows(url, "SELECT count(*) FROM sw_members")
    other = tmp_path / "other.toml"
    other.write_text(write_study(tmp_path, "same", batches=41).read_text())
    r = sweeper("submit", str(other), "--storage", url)
    assert r.returncode == 2 and "different study file" in r.stderr
    assert rows(url, "SELECT * FROM sw_studies") + rows(url, "SELECT count(*) FROM sw_members") == before


def test_driver_sigkill_is_seen_at_once_then_resubmit_loses_and_duplicates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    path = write_study(tmp_path, "killed", batches=100)
    pause = Pause(tmp_path / "pause", 20)
    proc = start("submit", str(path), "--storage", url, env=pause.env())
    pause.wait(0)  # pack 0 is mid-training, its trial RUNNING
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The lease's heartbeat is seconds old, far from stale; the driver's pid says it is gone.
    status = sweeper("status", "killed", "--storage", url)
    assert "driver gone" in status.stdout, status.stdout + status.stderr
    cleanup(proc)
    assert rows(url, "SELECT count(*) FROM sw_trials WHERE status = 'COMPLETE'")[0][0] < 3
    r = sweeper("submit", str(path), "--storage", url, "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(resumed)" in r.stdout
    assert_study_sound(url, "killed", configs=6, seeds=2)
    attempts = rows(url, "SELECT max(attempts) FROM sw_trials")[0][0]
    assert attempts >= 2  # the interrupted packs ran again, under the same numbers
    # the killed driver's temporary Tune directory went with the resubmit's own
    assert glob.glob(f"{tempfile.gettempdir()}/sweeper-tune-killed-{proc.pid}-*") == []


@pytest.mark.parametrize(("signum", "status", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                        (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_exits_with_the_resume_command_and_leaves_nothing_running(tmp_path, signum, status, word):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    path = write_study(tmp_path, "ctrlc", batches=100)
    pause = Pause(tmp_path / "pause", 20)
    proc = start("submit", str(path), "--storage", url, env=pause.env())
    pause.wait(0)
    proc.send_signal(signum)
    out = cleanup(proc)
    assert proc.returncode == status, out
    command = shlex.join([sys.executable, "-m", "sweeper", "submit", str(path), "--storage", url, "--no-progress"])
    assert f"sweeper: {word}; run the same command to resume: {command}" in out
    assert "members:" not in out
    assert "Tuner.restore" not in out and "Token authentication" not in out and "RAY_AUTH_MODE" not in out, out
    assert glob.glob(f"{tempfile.gettempdir()}/sweeper-tune-ctrlc-{proc.pid}-*") == []
    assert rows(url, "SELECT status FROM sw_studies") == [("INTERRUPTED",)]
    assert rows(url, "SELECT count(*) FROM sw_trials WHERE status = 'RUNNING'") == [(0,)]
    r = sweeper("submit", str(path), "--storage", url, "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Token authentication" not in r.stderr and "RAY_AUTH_MODE" not in r.stderr, r.stderr
    assert_study_sound(url, "ctrlc", configs=6, seeds=2)


@pytest.mark.parametrize("max_failures", [1, 0])
def test_killed_worker_is_retried_or_failed_and_the_study_finishes(tmp_path, max_failures):
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    path = write_study(tmp_path, "worker", batches=100, max_failures=max_failures)
    pause = Pause(tmp_path / "pause", 20)
    pause.go(1, 2)  # only pack 0 holds
    proc = start("submit", str(path), "--storage", url, env=pause.env())
    worker = pause.wait(0)
    os.kill(worker, signal.SIGKILL)
    pause.go(0)  # its retry passes the point
    out = cleanup(proc)
    status = rows(url, "SELECT status FROM sw_studies")
    assert status == [("COMPLETE",)], out
    trial = rows(url, "SELECT status, attempts FROM sw_trials WHERE number = 0")[0]
    if max_failures:
        assert trial == ("COMPLETE", 2)
        assert_study_sound(url, "worker", configs=6, seeds=2)
    else:
        assert trial[0] == "FAILED"
        # its members are recorded as failed, not dropped; Optuna hears FAIL for its configurations
        assert_study_sound(url, "worker", configs=6, seeds=2)
        failed = rows(url, "SELECT count(*) FROM sw_members m JOIN sw_trials t ON t.id = m.trial_id "
                           "WHERE t.number = 0 AND m.outcome = 'failed'")
        assert failed == [(4,)]


def test_two_studies_at_once_into_one_database(db_url, tmp_path):
    a = write_study(tmp_path, "first", batches=100)
    b = write_study(tmp_path, "second", batches=100)
    procs = [start("submit", str(p), "--storage", db_url, "--num-cpus", "1") for p in (a, b)]
    outs = [cleanup(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert_study_sound(db_url, "first", configs=6, seeds=2)
    assert_study_sound(db_url, "second", configs=6, seeds=2)


def test_early_warning_stops_members_in_the_engine_and_optuna_prunes_them(local_ray, tmp_path):
    """A threshold every member reaches: all are stopped at min_step (none shadowed), each alarm is an
    event in the database, and Optuna records every configuration PRUNED, never COMPLETE."""
    from sweeper.sweep.driver import submit

    url = f"sqlite:///{tmp_path / 'ew.sqlite3'}"
    path = write_study(tmp_path, "warned", batches=200)
    path.write_text(path.read_text().replace("metrics_every = 10", "metrics_every = 5") + """
[early_warning]
enabled = true
predictor = "ratio_rule"
threshold = -1e9
shadow_fraction = 0.0
min_step = 20
""")
    result = submit(str(path), storage=url, progress=False)
    assert result.status == "COMPLETE"
    members = rows(url, "SELECT outcome, stop_step, steps_done FROM sw_members")
    assert len(members) == 12
    assert all(o == "stopped_early" and s == 20 and d == 21 for o, s, d in members), members
    assert rows(url, "SELECT count(*), min(action), max(action) FROM sw_warnings") == [(12, "stopped", "stopped")]
    assert_study_sound(url, "warned", configs=6, seeds=2)
    assert {s for s, in rows(url, "SELECT state FROM trials")} == {"PRUNED"}
