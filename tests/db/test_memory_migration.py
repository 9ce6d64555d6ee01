"""Revision 0006 (the memory judgement) on a database that revision 0005 made, SQLite and PostgreSQL:
stored stable members are judged from their eval_mem_acc and baseline when their study's stored spec
tells the evaluation's size, and left NULL when it cannot; the migrated schema is the models'."""

from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction

import pytest
import sqlalchemy as sa

from sweeper.db import Member, StorageError, open_db, parse_url, upgrade
from sweeper.db.types import Float64, StrictJSON, UTCDateTime
from sweeper.study import parse_study
from sweeper.study.memory import study_memory_positions
from tests.db.test_db import upgrade_to_head_and_compare_with_a_new_database
from tests.sweep.test_memory import binomial_quantile

STUDY = """
name = "{name}"
[task]
{task}
[model]
depth = 1
width = 8
[train]
updater = "dfa"
batch_size = 32
batches = 10
[search]
kind = "grid"
[[objectives]]
metric = "explosion_rate"
[space.lr]
values = [1e-2]
[execution]
seeds = 2
eval_batches = {eval_batches}
{extra}
"""
KEY_RECALL_9 = 'name = "key_recall"\nn_values = 9'  # no-memory baseline 1/9; one memory position a sequence


def spec(name: str, task: str = KEY_RECALL_9, eval_batches: int = 10, extra: str = ""):
    return parse_study(STUDY.format(name=name, task=task, eval_batches=eval_batches, extra=extra))


def test_upgrade_from_revision_5_judges_stored_stable_members(db_url, fresh_database, tmp_path):
    assert upgrade(db_url, "0005") == "0005"
    with pytest.raises(StorageError, match="has schema revision 0005; this code needs revision 0006.*upgrade"):
        open_db(db_url)
    n = 10 * 32  # eval batches x batch size x one memory position
    k = binomial_quantile(Fraction(1, 9), n, Fraction(95, 100))
    k99 = binomial_quantile(Fraction(1, 9), n, Fraction(99, 100))
    repeated = spec("repeated", task='name = "repeated"', eval_batches=2)
    specs = {
        1: spec("plain").to_dict(),
        2: spec("strict", extra="memory_level = 0.99").to_dict(),
        3: spec("no_eval", eval_batches=0).to_dict(),
        4: {"a": 1},  # not a study's spec: the evaluation's size is unknown
        5: repeated.to_dict(),
    }
    # (study, seed, outcome, eval_mem_acc, baseline) -> (remembers, threshold, positions) after the upgrade
    cases = [
        (1, 0, "stable", (k + 1) / n, 1 / 9, (True, k / n, n)),
        (1, 1, "stable", k / n, 1 / 9, (False, k / n, n)),
        (1, 2, "exploded", math.nan, 1 / 9, (None, None, None)),
        (1, 3, "stable", None, 1 / 9, (None, None, None)),
        (1, 4, "stopped_early", 0.9, 1 / 9, (None, None, None)),
        (1, 5, "stable", math.nan, 1 / 9, (None, None, None)),
        (1, 6, "failed", None, None, (None, None, None)),
        (2, 0, "stable", (k + 1) / n, 1 / 9, (k + 1 > k99, k99 / n, n)),
        (2, 1, "stable", (k99 + 1) / n, 1 / 9, (True, k99 / n, n)),
        (3, 0, "stable", 1.0, 1 / 9, (None, None, None)),
        (4, 0, "stable", 1.0, 1 / 9, (None, None, None)),
    ]
    counts = study_memory_positions(repeated)
    for seed in (0, 1):  # repeated sequences: each seed's evaluation scores its own number of positions
        kr = binomial_quantile(Fraction(3681, 10000), counts[seed], Fraction(95, 100))
        cases.append((5, seed, "stable", 1.0, 0.3681, (True, kr / counts[seed], counts[seed])))
    assert k99 > k and counts[0] != counts[1]

    m = sa.MetaData()
    studies = sa.Table("sw_studies", m, sa.Column("id"), sa.Column("name"), sa.Column("status"),
                       sa.Column("created_at", UTCDateTime()), sa.Column("spec", StrictJSON()))
    trials = sa.Table("sw_trials", m, *(sa.Column(c) for c in ("id", "study_id", "number", "status", "attempts")))
    members = sa.Table(
        "sw_members", m,
        *(sa.Column(c) for c in ("id", "trial_id", "study_id", "pack_index", "seed", "outcome", "steps_done")),
        *(sa.Column(c, Float64()) for c in ("lr", "plasticity", "ratio", "gamma", "clip", "eval_mem_acc", "baseline")),
        sa.Column("config", StrictJSON()),
    )  # fmt: skip
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    engine = sa.create_engine(parse_url(db_url))
    with engine.begin() as c:
        for i, data in specs.items():
            c.execute(studies.insert(), {"id": i, "name": f"s{i}", "status": "COMPLETE", "created_at": now, "spec": data})
            c.execute(trials.insert(), {"id": i, "study_id": i, "number": 0, "status": "COMPLETE", "attempts": 1})
        for j, (study, seed, outcome, acc, baseline, _) in enumerate(cases, start=1):
            c.execute(members.insert(), dict(
                id=j, trial_id=study, study_id=study, pack_index=j, seed=seed, outcome=outcome, steps_done=10,
                lr=1e-2, plasticity=1e3, ratio=0.1, gamma=0.7, clip=math.inf, eval_mem_acc=acc, baseline=baseline,
                config={}))  # fmt: skip
    engine.dispose()

    upgrade_to_head_and_compare_with_a_new_database(db_url, fresh_database, tmp_path)

    db = open_db(db_url)
    with db.read_session() as s:
        found = s.scalars(sa.select(Member).order_by(Member.id)).all()
    db.dispose()
    assert len(found) == len(cases)
    for member, case in zip(found, cases):
        remembers, threshold, positions = case[-1]
        assert member.remembers is remembers, case
        assert member.eval_mem_positions == positions, case
        assert (member.memory_threshold is None) == (threshold is None), case
        if threshold is not None:
            assert member.memory_threshold == pytest.approx(threshold, abs=1e-12), case
