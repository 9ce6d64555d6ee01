"""`sweeper submit` after Ctrl-C (or SIGTERM): a stop that blocks (as Ray's shutdown can, when the interrupt lands inside
its own calls) does not hang the command. The driver is stood in for by a `submit` that records where its
temporary Tune directory is, interrupts itself and then blocks in its clean-up; the real CLI entry runs
around it in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

STUCK = textwrap.dedent("""
    import os, signal, sys, tempfile, time
    import sweeper.sweep.driver as driver
    import sweeper.sweep.run as run

    def submit(*args, **kwargs):
        scratch = tempfile.mkdtemp(prefix=run.TEMP_PREFIX + "stuck-")
        run._SCRATCH.add(scratch)
        print(scratch, flush=True)
        stop = getattr(signal, os.environ.get("STUCK_SIGNAL", "SIGINT"))
        try:
            os.kill(os.getpid(), stop)
            time.sleep(5)
        finally:
            if os.environ.get("STUCK_SECOND"):
                os.kill(os.getpid(), stop)
            time.sleep(600)  # the stop that never ends

    driver.submit = submit
    from sweeper.cli import main
    sys.exit(main(["submit", "study.toml", "--storage", "sqlite:///x.sqlite3"]))
""")


def run_stuck(tmp_path: Path, **env) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", STUCK], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SWEEPER_STOP_GRACE_S": "2", **env})
    return proc, time.monotonic() - t0


def test_a_stop_that_blocks_after_ctrl_c_ends_in_130_with_the_resume_line_and_no_tune_directory(tmp_path):
    proc, seconds = run_stuck(tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert seconds < 60  # the grace (2 s) and start-up, not the 600 s the stop would take
    assert "Ray did not stop within 2 s of Ctrl-C" in proc.stderr
    assert "sweeper: interrupted; run the same command to resume: " in proc.stderr
    scratch = Path(proc.stdout.strip())
    assert scratch.name.startswith("sweeper-tune-stuck-") and not scratch.exists()


def test_sigterm_stops_the_same_way_and_exits_143(tmp_path):
    proc, seconds = run_stuck(tmp_path, STUCK_SIGNAL="SIGTERM")
    assert proc.returncode == 143, proc.stderr
    assert seconds < 60
    assert "Ray did not stop within 2 s of SIGTERM" in proc.stderr
    assert "sweeper: terminated; run the same command to resume: " in proc.stderr
    assert not Path(proc.stdout.strip()).exists()
    again, _ = run_stuck(tmp_path, STUCK_SIGNAL="SIGTERM", STUCK_SECOND="1", SWEEPER_STOP_GRACE_S="90")
    assert again.returncode == 143 and "SIGTERM again: leaving without waiting for Ray" in again.stderr


def test_a_second_ctrl_c_leaves_at_once(tmp_path):
    proc, _ = run_stuck(tmp_path, STUCK_SECOND="1", SWEEPER_STOP_GRACE_S="90")
    assert proc.returncode == 130, proc.stderr
    assert "Ctrl-C again: leaving without waiting for Ray" in proc.stderr
    assert not Path(proc.stdout.strip()).exists()


def test_an_interrupt_that_stops_cleanly_exits_130_without_the_watchdog(tmp_path):
    script = STUCK.replace("time.sleep(600)  # the stop that never ends", "pass")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SWEEPER_STOP_GRACE_S": "30"})
    assert proc.returncode == 130, proc.stderr
    assert "Ray did not stop" not in proc.stderr
    assert proc.stderr.count("sweeper: interrupted; run the same command to resume: ") == 1
    scratch = Path(proc.stdout.strip())
    assert scratch.exists()  # left to the driver's own clean-up, which this stand-in does not do
    scratch.rmdir()
