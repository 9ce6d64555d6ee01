"""The trial database's tables, as SQLAlchemy ORM classes.

One study (a study file run once) has many trials. A trial is one Ray Tune trial, which trains a
*pack* of members (one population, see docs/engine.md) in one process on one device. A member is one
network with its own hyperparameters and seed; its per-batch metrics are rows of `sw_member_metrics`,
and the early-warning predictor's alarms about it are rows of `sw_warnings`.

Every float column is `Float64`, which stores NaN, +-inf and -0.0 faithfully on SQLite and PostgreSQL;
every JSON column is `StrictJSON`. The schema is created and changed only by the Alembic migrations in
`sweeper/db/migrations` (a blank database is created from these classes and stamped; a test checks
that these classes and the migrations agree).

The database can be shared with Optuna's RDBStorage (the sampler's studies and trials): every table,
index and constraint of sweeper's is prefixed `sw_` (revision 0003), so none clashes with Optuna's
`studies`, `trials`, ... and Alembic's bookkeeping is `sweeper_alembic_version`, not Optuna's
`alembic_version`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sweeper.db.types import Float64, StrictJSON, UTCDateTime, utcnow
from sweeper.engine.metrics import METRIC_NAMES as ENGINE_METRIC_NAMES
from sweeper.outcomes import Outcome  # shared with the engine, the classifier and the plots

SCHEMA_REVISION = "0006"
"""The Alembic revision these classes describe (the head of sweeper/db/migrations/versions)."""
VERSION_TABLE = "sweeper_alembic_version"
"""Alembic's bookkeeping table; not `alembic_version`, which Optuna's storage uses."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# ---------------------------------------------------------------------------------------------------
# Enums (stored as their values, in VARCHAR columns with a CHECK constraint)


class StudyStatus(enum.StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"


class TrialStatus(enum.StrEnum):
    """Mirrors Ray Tune's trial states (Tune's ERROR is FAILED, a scheduler's stop is PRUNED)."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    PRUNED = "PRUNED"


class WarningAction(enum.StrEnum):
    STOPPED = "stopped"
    """The predictor's alarm stopped the member."""
    SHADOW = "shadow"
    """The predictor only recorded its alarm; training went on (to measure its accuracy)."""


def _enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        float: Float64(),
        dt.datetime: UTCDateTime(),
        dict[str, Any]: StrictJSON(),
        str: sa.String(255),
        bytes: sa.LargeBinary(),
    }


# ---------------------------------------------------------------------------------------------------
# Studies, trials, members


class Study(Base):
    __tablename__ = "sw_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[StudyStatus] = mapped_column(_enum(StudyStatus, "study_status"), default=StudyStatus.CREATED)
    spec: Mapped[dict[str, Any]]
    """The parsed study file, as JSON."""
    source: Mapped[str | None] = mapped_column(sa.Text)
    """The study file's text, byte for byte as it was run."""
    code_version: Mapped[str | None]
    """`git describe` (or the package version) of the code that ran the study."""
    optuna_study_name: Mapped[str | None]
    """The study's name in the Optuna storage (often this same database), if a sampler drove it."""

    # The driver process running the study (revision 0003). It refreshes `heartbeat_at`; a resume
    # refuses to start while the heartbeat is fresh (another driver is alive).
    driver_host: Mapped[str | None]
    driver_pid: Mapped[int | None]
    heartbeat_at: Mapped[dt.datetime | None]
    planned_trials: Mapped[int | None]
    """How many trials the study file asks for (revision 0003)."""

    trials: Mapped[list[Trial]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )


