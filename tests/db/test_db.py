"""The trial database (sweeper.db), on SQLite and on PostgreSQL.

Every contract test runs on both backends through the `db_url` fixture (tests/conftest.py): a fresh
SQLite file, or a fresh uniquely named PostgreSQL database (created on the server named by
$SWEEPER_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres, and dropped afterwards).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing
import sqlite3
import struct
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sweeper.db import (
    METRIC_NAMES,
    SCHEMA_REVISION,
    Base,
    BoundaryFit,
    EarlyWarning,
    Member,
    MemberMetric,
    Outcome,
    Predictor,
    QueryError,
    QueryRefused,
    StorageError,
    Study,
    StudyStatus,
    Trial,
    TrialStatus,
    WarningAction,
    default_url,
    open_db,
    parse_url,
    run_readonly_query,
    upgrade,
)
from sweeper.db.engine import _enter_wal, make_engine
from sweeper.db.migrate import current_revision, head_revision, include_name
from sweeper.db.models import VERSION_TABLE

BACKENDS = ["sqlite", "postgresql"]


# ---------------------------------------------------------------------------------------------------
# Fixtures (db_url, db and fresh_database are in conftest.py)


def add_pack(db, *, study_name: str = "study", n_members: int = 3, number: int = 0) -> tuple[int, int, list[int]]:
    """A study (if new), one trial and `n_members` members; returns (study id, trial id, member ids)."""
    with db.session() as s:
        study = s.scalar(sa.select(Study).where(Study.name == study_name))
        if study is None:
            study = Study(name=study_name, spec={"task": "key_recall", "lr": [1e-4, 1e-2]}, code_version="test")
            s.add(study)
            s.flush()
        trial = Trial(study_id=study.id, number=number, status=TrialStatus.RUNNING, attempts=1, device="cpu")
        s.add(trial)
        s.flush()
        members = [
            Member(
                trial_id=trial.id,
                study_id=study.id,
                pack_index=i,
                lr=1e-3 * (i + 1),
                plasticity=1e4,
                ratio=0.1,
                gamma=0.7,
                clip=math.inf,
                seed=i,
                config={"lr": 1e-3 * (i + 1), "clip": math.inf},
            )
            for i in range(n_members)
        ]
        s.add_all(members)
        s.flush()
        return study.id, trial.id, [m.id for m in members]


def same_float(a: float | None, b: float | None) -> bool:
    """Equal as stored values: bit for bit, except that any NaN equals any NaN."""
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)


# ---------------------------------------------------------------------------------------------------
# Migrations


def model_diff(url: str) -> list:
    """Alembic's differences between the database's schema and models.py (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = sa.create_engine(parse_url(url))
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "version_table": VERSION_TABLE,
                "target_metadata": Base.metadata,
                "include_name": include_name,  # as env.py: other tables (Optuna's) are none of sweeper's business
            },
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return diff


def schema_of(url: str) -> dict:
    """sweeper's tables as the database describes them: columns in order, every constraint and index
    by name, and on PostgreSQL the sequences. Stricter than `model_diff`, which ignores names."""
    engine = sa.create_engine(parse_url(url))
    schema = {}
    with engine.connect() as c:
        inspector = sa.inspect(c)
        for table in sorted(set(inspector.get_table_names()) & set(Base.metadata.tables)):
            schema[table] = {
                "columns": [(x["name"], str(x["type"]), x["nullable"]) for x in inspector.get_columns(table)],
                "pk": inspector.get_pk_constraint(table)["name"],
                "fk": sorted(
                    (f["name"], *f["constrained_columns"], f["referred_table"], f["options"].get("ondelete"))
                    for f in inspector.get_foreign_keys(table)
                ),
                "uq": sorted((u["name"], *u["column_names"]) for u in inspector.get_unique_constraints(table)),
                "ck": sorted((k["name"], k["sqltext"]) for k in inspector.get_check_constraints(table)),
                "ix": sorted((x["name"], *x["column_names"]) for x in inspector.get_indexes(table)),
            }
        if c.dialect.name == "postgresql":
            schema["sequences"] = sorted(s for s in inspector.get_sequence_names() if s.startswith("sw_"))
    engine.dispose()
    return schema


def test_blank_database_gets_the_schema_of_the_models(db_url):
    assert current_revision(db_url) is None
    assert upgrade(db_url) == SCHEMA_REVISION == head_revision() == "0006"
    assert current_revision(db_url) == SCHEMA_REVISION
    engine = sa.create_engine(parse_url(db_url))
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert tables == set(Base.metadata.tables) | {VERSION_TABLE}
    assert all(t.startswith("sw_") for t in Base.metadata.tables)
    assert model_diff(db_url) == [], "the schema and models.py disagree"
    assert upgrade(db_url) == SCHEMA_REVISION  # idempotent


