"""The sweep's writes to the trial database, for the driver and for the Ray workers.

Each function is one short transaction. The rules that keep results safe when processes die:

- A pack's results (its members, their sampled metrics, the trial's COMPLETE status) are written in
  ONE transaction at the end of the pack: a worker killed before it leaves nothing half-written, and
  a finished pack is never lost by a later crash.
- Every start of a pack increments the trial's `attempts` and remembers it; the final write happens
  only if the row still carries that attempt and is RUNNING. A stale worker (one whose driver died and
  whose pack was handed to a new attempt) cannot write twice, so nothing is duplicated.
- A worker that finds its pack already COMPLETE (it died after committing, before Ray heard of it)
  does not train again: it hands back the stored result.
- The driver holds a lease on the study (host, pid, heartbeat); a second driver refuses to run a study
  whose driver is alive (`driver_alive`), and takes over one whose driver is gone.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sweeper.db import Database, EarlyWarning, Member, MemberMetric, Study, StudyStatus, Trial, TrialStatus
from sweeper.db.types import utcnow
from sweeper.errors import SweeperError
from sweeper.outcomes import Outcome

HEARTBEAT_S = 5.0
"""How often a driver refreshes its lease."""
LEASE_STALE_S = 30.0
"""A driver on another host whose heartbeat is older than this is presumed dead."""

log = logging.getLogger(__name__)

FINAL = (TrialStatus.COMPLETE, TrialStatus.FAILED, TrialStatus.PRUNED)


class LeaseHeld(SweeperError, RuntimeError):
    """Another live driver is running this study."""

    field_default = "study"


class SpecMismatch(SweeperError, RuntimeError):
    """A study of this name exists in the database with a different study file."""

    field_default = "study"


class StaleAttempt(RuntimeError):
    """This worker's attempt at a pack was superseded; its results are not written."""


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs. A zombie (killed, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal test above is all there is


def _age_s(when: dt.datetime | None) -> float:
    if when is None:
        return float("inf")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (utcnow() - when).total_seconds()


def driver_alive(study: Study | None) -> bool:
    """Whether the driver recorded on `study` is still running it.

    A driver on this host whose pid is gone is gone at once (a SIGKILLed driver leaves no time to
    say so). Otherwise the heartbeat decides, gone once older than LEASE_STALE_S: a driver on another
    host cannot be asked, and a live pid here may be another process that reused the number.
    """
    if study is None or study.status != StudyStatus.RUNNING or study.driver_pid is None:
        return False
    if study.driver_host == socket.gethostname() and not pid_alive(study.driver_pid):
        return False
    return _age_s(study.heartbeat_at) < LEASE_STALE_S


def find_study(db: Database, name: str) -> Study | None:
    with db.read_session() as s:
        return s.scalars(sa.select(Study).where(Study.name == name)).one_or_none()


# ---------------------------------------------------------------------------------------------------
# Driver side


@dataclass(frozen=True)
class StudyHandle:
    id: int
    name: str
    resumed: bool
    """True when the study existed (it is being resumed)."""
    previous_status: str | None


def open_study(db: Database, *, name: str, spec: dict, source: str, code_version: str,
               optuna_study_name: str, planned_trials: int) -> StudyHandle:
    """Create the study, or take it over for a resume. Raises LeaseHeld or SpecMismatch untouched."""
    host, pid = socket.gethostname(), os.getpid()
    with db.session() as s:
        study = s.scalars(sa.select(Study).where(Study.name == name).with_for_update()).one_or_none()
        if study is None:
            study = Study(name=name, spec=spec, source=source, code_version=code_version,
                          optuna_study_name=optuna_study_name, planned_trials=planned_trials,
                          status=StudyStatus.RUNNING, driver_host=host, driver_pid=pid, heartbeat_at=utcnow())
            s.add(study)
            s.flush()
            return StudyHandle(study.id, name, False, None)
        if study.spec != spec:
            raise SpecMismatch(
                f"a study named {name!r} already exists in this database with a different study file; "
                f"give the new study another `name`, or submit the original file to resume it")
        if driver_alive(study):
            raise LeaseHeld(f"study {name!r} is being run by pid {study.driver_pid} on {study.driver_host} "
                            f"(heartbeat {_age_s(study.heartbeat_at):.0f} s ago)")
        previous = study.status.value
        study.status = StudyStatus.RUNNING
        study.driver_host, study.driver_pid, study.heartbeat_at = host, pid, utcnow()
        study.finished_at = None
        return StudyHandle(study.id, name, True, previous)


def heartbeat(db: Database, study_id: int) -> None:
    with db.session() as s:
        s.execute(sa.update(Study).where(Study.id == study_id, Study.driver_pid == os.getpid())
                  .values(heartbeat_at=utcnow()))


class LeaseHeartbeat:
    """Refreshes the driver's lease on the study every `every` seconds, from a daemon thread."""

    def __init__(self, db: Database, study_id: int, every: float = HEARTBEAT_S):
        self.db, self.study_id, self.every = db, study_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                heartbeat(self.db, self.study_id)
            except Exception as exc:  # the next beat retries; a lease that keeps failing goes stale, so say so
                log.warning("the driver's lease heartbeat failed (retrying in %.0f s): %s: %s",
                            self.every, type(exc).__name__, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def close_study(db: Database, study_id: int, status: StudyStatus) -> None:
    """End the driver's lease. In-flight packs go back to WAITING, so none is left RUNNING."""
    with db.session() as s:
        s.execute(sa.update(Trial).where(Trial.study_id == study_id,
                                         Trial.status.in_([TrialStatus.RUNNING, TrialStatus.WAITING]))
                  .values(status=TrialStatus.WAITING))
        values: dict[str, Any] = {"status": status, "driver_pid": None, "heartbeat_at": None}
        if status in (StudyStatus.COMPLETE, StudyStatus.FAILED):
            values["finished_at"] = utcnow()
        s.execute(sa.update(Study).where(Study.id == study_id).values(**values))


@dataclass(frozen=True)
class PackRow:
    number: int
    status: TrialStatus
    points: list[dict]
    result: dict | None
    """What the pack wrote at its end (verdicts, counts, progress, timing, warnings); None until then."""
    attempts: int
    error: str | None


_PACK_COLUMNS = (Trial.number, Trial.status, Trial.points, Trial.result, Trial.attempts, Trial.error)


def _pack_row(r) -> PackRow:
    return PackRow(r.number, r.status, r.points or [], r.result, r.attempts, r.error)


def packs(db: Database, study_id: int) -> list[PackRow]:
    with db.read_session() as s:
        rows = s.execute(sa.select(*_PACK_COLUMNS).where(Trial.study_id == study_id).order_by(Trial.number)).all()
    return [_pack_row(r) for r in rows]


def pack(db: Database, study_id: int, number: int) -> PackRow | None:
    """One pack as the database holds it: the one record of how it ended."""
    with db.read_session() as s:
        row = s.execute(sa.select(*_PACK_COLUMNS)
                        .where(Trial.study_id == study_id, Trial.number == number)).one_or_none()
    return None if row is None else _pack_row(row)


def study_counts(db: Database, study_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """(packs by status, members by outcome) of a study, keyed by the enums' values."""
    with db.read_session() as s:
        packs = dict(s.execute(sa.select(Trial.status, sa.func.count()).where(Trial.study_id == study_id)
                               .group_by(Trial.status)).all())
        members = dict(s.execute(sa.select(Member.outcome, sa.func.count()).where(Member.study_id == study_id)
                                 .group_by(Member.outcome)).all())
    return ({str(getattr(k, "value", k)): v for k, v in packs.items()},
            {str(getattr(k, "value", k)): v for k, v in members.items()})


def put_waiting(db: Database, study_id: int, number: int, points: list[dict], ray_trial_id: str) -> None:
    """Record a pack handed to Ray (new, or re-run after an interruption)."""
    with db.session() as s:
        trial = s.scalars(sa.select(Trial).where(Trial.study_id == study_id, Trial.number == number)
                          .with_for_update()).one_or_none()
        if trial is None:
            s.add(Trial(study_id=study_id, number=number, status=TrialStatus.WAITING, points=points,
                        ray_trial_id=ray_trial_id))
        elif trial.status not in FINAL:
            trial.status, trial.ray_trial_id, trial.error = TrialStatus.WAITING, ray_trial_id, None


def fail_trial(db: Database, study_id: int, number: int, error: str, members: Sequence[Mapping[str, Any]]) -> bool:
    """Mark a pack FAILED (Ray gave up on it) and record its members as failed. False if it had finished."""
    with db.session() as s:
        trial = s.scalars(sa.select(Trial).where(Trial.study_id == study_id, Trial.number == number)
                          .with_for_update()).one()
        if trial.status in FINAL:
            return False
        trial.status, trial.error, trial.finished_at = TrialStatus.FAILED, error[-4000:], utcnow()
        s.execute(sa.delete(Member).where(Member.trial_id == trial.id))
        s.add_all(Member(trial_id=trial.id, study_id=study_id, outcome=Outcome.FAILED, error=error[-2000:], **m)
                  for m in members)
        return True


# ---------------------------------------------------------------------------------------------------
# Worker side


def claim_trial(db: Database, study_id: int, number: int, *, ray_trial_id: str | None,
                device: str) -> tuple[int, dict | None]:
    """Start an attempt at a pack: (attempt number, None), or (0, stored result) if it is done."""
    with db.session() as s:
        trial = s.scalars(sa.select(Trial).where(Trial.study_id == study_id, Trial.number == number)
                          .with_for_update()).one()
        if trial.status == TrialStatus.COMPLETE:
            return 0, trial.result
        trial.attempts += 1
        trial.status = TrialStatus.RUNNING
        trial.started_at, trial.finished_at = utcnow(), None
        trial.host, trial.worker, trial.device = socket.gethostname(), str(os.getpid()), device
        if ray_trial_id:
            trial.ray_trial_id = ray_trial_id
        return trial.attempts, None


def finish_trial(db: Database, study_id: int, number: int, attempt: int, *,
                 members: Sequence[Mapping[str, Any]], history: Sequence[Iterable[Mapping[str, Any]]],
                 result: dict, wall_time_s: float, warnings: Sequence[Mapping[str, Any]] = ()) -> None:
    """Write a pack's members, their sampled metrics and the trial's result, all or nothing."""
    with db.session() as s:
        trial = s.scalars(sa.select(Trial).where(Trial.study_id == study_id, Trial.number == number)
                          .with_for_update()).one()
        if trial.attempts != attempt or trial.status != TrialStatus.RUNNING:
            raise StaleAttempt(f"pack {number}: attempt {attempt} superseded (row: attempt {trial.attempts}, "
                               f"{trial.status.value}); results not written")
        s.execute(sa.delete(Member).where(Member.trial_id == trial.id))
        rows = [Member(trial_id=trial.id, study_id=study_id, **m) for m in members]
        s.add_all(rows)
        s.flush()
        metric_rows = [{"member_id": row.id, **h} for row, hist in zip(rows, history) for h in hist]
        if metric_rows:
            s.execute(sa.insert(MemberMetric), metric_rows)
        if warnings:
            s.execute(sa.insert(EarlyWarning), [
                {"member_id": rows[w["pack_index"]].id, **{k: v for k, v in w.items() if k != "pack_index"}}
                for w in warnings])
        trial.status, trial.finished_at = TrialStatus.COMPLETE, utcnow()
        trial.wall_time_s, trial.result = wall_time_s, result
