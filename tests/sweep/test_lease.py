"""Whether a study's driver is alive (`store.driver_alive`): a driver on this host whose pid is gone is
gone at once (SIGKILL); otherwise the heartbeat's age decides."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from sweeper.db import Study, StudyStatus
from sweeper.db.types import utcnow
from sweeper.sweep.store import LEASE_STALE_S, driver_alive


def study(pid: int | None, *, host: str | None = None, age_s: float = 0.0,
          status: StudyStatus = StudyStatus.RUNNING) -> Study:
    return Study(name="s", spec={}, source="", status=status, driver_pid=pid,
                 driver_host=socket.gethostname() if host is None else host,
                 heartbeat_at=utcnow() - dt.timedelta(seconds=age_s))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_running_driver_on_this_host_is_alive_while_it_beats():
    assert driver_alive(study(os.getpid()))
    # a live pid whose lease went stale: the driver is stuck, or the pid is another process's now
    assert not driver_alive(study(os.getpid(), age_s=LEASE_STALE_S + 1))


def test_a_killed_driver_on_this_host_is_gone_at_once():
    assert not driver_alive(study(dead_pid(), age_s=0.0))


def test_a_killed_driver_not_yet_reaped_is_gone():
    """SIGKILLed, its parent not having waited for it yet (a zombie): still in the process table."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.send_signal(signal.SIGKILL)
        deadline = time.time() + 5
        while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z" and time.time() < deadline:
            time.sleep(0.05)
        assert not driver_alive(study(child.pid))
    finally:
        child.wait()


@pytest.mark.parametrize("age_s, alive", [(0.0, True), (LEASE_STALE_S - 5, True), (LEASE_STALE_S + 1, False)])
def test_a_driver_on_another_host_is_judged_by_its_heartbeat(age_s, alive):
    assert driver_alive(study(dead_pid(), host="another-host.invalid", age_s=age_s)) is alive


@pytest.mark.parametrize("status", [StudyStatus.INTERRUPTED, StudyStatus.COMPLETE])
def test_a_study_not_running_has_no_driver(status):
    assert not driver_alive(study(os.getpid(), status=status))
    assert not driver_alive(study(None))
    assert not driver_alive(None)