def _tables_at(revision: str) -> dict[str, sa.Table]:
    """The tables as revision 0001/0002 defined them (the models describe the head), for writing rows."""
    from sweeper.db.types import Float64, StrictJSON, UTCDateTime

    metadata = sa.MetaData()
    sa.Table(
        "studies", metadata, *(sa.Column(c) for c in ("id", "name", "status")),
        sa.Column("created_at", UTCDateTime()), sa.Column("spec", StrictJSON()),
    )  # fmt: skip
    sa.Table("trials", metadata, *(sa.Column(c) for c in ("id", "study_id", "number", "status", "attempts")))
    sa.Table(
        "members", metadata,
        *(sa.Column(c) for c in ("id", "trial_id", "study_id", "pack_index", "seed", "outcome", "steps_done")),
        *(sa.Column(c, Float64()) for c in ("lr", "plasticity", "ratio", "gamma", "clip", "final_loss")),
        sa.Column("explode_step"), sa.Column("config", StrictJSON()),
    )  # fmt: skip
    sa.Table("member_metrics", metadata, sa.Column("member_id"), sa.Column("step"), sa.Column("loss", Float64()))
    warning_columns = ("id", "member_id", "step", "predictor", "action") + (("predictor_id",) if revision >= "0002" else ())
    sa.Table(
        "warnings", metadata, *(sa.Column(c) for c in warning_columns),
        sa.Column("score", Float64()), sa.Column("signals", StrictJSON()), sa.Column("created_at", UTCDateTime()),
    )  # fmt: skip
    if revision >= "0002":
        for name in ("predictors", "boundary_fits"):
            sa.Table(
                name, metadata, *(sa.Column(c) for c in ("id", "study_id", "kind", "blob")),
                sa.Column("payload", StrictJSON()), sa.Column("created_at", UTCDateTime()),
            )  # fmt: skip
    return metadata.tables


def upgrade_to_head_and_compare_with_a_new_database(db_url, fresh_database, tmp_path) -> None:
    """Upgrade `db_url` to this code's revision and check its schema against the models and against a
    database created new at that revision."""
    assert upgrade(db_url) == SCHEMA_REVISION == "0006"
    assert model_diff(db_url) == [], "the migrations and models.py disagree; write a new revision"
    (tmp_path / "blank").mkdir()
    with fresh_database("sqlite" if db_url.startswith("sqlite") else "postgresql", tmp_path / "blank") as blank_url:
        upgrade(blank_url)
        assert schema_of(db_url) == schema_of(blank_url), "a migrated database differs from a new one"