class Trial(Base):
    """One Ray Tune trial: a pack of members trained together in one process."""

    __tablename__ = "sw_trials"
    __table_args__ = (sa.UniqueConstraint("study_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("sw_studies.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    """0, 1, ... within the study."""
    status: Mapped[TrialStatus] = mapped_column(_enum(TrialStatus, "trial_status"), default=TrialStatus.WAITING)
    attempts: Mapped[int] = mapped_column(default=0)
    """How many times the trial was started (Ray retries a failed trial)."""
    ray_trial_id: Mapped[str | None]
    host: Mapped[str | None]
    worker: Mapped[str | None]
    """The worker process (pid or Ray actor id) of the last attempt."""
    device: Mapped[str | None]
    """'cpu', 'cuda:0', ... plus the device's name where known."""
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    wall_time_s: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    optuna_trial_number: Mapped[int | None]
    points: Mapped[list[dict[str, Any]] | None] = mapped_column(StrictJSON())
    """The configurations this pack trains (revision 0003):
    [{"point": {hyperparameter: value}, "optuna_trial_number": int | None, "config_index": int}]."""
    result: Mapped[dict[str, Any] | None]
    """The last summary the trial reported (revision 0003)."""

    study: Mapped[Study] = relationship(back_populates="trials")
    members: Mapped[list[Member]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", passive_deletes=True, order_by="Member.pack_index"
    )


class Member(Base):
    """One network of a pack: its hyperparameters, what became of it, and its summary metrics."""

    __tablename__ = "sw_members"
    __table_args__ = (
        sa.UniqueConstraint("trial_id", "pack_index"),
        sa.Index("ix_sw_members_study_id_outcome", "study_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(sa.ForeignKey("sw_trials.id", ondelete="CASCADE"))
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("sw_studies.id", ondelete="CASCADE"))
    """Also reachable through the trial; stored so that per-study queries need no join."""
    pack_index: Mapped[int]
    """Position of the member in its pack (the P axis of the engine's tensors)."""

    # Hyperparameters (sweeper.config.Hyper, or a fast-weight family's), one column each so SQL can
    # filter and group by them. plasticity, ratio and gamma are the ephemeral model's (and the RNN's):
    # NULL for a fast-weight family's member (revision 0005); lr and clip are every model's.
    lr: Mapped[float]
    plasticity: Mapped[float | None]
    ratio: Mapped[float | None]
    gamma: Mapped[float | None]
    clip: Mapped[float]
    """inf for no clipping (a weight clamp for the ephemeral model, a gradient-norm clip for the families)."""
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    config: Mapped[dict[str, Any]]
    """The member's whole run configuration (task, model, train, hyperparameters), as JSON."""

    outcome: Mapped[Outcome] = mapped_column(_enum(Outcome, "outcome"), default=Outcome.RUNNING)
    explode_step: Mapped[int | None]
    """The batch at which the explosion criterion fired (detection), for exploded members."""
    steps_done: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)

    # Summary metrics: the last recorded training batch, and the evaluation run.
    final_loss: Mapped[float | None]
    final_acc: Mapped[float | None]
    mem_acc: Mapped[float | None]
    baseline: Mapped[float | None]
    """The task's no-memory accuracy at the memory positions."""
    eval_loss: Mapped[float | None]
    eval_acc: Mapped[float | None]
    eval_mem_acc: Mapped[float | None]
    eval_mem_acc_frozen: Mapped[float | None]
    """Evaluation memory accuracy with the ephemeral dynamics off (the ablation)."""

    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    wall_time_s: Mapped[float | None]
    device: Mapped[str | None]
    code_version: Mapped[str | None]

    # Revision 0003
    config_index: Mapped[int | None]
    """Which configuration of the study it trains (the same for every seed of it)."""
    optuna_trial_number: Mapped[int | None]
    """The Optuna trial that proposed its configuration, if a sampler drove the study."""
    stop_step: Mapped[int | None]
    """The batch at which the early-warning stopper stopped it, for stopped_early members."""

    # Revision 0004
    explode_onset: Mapped[int | None]
    """The first batch of the excursion the explosion criterion confirmed (onset, <= explode_step), for
    exploded members (docs/engine.md); NULL for rows written before revision 0004 (unknown)."""
    final_step: Mapped[int | None]
    """The batch final_loss, final_acc and mem_acc are from: an exploded member's explosion batch, else
    its last full-metrics batch; NULL for rows written before revision 0004."""

    # Revision 0005: the model family (docs/families.md) and the families' own axes
    model_kind: Mapped[str] = mapped_column(sa.String(16), server_default="ephemeral")
    """The study's `[model] kind`: 'ephemeral', 'rnn', 'fastweights' or 'fwp'."""
    eta: Mapped[float | None]
    """fastweights: the fast learning rate eta; NULL for other models."""
    beta_scale: Mapped[float | None]
    """fwp: the scale of eta_t = beta_scale * psi(beta_t); NULL for other models."""
    lam: Mapped[float | None]
    """The families' study axis `lambda` (decay of the fast state); NULL for other models. Named `lam`
    as in FastWeightsHyper and FWPHyper (`lambda` is a Python keyword)."""

    # Revision 0006: the memory judgement of a stable member (sweeper.outcomes.judge_memory), NULL for
    # every other member and for a stable one without an evaluation
    remembers: Mapped[bool | None]
    """Whether eval_mem_acc beats memory_threshold: True, the member remembers; False, it is stable
    without memory (it learned nothing a memoryless predictor could not)."""
    memory_threshold: Mapped[float | None]
    """The highest eval_mem_acc a member without memory reaches with probability `[execution]
    memory_level`: the level-quantile of Binomial(eval_mem_positions, baseline), over eval_mem_positions."""
    eval_mem_positions: Mapped[int | None]
    """Memory positions the evaluation scored (n of the judgement; sweeper.study.memory)."""

    trial: Mapped[Trial] = relationship(back_populates="members")
    metrics: Mapped[list[MemberMetric]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="MemberMetric.step"
    )
    warnings: Mapped[list[EarlyWarning]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="EarlyWarning.step"
    )


_AFTER_MEM_ACC = ENGINE_METRIC_NAMES.index("mem_acc") + 1
METRIC_NAMES = (*ENGINE_METRIC_NAMES[:_AFTER_MEM_ACC], "baseline", *ENGINE_METRIC_NAMES[_AFTER_MEM_ACC:])
"""The per-batch metrics of docs/engine.md (the engine's, plus the no-memory baseline beside mem_acc),
one column each in `member_metrics`."""
FAMILY_ONLY_METRIC_NAMES = ("fast_norm", "grad_fast", "grad_rest", "grad_fast_ratio", "grad_fast_rms_ratio",
                            "transition_max")
"""The fast-weight families' metrics that the ephemeral engine has not (revision 0005)."""


class MemberMetric(Base):
    """A member's metrics at one batch. Batches where only the loss was watched leave the rest NULL."""

    __tablename__ = "sw_member_metrics"

    member_id: Mapped[int] = mapped_column(sa.ForeignKey("sw_members.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(primary_key=True)
    loss: Mapped[float | None]
    acc: Mapped[float | None]
    mem_acc: Mapped[float | None]
    baseline: Mapped[float | None]
    grad_eph: Mapped[float | None]
    grad_slow: Mapped[float | None]
    grad_ratio: Mapped[float | None]
    grad_rms_ratio: Mapped[float | None]
    w_eph: Mapped[float | None]
    w_slow: Mapped[float | None]
    max_logit: Mapped[float | None]
    # Revision 0005: the fast-weight families' metrics (sweeper.engine.families.metrics); NULL for
    # ephemeral and RNN members, as grad_eph ... w_eph are NULL for family members.
    fast_norm: Mapped[float | None]
    grad_fast: Mapped[float | None]
    grad_rest: Mapped[float | None]
    grad_fast_ratio: Mapped[float | None]
    grad_fast_rms_ratio: Mapped[float | None]
    transition_max: Mapped[float | None]

    @classmethod
    def from_metrics(cls, member_id: int, step: int, metrics: Mapping[str, float]) -> MemberMetric:
        """A row from a metrics mapping; a name that is not a column raises (nothing is dropped)."""
        known = (*METRIC_NAMES, *FAMILY_ONLY_METRIC_NAMES)
        unknown = set(metrics) - set(known)
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
        return cls(member_id=member_id, step=step, **metrics)


# ---------------------------------------------------------------------------------------------------
# Early warnings, predictors, stability-boundary fits


class EarlyWarning(Base):
    """An alarm of the early-warning predictor about one member at one batch."""

    __tablename__ = "sw_warnings"
    __table_args__ = (sa.Index("ix_sw_warnings_member_id_step", "member_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("sw_members.id", ondelete="CASCADE"))
    step: Mapped[int]
    score: Mapped[float]
    predictor: Mapped[str]
    """The predictor's name (kind and version), as the worker knew it."""
    signals: Mapped[dict[str, Any] | None]
    """The inputs the predictor saw (e.g. recent grad_ratio, max_logit), as JSON."""
    action: Mapped[WarningAction] = mapped_column(_enum(WarningAction, "warning_action"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    predictor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sw_predictors.id", ondelete="SET NULL"))
    """The stored predictor, when the worker loaded one from this database (revision 0002)."""


class Predictor(Base):
    """A fitted early-warning predictor (revision 0002)."""

    __tablename__ = "sw_predictors"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sw_studies.id", ondelete="SET NULL"), index=True)
    """The study it was trained on, if one."""
    kind: Mapped[str]
    name: Mapped[str | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any] | None]
    """Parameters and training report, as JSON."""
    blob: Mapped[bytes | None]
    """A serialized model, when JSON cannot hold it."""
    code_version: Mapped[str | None]


class BoundaryFit(Base):
    """A fitted stability boundary in hyperparameter space (revision 0002)."""

    __tablename__ = "sw_boundary_fits"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("sw_studies.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any] | None]
    blob: Mapped[bytes | None]
    code_version: Mapped[str | None]
