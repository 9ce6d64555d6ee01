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
  whose lease is alive, and takes over one whose lease is stale.
"""

from __future__ import annotations

from sweeper.errors import SweeperError
import datetime as dt
import os
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from sweeper.db import Database, EarlyWarning, Member, MemberMetric, Study, StudyStatus, Trial, TrialStatus
from sweeper.db.types import utcnow

LEASE_STALE_S = 30.0
"""A driver whose heartbeat is older than this is presumed dead (it beats every few seconds)."""

FINAL = (TrialStatus.COMPLETE, TrialStatus.FAILED, TrialStatus.PRUNED)
METRIC_COLUMNS = ("loss", "acc", "mem_acc", "grad_eph", "grad_slow", "grad_ratio", "grad_rms_ratio",
                  "w_eph", "w_slow", "max_logit")


class LeaseHeld(SweeperError, RuntimeError):
    """Another live driver is running this study."""

    field_default = "study"


class SpecMismatch(SweeperError, RuntimeError):
    """A study of this name exists in the database with a different study file."""

    field_default = "study"


class StaleAttempt(RuntimeError):
    """This worker's attempt at a pack was superseded; its results are not written."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _age_s(when: dt.datetime | None) -> float:
    if when is None:
        return float("inf")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (utcnow() - when).total_seconds()


def lease_alive(study: Study) -> bool:
    """Whether the driver recorded on `study` is still running it."""
    if study.status != StudyStatus.RUNNING or study.driver_pid is None:
        return False
    if study.driver_host == socket.gethostname() and not _pid_alive(study.driver_pid):
        return False
    return _age_s(study.heartbeat_at) < LEASE_STALE_S


# ---------------------------------------------------------------------------------------------------
# Driver side


@dataclass
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
        if lease_alive(study):
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


@dataclass
class PackRow:
    number: int
    status: TrialStatus
    points: list[dict]
    result: dict | None
    attempts: int


def packs(db: Database, study_id: int) -> list[PackRow]:
    with db.read_session() as s:
        rows = s.execute(sa.select(Trial.number, Trial.status, Trial.points, Trial.result, Trial.attempts)
                         .where(Trial.study_id == study_id).order_by(Trial.number)).all()
    return [PackRow(r.number, r.status, r.points or [], r.result, r.attempts) for r in rows]


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
        s.add_all(Member(trial_id=trial.id, study_id=study_id, outcome="failed", error=error[-2000:], **m)
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