def test_upgrade_from_revisions_1_2_and_3_keeps_rows_and_matches_the_models(db_url, fresh_database, tmp_path):
    assert upgrade(db_url, "0001") == "0001"
    engine = sa.create_engine(parse_url(db_url))
    assert {"predictors", "boundary_fits"}.isdisjoint(sa.inspect(engine).get_table_names())
    with pytest.raises(StorageError, match="revision 0001"):
        open_db(db_url)

    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    t = _tables_at("0001")
    with engine.begin() as c:
        c.execute(t["studies"].insert(), {"name": "old", "status": "COMPLETE", "created_at": now, "spec": {"a": 1}})
        c.execute(t["trials"].insert(), {"id": 1, "study_id": 1, "number": 0, "status": "COMPLETE", "attempts": 2})
        c.execute(
            t["members"].insert(),
            [
                dict(id=i + 1, trial_id=1, study_id=1, pack_index=i, seed=i, outcome=o, steps_done=100, explode_step=e,
                     lr=1e-3, plasticity=1e4, ratio=0.1, gamma=0.7, clip=math.inf, final_loss=loss,
                     config={"loss": loss})
                for i, (o, e, loss) in enumerate([("stable", None, 0.5), ("exploded", 42, math.nan)])
            ],
        )  # fmt: skip
        c.execute(t["member_metrics"].insert(), [{"member_id": 2, "step": k, "loss": v}
                                                  for k, v in enumerate([1.0, math.inf, math.nan])])  # fmt: skip
        c.execute(
            t["warnings"].insert(),
            {"id": 1, "member_id": 2, "step": 40, "predictor": "grad_ratio@1", "action": "shadow", "score": math.inf,
             "signals": {"grad_ratio": [1.0, math.nan]}, "created_at": now},
        )  # fmt: skip

    assert upgrade(db_url, "0002") == "0002"
    with pytest.raises(StorageError, match="has schema revision 0002; this code needs revision 0006.*upgrade"):
        open_db(db_url)  # an un-migrated database is refused, and left as it is
    assert current_revision(db_url) == "0002"
    t = _tables_at("0002")
    with engine.begin() as c:
        c.execute(t["predictors"].insert(), {"id": 1, "study_id": 1, "kind": "logistic", "blob": b"\x00\x01",
                                             "payload": {"w": [0.5, -math.inf]}, "created_at": now})  # fmt: skip
        c.execute(t["boundary_fits"].insert(), {"id": 1, "study_id": 1, "kind": "svm", "blob": None,
                                                "payload": {"c": 1.0}, "created_at": now})  # fmt: skip
        c.execute(t["warnings"].insert(), {"id": 2, "member_id": 2, "step": 41, "predictor": "logistic@1",
                                           "action": "stopped", "score": 0.9, "predictor_id": 1, "created_at": now})

    from sweeper.db.types import Float64, StrictJSON

    assert upgrade(db_url, "0003") == "0003"
    with pytest.raises(StorageError, match="has schema revision 0003; this code needs revision 0006.*upgrade"):
        open_db(db_url)
    members_0003 = sa.Table(
        "sw_members", sa.MetaData(),
        *(sa.Column(c) for c in ("id", "trial_id", "study_id", "pack_index", "seed", "outcome", "steps_done",
                                 "explode_step", "stop_step", "config_index")),
        *(sa.Column(c, Float64()) for c in ("lr", "plasticity", "ratio", "gamma", "clip", "final_loss")),
        sa.Column("config", StrictJSON()),
    )  # fmt: skip
    with engine.begin() as c:
        c.execute(members_0003.insert(), dict(
            id=3, trial_id=1, study_id=1, pack_index=2, seed=2, outcome="exploded", steps_done=60, explode_step=59,
            stop_step=None, config_index=1, lr=1.0, plasticity=1.0, ratio=0.1, gamma=0.7, clip=1.0, final_loss=math.inf,
            config={}))  # fmt: skip
    engine.dispose()

    upgrade_to_head_and_compare_with_a_new_database(db_url, fresh_database, tmp_path)
    engine = sa.create_engine(parse_url(db_url))
    assert set(sa.inspect(engine).get_table_names()) == set(Base.metadata.tables) | {VERSION_TABLE}
    engine.dispose()

    db = open_db(db_url)
    with db.read_session() as s:
        study = s.scalars(sa.select(Study)).one()
        assert (study.name, study.status.value, study.created_at, study.spec) == ("old", "COMPLETE", now, {"a": 1})
        assert (study.heartbeat_at, study.driver_pid, study.planned_trials) == (None, None, None)
        trial = s.get(Trial, 1)
        assert (trial.attempts, trial.points, trial.result) == (2, None, None)
        found = s.scalars(sa.select(Member).order_by(Member.pack_index)).all()
        assert [(m.outcome, m.explode_step, m.stop_step, m.config_index) for m in found] == [
            (Outcome.STABLE, None, None, None), (Outcome.EXPLODED, 42, None, None), (Outcome.EXPLODED, 59, None, 1)
        ]  # fmt: skip
        assert [(m.explode_onset, m.final_step) for m in found] == [(None, None)] * 3  # 0004: unknown, not guessed
        assert [(m.model_kind, m.eta, m.beta_scale, m.lam, m.plasticity) for m in found] == [
            ("ephemeral", None, None, None, 1e4), ("ephemeral", None, None, None, 1e4),
            ("ephemeral", None, None, None, 1.0)]  # 0005: a spec without model.kind is the ephemeral model
        assert found[2].final_loss == math.inf
        assert found[0].final_loss == 0.5 and math.isnan(found[1].final_loss) and found[1].clip == math.inf
        assert math.isnan(found[1].config["loss"])
        losses = s.scalars(sa.select(MemberMetric.loss).order_by(MemberMetric.step)).all()
        assert losses[:2] == [1.0, math.inf] and math.isnan(losses[2])
        first, second = s.scalars(sa.select(EarlyWarning).order_by(EarlyWarning.id)).all()
        assert (first.member_id, first.step, first.action, first.predictor_id) == (2, 40, WarningAction.SHADOW, None)
        assert first.score == math.inf and first.created_at == now
        assert first.signals["grad_ratio"][0] == 1.0 and math.isnan(first.signals["grad_ratio"][1])
        assert (second.predictor_id, second.action) == (1, WarningAction.STOPPED)
        predictor = s.get(Predictor, 1)
        assert (predictor.blob, predictor.payload) == (b"\x00\x01", {"w": [0.5, -math.inf]})
        assert s.get(BoundaryFit, 1).payload == {"c": 1.0}

    # New rows get fresh ids (PostgreSQL's renamed sequences go on), the new columns take values,
    # and the foreign keys still act.
    with db.session() as s:
        s.add(Study(name="new", spec={}, driver_host="h", driver_pid=7, heartbeat_at=now, planned_trials=4))
        s.get(Trial, 1).points = [{"point": {"lr": math.inf}, "optuna_trial_number": None, "config_index": 0}]
        s.get(Member, 2).stop_step = 40
        s.get(Member, 3).explode_onset, s.get(Member, 3).final_step = 0, 59
    with db.session() as s:
        s.delete(s.get(Predictor, 1))
    with db.read_session() as s:
        assert s.scalar(sa.select(Study.id).where(Study.name == "new")) == 2
        assert s.get(Study, 2).heartbeat_at == now
        assert s.get(Trial, 1).points[0]["point"]["lr"] == math.inf
        assert s.get(EarlyWarning, 2).predictor_id is None  # ON DELETE SET NULL
        assert (s.get(Member, 3).explode_onset, s.get(Member, 3).final_step) == (0, 59)
    with db.session() as s:
        s.delete(s.get(Study, 1))
    with db.read_session() as s:  # ON DELETE CASCADE
        assert [s.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Trial, Member, MemberMetric)] == [0] * 3
    db.dispose()


