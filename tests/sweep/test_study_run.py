"""`StudyRun`'s bookkeeping without Ray: how a pack ended is read from the database, and Optuna is told
what the database holds; the lease's heartbeat reports its failures; a submit leaves no temporary
Tune directory behind, however it ends. On both databases where the database matters."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import time

import pytest

from sweeper.db import TrialStatus, open_db, upgrade
from sweeper.study import load_study
from sweeper.sweep import store
from sweeper.sweep.verdict import Verdict
from tests.helpers.studies import rows, write_study


@pytest.fixture
def run(db_url, tmp_path):
    """A grid study of 3 packs (2 configurations x 2 seeds each) taken by a StudyRun; no Ray."""
    from sweeper.sweep.run import StudyRun

    path = write_study(tmp_path, "bookkeeping")
    upgrade(db_url)
    db = open_db(db_url)
    study_run = StudyRun.start(load_study(str(path)), str(path), db)
    yield study_run
    study_run.close(succeeded=False)
    db.dispose()


def optuna_states(url: str) -> dict[int, str]:
    return dict(rows(url, "SELECT t.number, t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
                          "WHERE s.study_name = 'sweeper/bookkeeping'"))


def start_pack(run, number: int) -> dict:
    pack = run.make_pack(number)
    run.on_start(pack, f"ray-{number}")
    return pack


def test_a_pack_the_database_holds_complete_is_complete_for_optuna_even_if_its_ray_trial_errored(run, db_url):
    """The worker wrote its result, then died before Tune heard of it, and its retries were spent:
    Tune reports an error, the database holds the pack COMPLETE, and Optuna hears the database."""
    pack = start_pack(run, 0)
    attempt, _ = store.claim_trial(run.db, run.handle.id, 0, ray_trial_id="ray-0", device="cpu")
    verdicts = [{"config_index": p["config_index"], "optuna": p["optuna"],
                 **Verdict("complete", [0.5], 0.0, "", 2, 2).as_dict()} for p in pack["points"]]
    store.finish_trial(run.db, run.handle.id, 0, attempt, members=[], history=[], wall_time_s=1.0,
                       result={"verdicts": verdicts, "counts": {"stable": 4}})

    run.on_done(0, errored=True)

    assert store.pack(run.db, run.handle.id, 0).status == TrialStatus.COMPLETE
    assert {optuna_states(db_url)[p["optuna"]] for p in pack["points"]} == {"COMPLETE"}
    assert run.tracker.failed == 0 and run.tracker.finished == 1


def test_a_pack_that_wrote_nothing_is_failed_in_the_database_and_for_optuna(run, db_url):
    pack = start_pack(run, 0)
    store.claim_trial(run.db, run.handle.id, 0, ray_trial_id="ray-0", device="cpu")

    run.on_done(0, errored=True)

    row = store.pack(run.db, run.handle.id, 0)
    assert row.status == TrialStatus.FAILED and row.error == "the Ray trial failed after its retries"
    assert {optuna_states(db_url)[p["optuna"]] for p in pack["points"]} == {"FAIL"}
    assert rows(db_url, "SELECT outcome, count(*) FROM sw_members GROUP BY outcome") == [("failed", 4)]


def test_a_trial_that_ended_without_writing_is_failed_with_that_reason(run, db_url):
    start_pack(run, 1)
    run.on_done(1, errored=False)
    assert store.pack(run.db, run.handle.id, 1).error == "the Ray trial ended without a result"


def test_a_resumed_run_settles_what_the_database_holds(run, db_url):
    """A pack finished while no driver listened: the next StudyRun tells Optuna from its row."""
    from sweeper.sweep.run import StudyRun

    pack = start_pack(run, 0)
    attempt, _ = store.claim_trial(run.db, run.handle.id, 0, ray_trial_id="ray-0", device="cpu")
    verdicts = [{"config_index": p["config_index"], "optuna": p["optuna"],
                 **Verdict("pruned", None, 1.0, "all 2 seeds stopped early", 2, 0).as_dict()} for p in pack["points"]]
    store.finish_trial(run.db, run.handle.id, 0, attempt, members=[], history=[], wall_time_s=1.0,
                       result={"verdicts": verdicts, "counts": {"stopped_early": 4}})
    start_pack(run, 1)
    run.close(succeeded=False)
    assert {optuna_states(db_url)[p["optuna"]] for p in pack["points"]} == {"RUNNING"}

    again = StudyRun.start(run.spec, run.path, run.db)
    try:
        assert {optuna_states(db_url)[p["optuna"]] for p in pack["points"]} == {"PRUNED"}
        assert [p["pack"] for p in again.pending] == [1] and again.next_number == 2
        assert again.budget == 2 and again.tracker.stopped == 4  # pack 1 again, and pack 2
    finally:
        again.close(succeeded=False)


# ---------------------------------------------------------------------------------------------------
# The lease


def test_heartbeat_failures_are_logged_not_swallowed(monkeypatch, caplog):
    def broken(db, study_id):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(store, "heartbeat", broken)
    beat = store.LeaseHeartbeat(db=None, study_id=7, every=0.05)
    with caplog.at_level(logging.WARNING, logger="sweeper.sweep.store"):
        beat.start()
        deadline = time.time() + 10
        while not caplog.records and time.time() < deadline:
            time.sleep(0.05)
        beat.stop()
    assert caplog.records, "no warning logged"
    assert "lease heartbeat failed" in caplog.text and "RuntimeError: database is locked" in caplog.text


# ---------------------------------------------------------------------------------------------------
# Temporary Tune directories


def leftovers(name: str) -> list[str]:
    return glob.glob(f"{tempfile.gettempdir()}/sweeper-tune-{name}-*")


@pytest.mark.parametrize("ending", ["returns", "raises", "ctrl-c"])
def test_no_temporary_tune_directory_is_left_behind(tmp_path, monkeypatch, ending):
    """However the Tune run ends, the directory made for it is gone when submit returns; the study is
    left INTERRUPTED (its packs did not all run) and its lease released."""
    from sweeper.sweep import local_ray
    from sweeper.sweep import run as run_module
    from sweeper.sweep.driver import submit

    made = []

    def fit(self, experiment_dir, progress, out):
        made.append(experiment_dir)
        (tmp_path / "marker").write_text(experiment_dir)
        open(f"{experiment_dir}/experiment_state.json", "w").close()  # as Tune would write
        if ending == "raises":
            raise RuntimeError("a Tune error")
        if ending == "ctrl-c":
            raise KeyboardInterrupt

    monkeypatch.setattr(local_ray, "start_ray", lambda *a: False)  # no Ray: the Tune run is `fit` above
    monkeypatch.setattr(run_module.StudyRun, "_fit", fit)
    monkeypatch.delenv("SWEEPER_TUNE_STORAGE", raising=False)
    name = f"tmpdir_{ending.replace('-', '_')}_{time.time_ns()}"
    url = f"sqlite:///{tmp_path / 'tmp.sqlite3'}"
    path = write_study(tmp_path, name)
    expected = {"returns": None, "raises": RuntimeError, "ctrl-c": KeyboardInterrupt}[ending]
    if expected is None:
        assert submit(str(path), storage=url, progress=False).status == "INTERRUPTED"
    else:
        with pytest.raises(expected):
            submit(str(path), storage=url, progress=False)
    assert made and made[0].startswith(f"{tempfile.gettempdir()}/sweeper-tune-{name}-")
    assert leftovers(name) == []
    assert rows(url, "SELECT status, driver_pid FROM sw_studies") == [("INTERRUPTED", None)]


def test_a_given_tune_storage_is_kept(tmp_path, monkeypatch):
    from sweeper.sweep import local_ray
    from sweeper.sweep import run as run_module
    from sweeper.sweep.driver import submit

    monkeypatch.setattr(local_ray, "start_ray", lambda *a: False)
    monkeypatch.setattr(run_module.StudyRun, "_fit", lambda self, d, p, o: open(f"{d}/state", "w").close())
    kept = tmp_path / "tune"
    kept.mkdir()
    submit(str(write_study(tmp_path, "kept")), storage=f"sqlite:///{tmp_path / 'k.sqlite3'}", progress=False,
           tune_storage=str(kept))
    assert (kept / "state").exists()


def test_directories_of_dead_drivers_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    from sweeper.sweep.run import _remove_orphans

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = tmp_path / f"sweeper-tune-study-7-{child.pid}-ab12_x"
    live = tmp_path / f"sweeper-tune-study-7-{os.getpid()}-cd34"
    other = tmp_path / f"sweeper-tune-{child.pid}"  # not named by a driver of this code
    for d in (dead, live, other):
        d.mkdir()
    _remove_orphans(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