def test_upgrade_from_revision_4_backfills_model_kind_and_takes_family_members(db_url, fresh_database, tmp_path):
    """0005: each member's model_kind from its study's stored spec (model.kind, else 'ephemeral'); the
    families' columns NULL for old rows; plasticity, ratio, gamma nullable; new metric columns NULL."""
    from sweeper.db.types import Float64, StrictJSON, UTCDateTime

    assert upgrade(db_url, "0004") == "0004"
    with pytest.raises(StorageError, match="has schema revision 0004; this code needs revision 0006.*upgrade"):
        open_db(db_url)
    m = sa.MetaData()
    studies = sa.Table("sw_studies", m, sa.Column("id"), sa.Column("name"), sa.Column("status"),
                       sa.Column("created_at", UTCDateTime()), sa.Column("spec", StrictJSON()))
    trials = sa.Table("sw_trials", m, *(sa.Column(c) for c in ("id", "study_id", "number", "status", "attempts")))
    members = sa.Table(
        "sw_members", m,
        *(sa.Column(c) for c in ("id", "trial_id", "study_id", "pack_index", "seed", "outcome", "steps_done",
                                 "explode_onset", "final_step")),
        *(sa.Column(c, Float64()) for c in ("lr", "plasticity", "ratio", "gamma", "clip")),
        sa.Column("config", StrictJSON()),
    )  # fmt: skip
    metrics = sa.Table("sw_member_metrics", m, sa.Column("member_id"), sa.Column("step"),
                       sa.Column("grad_ratio", Float64()))
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    specs = [{"model": {"width": 16}}, {"model": {"kind": "rnn", "width": 8}}, ["not", "a", "dict"],
             {"model": {"kind": "ephemeral"}}]
    engine = sa.create_engine(parse_url(db_url))
    with engine.begin() as c:
        for i, spec in enumerate(specs, start=1):
            c.execute(studies.insert(), {"id": i, "name": f"s{i}", "status": "COMPLETE", "created_at": now,
                                         "spec": spec})
            c.execute(trials.insert(), {"id": i, "study_id": i, "number": 0, "status": "COMPLETE", "attempts": 1})
            c.execute(members.insert(), dict(
                id=i, trial_id=i, study_id=i, pack_index=0, seed=i, outcome="stable", steps_done=10,
                explode_onset=None, final_step=9, lr=1e-2, plasticity=1e3, ratio=0.0 if i == 2 else 0.1, gamma=0.7,
                clip=math.inf, config={"i": i}))  # fmt: skip
            c.execute(metrics.insert(), {"member_id": i, "step": 0, "grad_ratio": math.nan})
    engine.dispose()

    upgrade_to_head_and_compare_with_a_new_database(db_url, fresh_database, tmp_path)

    db = open_db(db_url)
    with db.read_session() as s:
        found = s.scalars(sa.select(Member).order_by(Member.id)).all()
        assert [m.model_kind for m in found] == ["ephemeral", "rnn", "ephemeral", "ephemeral"]
        assert [(m.eta, m.beta_scale, m.lam) for m in found] == [(None, None, None)] * 4
        assert [(m.plasticity, m.ratio, m.gamma, m.clip, m.final_step) for m in found][1] == (1e3, 0.0, 0.7,
                                                                                                 math.inf, 9)
        assert found[0].config == {"i": 1}
        row = s.scalars(sa.select(MemberMetric).where(MemberMetric.member_id == 2)).one()
        assert math.isnan(row.grad_ratio) and (row.fast_norm, row.grad_fast, row.transition_max) == (None,) * 3
    # A family member: no plasticity, ratio, gamma; its own axes; family metrics (explicit ids: the rows
    # written above did not advance PostgreSQL's sequence).
    with db.session() as s:
        s.add(Member(id=10, trial_id=1, study_id=1, pack_index=1, seed=0, lr=1e-3, clip=math.inf, model_kind="fwp",
                     beta_scale=1.0, lam=1.0, config={}))
    with db.session() as s:
        new = s.scalars(sa.select(Member).where(Member.pack_index == 1)).one()
        s.add(MemberMetric.from_metrics(new.id, 0, {"loss": 1.0, "fast_norm": 2.0, "transition_max": math.nan}))
    with db.read_session() as s:
        new = s.scalars(sa.select(Member).where(Member.pack_index == 1)).one()
        assert (new.model_kind, new.plasticity, new.ratio, new.gamma, new.eta, new.beta_scale, new.lam) == (
            "fwp", None, None, None, None, 1.0, 1.0)
        assert new.metrics[0].fast_norm == 2.0 and math.isnan(new.metrics[0].transition_max)
        defaulted = Member(id=11, trial_id=2, study_id=2, pack_index=5, seed=0, lr=1e-3, plasticity=1.0, ratio=0.1,
                           gamma=0.7, clip=1.0, config={})
    with db.session() as s:
        s.add(defaulted)
    with db.read_session() as s:  # the server default: 'ephemeral'
        assert s.scalar(sa.select(Member.model_kind).where(Member.pack_index == 5)) == "ephemeral"
    db.dispose()


def _upgrade_in_child(url: str, barrier, errors) -> None:
    try:
        barrier.wait(timeout=60)
        assert upgrade(url) == SCHEMA_REVISION
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """A rollback-journal file with another connection mid-write (RESERVED lock): the state in which
    SQLite refuses `PRAGMA journal_mode = WAL` at once, without calling the busy handler."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other VALUES (1)")
    return holder


def test_a_connection_waits_for_a_writer_before_switching_the_file_to_wal(tmp_path):
    path = tmp_path / "race.sqlite3"
    holder = _hold_write_lock(path)
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    engine = make_engine(parse_url(f"sqlite:///{path}"))
    start = time.monotonic()
    release.start()
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        release.join()
        engine.dispose()
        holder.close()
    assert time.monotonic() - start >= 0.4  # it waited for the writer instead of failing at once


def test_the_switch_to_wal_gives_up_after_its_timeout(tmp_path):
    path = tmp_path / "race.sqlite3"
    holder = _hold_write_lock(path)
    waiter = sqlite3.connect(path, isolation_level=None)
    start = time.monotonic()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _enter_wal(waiter.cursor(), timeout_s=0.3)
        assert 0.3 <= time.monotonic() - start < 5
    finally:
        waiter.close()
        holder.execute("ROLLBACK")
        holder.close()


def test_concurrent_upgrades_of_a_blank_database_all_succeed(db_url):
    run_in_processes(_upgrade_in_child, [(db_url,)] * 3)
    assert current_revision(db_url) == SCHEMA_REVISION


def test_open_db_refuses_a_database_it_cannot_use(db_url, tmp_path):
    if db_url.startswith("sqlite"):
        with pytest.raises(StorageError, match="no database at .*run `sweeper submit STUDY.toml` first"):
            open_db(db_url)
        assert not Path(parse_url(db_url).database).exists()  # nothing created
    else:
        with pytest.raises(StorageError, match="no sweeper schema.*upgrade"):
            open_db(db_url)
    upgrade(db_url)
    engine = sa.create_engine(parse_url(db_url))
    with engine.begin() as c:
        c.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError, match="revision 9999"):
        open_db(db_url)
    with pytest.raises(StorageError, match="9999"):
        upgrade(db_url)


def test_upgrade_refuses_a_database_whose_sw_tables_are_not_sweepers(db_url):
    engine = sa.create_engine(parse_url(db_url))
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE sw_studies (x INTEGER PRIMARY KEY)"))
    with pytest.raises(StorageError, match="sw_studies but no sweeper_alembic_version: not a database sweeper made"):
        upgrade(db_url)
    assert set(sa.inspect(engine).get_table_names()) == {"sw_studies"}  # nothing created
    engine.dispose()


# ---------------------------------------------------------------------------------------------------
# Sharing the database with Optuna's RDBStorage

OPTUNA_TABLES = {
    "studies", "trials", "trial_params", "trial_values", "trial_intermediate_values", "trial_system_attributes",
    "trial_user_attributes", "study_directions", "study_user_attributes", "study_system_attributes",
    "trial_heartbeats", "version_info", "alembic_version",
}  # fmt: skip


def _optuna_study(url: str, name: str, n_trials: int):
    """An Optuna study in the storage at `url`, with `n_trials` finished trials (one returns inf)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    values = iter([0.5, math.inf, 0.25, 0.75])
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-4, 1e-2, log=True) * 0 + next(values), n_trials=n_trials)
    return storage, study


@pytest.mark.parametrize("order", ["optuna_first", "sweeper_first"])
def test_optuna_and_sweeper_share_one_database(db_url, order):
    import optuna

    if order == "optuna_first":
        storage, _ = _optuna_study(db_url, "opt", 2)
        storage.engine.dispose()
        assert upgrade(db_url) == SCHEMA_REVISION
    else:
        assert upgrade(db_url) == SCHEMA_REVISION
        storage, _ = _optuna_study(db_url, "opt", 2)
        storage.engine.dispose()
    assert upgrade(db_url) == SCHEMA_REVISION  # idempotent with Optuna's tables beside
    assert model_diff(db_url) == []

    db = open_db(db_url)
    add_pack(db, study_name="sw")
    with db.session() as s:
        s.scalars(sa.select(Study)).one().optuna_study_name = "opt"
    storage, study = _optuna_study(db_url, "opt", 1)  # both write after both exist
    add_pack(db, study_name="sw", number=1)

    engine = sa.create_engine(parse_url(db_url))
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert tables == OPTUNA_TABLES | set(Base.metadata.tables) | {VERSION_TABLE}

    reader = optuna.storages.RDBStorage(db_url)  # a fresh storage: its version check passes too
    loaded = optuna.load_study(study_name="opt", storage=reader)
    assert [t.state.name for t in loaded.trials] == ["COMPLETE"] * 3
    assert [t.value for t in loaded.trials] == [0.5, math.inf, 0.5]
    with db.read_session() as s:
        assert s.scalar(sa.select(Study.optuna_study_name)) == "opt"
        assert s.scalars(sa.select(Trial.number).order_by(Trial.number)).all() == [0, 1]
        assert s.scalar(sa.select(sa.func.count()).select_from(Member)) == 6
    assert run_readonly_query(db_url, "SELECT count(*) AS n FROM trials") == (["n"], [(3,)])  # Optuna's
    assert run_readonly_query(db_url, "SELECT count(*) AS n FROM sw_trials") == (["n"], [(2,)])
    db.dispose()
    for s in (storage, reader):
        s.engine.dispose()


# ---------------------------------------------------------------------------------------------------
# Values: floats, JSON, time, enums


FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, 2.2250738585072014e-308, 1 / 3, None]


def test_every_float_round_trips(db):
    _, _, (member_id, *_) = add_pack(db, n_members=1)
    with db.session() as s:
        for step, value in enumerate(FLOATS):
            s.add(MemberMetric.from_metrics(member_id, step, {name: value for name in METRIC_NAMES}))
        member = s.get(Member, member_id)
        member.final_loss, member.eval_mem_acc, member.clip = math.nan, -0.0, -math.inf

    fresh = open_db(db.url)  # a new engine: nothing cached
    with fresh.read_session() as s:
        rows = s.scalars(sa.select(MemberMetric).order_by(MemberMetric.step)).all()
        member = s.get(Member, member_id)
    fresh.dispose()
    assert len(rows) == len(FLOATS)
    for row, value in zip(rows, FLOATS, strict=True):
        for name in METRIC_NAMES:
            assert same_float(getattr(row, name), value), (name, getattr(row, name), value)
    assert math.isnan(member.final_loss) and same_float(member.eval_mem_acc, -0.0) and member.clip == -math.inf


def test_nan_compares_and_sorts_alike_on_both_backends(db):
    _, _, (member_id, *_) = add_pack(db, n_members=1)
    values = [math.nan, 1.0, -math.inf, math.inf, -1.0, None]
    with db.session() as s:
        s.add_all(MemberMetric(member_id=member_id, step=i, loss=v) for i, v in enumerate(values))
    with db.read_session() as s:
        by_loss = s.scalars(
            sa.select(MemberMetric.loss).where(MemberMetric.loss.is_not(None)).order_by(MemberMetric.loss)
        ).all()
        nan_steps = s.scalars(sa.select(MemberMetric.step).where(MemberMetric.loss == math.nan)).all()
        above = s.scalars(sa.select(MemberMetric.step).where(MemberMetric.loss > 0).order_by(MemberMetric.step)).all()
    assert by_loss[:4] == [-math.inf, -1.0, 1.0, math.inf] and math.isnan(by_loss[4])
    assert nan_steps == [0]
    assert above == [0, 1, 3]  # NaN sorts above every number on both backends


def test_json_columns_hold_strict_json_and_round_trip_non_finite_floats(db):
    config = {
        "lr": math.nan, "clip": math.inf, "low": -math.inf, "zero": -0.0, "big": 1e308, "i": 3, "b": True,
        "none": None, "s": "text", "nested": [1.5, math.nan, {"x": -math.inf}, (1, 2)],
    }  # fmt: skip
    _, _, (member_id, *_) = add_pack(db, n_members=1)
    with db.session() as s:
        s.get(Member, member_id).config = config
    with db.read_session() as s:
        back = s.get(Member, member_id).config
        cast = "CAST(config AS TEXT)" if db.backend == "postgresql" else "config"
        raw = s.execute(sa.text(f"SELECT {cast} FROM sw_members WHERE id = :id"), {"id": member_id}).scalar_one()

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token} stored")

    stored = json.loads(raw, parse_constant=refuse)
    assert stored["lr"] == "NaN" and stored["clip"] == "Infinity" and stored["nested"][2] == {"x": "-Infinity"}
    assert math.isnan(back["lr"]) and back["clip"] == math.inf and back["low"] == -math.inf
    assert same_float(back["zero"], -0.0) and back["big"] == 1e308
    assert (back["i"], back["b"], back["none"], back["s"]) == (3, True, None, "text")
    assert back["nested"][0] == 1.5 and math.isnan(back["nested"][1]) and back["nested"][2] == {"x": -math.inf}
    assert back["nested"][3] == [1, 2]


def test_timestamps_are_utc_aware(db):
    add_pack(db)
    when = dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with db.session() as s:
        s.get(Trial, 1).started_at = when
    with db.read_session() as s:
        trial = s.get(Trial, 1)
        assert trial.started_at == when and trial.started_at.tzinfo == dt.UTC
        assert s.get(Study, 1).created_at.tzinfo == dt.UTC
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        with db.session() as s:
            s.get(Trial, 1).finished_at = dt.datetime(2026, 1, 1)


def test_every_enum_value_fits_its_column(db):
    """A value added to an enum (e.g. sweeper.outcomes.Outcome) needs a migration of the CHECK constraint."""
    study_id, trial_id, (member_id, *_) = add_pack(db)
    for column, values in [
        (Study.status, StudyStatus),
        (Trial.status, TrialStatus),
        (Member.outcome, Outcome),
    ]:
        for value in values:
            with db.session() as s:
                row_id = {Study: study_id, Trial: trial_id, Member: member_id}[column.class_]
                s.execute(sa.update(column.class_).where(column.class_.id == row_id).values({column.key: value}))
    for action in WarningAction:
        with db.session() as s:
            s.add(EarlyWarning(member_id=member_id, step=0, score=1.0, predictor="p", action=action))
    with db.read_session() as s:
        assert s.get(Member, member_id).outcome is list(Outcome)[-1]  # the last one written
        assert {w.action for w in s.scalars(sa.select(EarlyWarning))} == set(WarningAction)


def test_constraints_hold(db):
    _, trial_id, (member_id, *_) = add_pack(db)
    with pytest.raises(sa.exc.IntegrityError):  # enum CHECK, even for raw SQL
        with db.session() as s:
            s.execute(sa.text("UPDATE sw_members SET outcome = 'bogus' WHERE id = :id"), {"id": member_id})
    with pytest.raises(sa.exc.IntegrityError):  # one row per (member, step)
        with db.session() as s:
            s.add_all([MemberMetric(member_id=member_id, step=5), MemberMetric(member_id=member_id, step=5)])
    with pytest.raises(sa.exc.IntegrityError):  # foreign keys are on
        with db.session() as s:
            s.add(MemberMetric(member_id=10_000, step=0))
    with pytest.raises(ValueError, match="unknown metric.*lossy"):
        MemberMetric.from_metrics(member_id, 0, {"lossy": 1.0})


def test_deleting_a_study_deletes_its_trials_members_metrics_and_warnings(db):
    study_id, _, member_ids = add_pack(db)
    other_study, _, _ = add_pack(db, study_name="other")
    with db.session() as s:
        s.add_all(MemberMetric(member_id=m, step=0, loss=1.0) for m in member_ids)
        s.add(EarlyWarning(member_id=member_ids[0], step=0, score=0.9, predictor="p", action=WarningAction.STOPPED))
    with db.session() as s:
        s.execute(sa.delete(Study).where(Study.id == study_id))
    with db.read_session() as s:
        counts = {
            t: s.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Trial, Member, MemberMetric, EarlyWarning)
        }
        assert counts == {Trial: 1, Member: 3, MemberMetric: 0, EarlyWarning: 0}
        assert s.scalars(sa.select(Member.study_id).distinct()).all() == [other_study]


# ---------------------------------------------------------------------------------------------------
# Engine: URLs, pragmas, sessions, many writers


@pytest.mark.parametrize(
    "url, message",
    [
        ("", "empty storage URL"),
        ("   ", "empty storage URL"),
        ("sweeper.sqlite3", "cannot parse storage URL"),
        ("mysql://user@host/db", "unsupported database 'mysql'"),
        ("sqlite://", "missing database file path"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite://sweeper.sqlite3", "three slashes"),
        ("sqlite:////no/such/directory/sweeper.sqlite3", "directory /no/such/directory does not exist"),
        ("sqlite:///x.sqlite3?mode=memory", "no options"),
        ("sqlite+aiosqlite:///x.sqlite3", "driver 'aiosqlite'"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432", "missing database name"),
        ("postgresql+psycopg2://user:hunter2@127.0.0.1/db", "driver 'psycopg2'"),
    ],
)
def test_malformed_storage_urls_are_refused_before_connecting(url, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for call in (parse_url, open_db, upgrade, lambda u: run_readonly_query(u, "SELECT 1")):
        with pytest.raises(StorageError, match=message) as caught:
            call(url)
        assert "hunter2" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_not_a_database(tmp_path):
    with pytest.raises(StorageError, match="is a directory"):
        parse_url(f"sqlite:///{tmp_path}")


def test_default_url_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("SWEEPER_DB", raising=False)
    assert default_url() == "sqlite:///sweeper.sqlite3"
    monkeypatch.setenv("SWEEPER_DB", "sqlite:///runs/x.sqlite3")
    assert default_url() == "sqlite:///runs/x.sqlite3"
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_url(None).database == str(tmp_path / "runs" / "x.sqlite3")  # absolute, for Ray workers
    assert parse_url("postgresql://u@h/d").drivername == "postgresql+psycopg"


def test_sqlite_connections_are_configured_for_many_writers(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    upgrade(url)
    db = open_db(url)
    with db.engine.connect() as c:
        pragmas = {
            p: c.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "busy_timeout", "foreign_keys")
        }
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 30_000, "foreign_keys": 1}
    statements = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    add_pack(db)
    assert statements[0] == "BEGIN IMMEDIATE"
    with db.read_session() as s:
        assert s.execute(sa.text("PRAGMA query_only")).scalar() == 1
    db.dispose()


def test_read_sessions_cannot_write(db):
    add_pack(db)
    with pytest.raises(sa.exc.DBAPIError):
        with db.read_session() as s:
            s.execute(sa.text("DELETE FROM members"))
    with db.read_session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Member)) == 3


def run_in_processes(target, args_list: list[tuple], timeout_s: float = 120) -> None:
    """Run target(*args, barrier, errors) in one forked process each, started together.

    The caller must hold no open database connection (children open their own; SQLite forbids
    carrying a connection across fork()).
    """
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(args_list))
    errors = context.Queue()
    processes = [context.Process(target=target, args=(*args, barrier, errors)) for args in args_list]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout_s)
    for p in processes:
        if p.is_alive():
            p.kill()
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert not failures, "\n".join(failures)
    assert [p.exitcode for p in processes] == [0] * len(processes)


MEMBERS_PER_WRITER, STEPS_PER_MEMBER = 50, 10


def _write_members_in_child(url: str, study_id: int, trial_id: int, spans, barrier, errors) -> None:
    try:
        db = open_db(url)
        barrier.wait(timeout=60)
        start = time.monotonic()
        for i in range(MEMBERS_PER_WRITER):
            with db.session() as s:  # one short transaction per member, reading before writing
                done = s.scalar(sa.select(sa.func.count()).select_from(Member).where(Member.trial_id == trial_id))
                member = Member(
                    trial_id=trial_id, study_id=study_id, pack_index=done, lr=1e-3, plasticity=1e4, ratio=0.1,
                    gamma=0.7, clip=math.inf, seed=i, config={"i": i}, outcome=Outcome.STABLE,
                )  # fmt: skip
                s.add(member)
                s.flush()
                s.add_all(
                    MemberMetric.from_metrics(member.id, step, {"loss": 1.0 / (step + 1), "max_logit": math.inf})
                    for step in range(STEPS_PER_MEMBER)
                )
        spans.put((start, time.monotonic()))
        db.dispose()
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def test_six_writer_processes_at_once(db):
    writers = 6
    study_id, _, _ = add_pack(db, n_members=0)
    trial_ids = [add_pack(db, n_members=0, number=n + 1)[1] for n in range(writers)]
    spans = multiprocessing.get_context("fork").Queue()
    db.dispose()  # no connection crosses fork()
    run_in_processes(
        _write_members_in_child, [(db.url.render_as_string(hide_password=False), study_id, t, spans) for t in trial_ids]
    )
    starts, ends = zip(*(spans.get(timeout=5) for _ in range(writers)), strict=True)
    assert max(starts) < min(ends), "the writers did not overlap; the test proves nothing"
    with db.read_session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Member)) == writers * MEMBERS_PER_WRITER
        assert s.scalar(sa.select(sa.func.count()).select_from(MemberMetric)) == (
            writers * MEMBERS_PER_WRITER * STEPS_PER_MEMBER
        )
        per_trial = s.execute(sa.select(Member.trial_id, sa.func.count()).group_by(Member.trial_id)).all()
        assert sorted(n for _, n in per_trial) == [MEMBERS_PER_WRITER] * writers


# ---------------------------------------------------------------------------------------------------
# Read-only queries


@pytest.fixture(scope="module", params=BACKENDS)
def ro_url(request, tmp_path_factory, fresh_database) -> Iterator[str]:
    """One populated database per backend, shared by the read-only query tests (which must not change it)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("ro")) as url:
        upgrade(url)
        db = open_db(url)
        _, _, member_ids = add_pack(db)
        with db.session() as s:
            s.get(Member, member_ids[1]).final_loss = math.nan
            s.add_all(MemberMetric(member_id=m, step=k, loss=float(k)) for m in member_ids for k in range(3))
        db.dispose()
        yield url


def snapshot(url: str) -> dict:
    """Everything a write could change: schema, every row, SQLite's header fields."""
    engine = sa.create_engine(parse_url(url))
    with engine.connect() as c:
        inspector = sa.inspect(c)
        state = {"tables": sorted(inspector.get_table_names()), "views": sorted(inspector.get_view_names())}
        for table in state["tables"]:
            state[table] = repr(c.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")).all())
        if url.startswith("sqlite"):
            for pragma in ("user_version", "journal_mode", "schema_version"):
                state[pragma] = c.exec_driver_sql(f"PRAGMA {pragma}").scalar()
            state["files"] = sorted(p.name for p in Path(parse_url(url).database).parent.iterdir())
    engine.dispose()
    return state


def test_readonly_query_returns_columns_and_rows(ro_url):
    columns, rows = run_readonly_query(
        ro_url, "SELECT pack_index, lr, final_loss, clip FROM sw_members ORDER BY pack_index"
    )
    assert columns == ["pack_index", "lr", "final_loss", "clip"]
    assert [r[:2] for r in rows] == [(0, 1e-3), (1, 2e-3), (2, 3e-3)]
    assert rows[0][2] is None and math.isnan(float(rows[1][2])) and rows[0][3] == math.inf
    assert run_readonly_query(ro_url, "  -- a comment\nWITH x AS (SELECT 2 AS v) SELECT v FROM x;") == (["v"], [(2,)])
    assert run_readonly_query(ro_url, "VALUES (1, 'a')") == (["column1", "column2"], [(1, "a")])
    # SQL injection is just text here: the database sees one SELECT of a string.
    assert run_readonly_query(ro_url, "SELECT '; DROP TABLE sw_members; --' AS s") == (
        ["s"],
        [("; DROP TABLE sw_members; --",)],
    )


def _refused_statements(tmp: Path) -> list[str]:
    return [
        "INSERT INTO sw_studies (name, created_at, status, spec) VALUES ('x', '2026-01-01', 'CREATED', '{}')",
        "UPDATE sw_members SET lr = 0",
        "DELETE FROM sw_members",
        "DROP TABLE sw_members",
        "SELECT 1; DROP TABLE sw_members",
        "SELECT 1; DELETE FROM sw_members;",
        f"ATTACH DATABASE '{tmp}/evil.sqlite3' AS evil",
        "PRAGMA query_only = OFF",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA user_version = 7",
        "CREATE TEMP TABLE t AS SELECT * FROM sw_members",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE TABLE t (x INTEGER)",
        "ALTER TABLE sw_members ADD COLUMN x INTEGER",
        "VACUUM",
        f"VACUUM INTO '{tmp}/copy.sqlite3'",
        "REINDEX",
        "ANALYZE",
        "BEGIN",
        "COMMIT",
        "SAVEPOINT s",
        "REPLACE INTO sw_studies (id, name, created_at, status, spec) VALUES (1, 'x', '2026-01-01', 'CREATED', '{}')",
    ]


_POSTGRESQL_ONLY = [
    "SET default_transaction_read_only = off",
    "SET TRANSACTION READ WRITE",
    "COPY (SELECT 1) TO PROGRAM 'touch /tmp/sweeper_pwned'",
    "COPY sw_members TO STDOUT",
    "DO $$ BEGIN DELETE FROM sw_members; END $$",
    "WITH d AS (DELETE FROM sw_members RETURNING id) SELECT * FROM d",
    "SELECT * FROM sw_members FOR UPDATE",
    "SELECT nextval('sw_members_id_seq')",
    "TRUNCATE sw_members",
    "LOCK TABLE sw_members",
]


def test_readonly_query_refuses_anything_but_one_read_and_changes_nothing(ro_url, tmp_path):
    before = snapshot(ro_url)
    statements = _refused_statements(tmp_path)
    if ro_url.startswith("postgresql"):
        statements += _POSTGRESQL_ONLY
    for sql in statements:
        with pytest.raises(QueryRefused, match="only a single read statement"):
            run_readonly_query(ro_url, sql)
    assert snapshot(ro_url) == before
    assert list(tmp_path.iterdir()) == [] and not Path("/tmp/sweeper_pwned").exists()


def test_readonly_query_errors_are_not_refusals(ro_url):
    with pytest.raises(QueryError) as caught:
        run_readonly_query(ro_url, "SELECT * FROM no_such_table")
    assert not isinstance(caught.value, QueryRefused) and "no_such_table" in str(caught.value)
    with pytest.raises(QueryRefused, match="empty"):
        run_readonly_query(ro_url, "  \n ")
    with pytest.raises(QueryError, match="more than 4 rows; add a LIMIT"):
        run_readonly_query(ro_url, "SELECT * FROM sw_member_metrics", max_rows=4)
    assert len(run_readonly_query(ro_url, "SELECT * FROM sw_member_metrics", max_rows=9)[1]) == 9


def test_readonly_query_time_limit(ro_url):
    forever = (
        "SELECT pg_sleep(10)"
        if ro_url.startswith("postgresql")
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    start = time.monotonic()
    with pytest.raises(QueryError, match="ran past its 0.3 s limit"):
        run_readonly_query(ro_url, forever, timeout_s=0.3)
    assert time.monotonic() - start < 5
