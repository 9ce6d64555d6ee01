"""The memory judgement's columns as `sweeper trials`, its filters and `sweeper export` show them, on SQLite
and PostgreSQL: the derived `memory_outcome` (exploded / stable (no memory) / stable (memory) / ...),
`remembers`, `memory_threshold` and `eval_mem_positions`."""

from __future__ import annotations

import csv
import math

import pytest

from sweeper.db import Member, Outcome
from sweeper.db.queries import member_rows, parse_filter
from sweeper.outcomes import MEMORY_OUTCOMES, memory_outcome
from tests.helpers.cli import sweeper
from tests.helpers.db import add_study_with_trial

# (outcome, remembers, eval_mem_acc); threshold and positions of a judged member: 39/240 and 240
MEMBERS = [("stable", True, 0.35), ("stable", False, 0.125), ("stable", None, 0.9), ("exploded", None, math.nan),
           ("stopped_early", None, None), ("failed", None, None), ("running", None, None), ("stable", False, 0.1625)]


@pytest.fixture
def url(db, db_url):
    with db.session() as s:
        study, trial = add_study_with_trial(s, name="window", spec={})
        for i, (outcome, remembers, acc) in enumerate(MEMBERS):
            judged = remembers is not None
            s.add(Member(trial_id=trial.id, study_id=study.id, pack_index=i, lr=1e-2, plasticity=1e3, ratio=0.1,
                         gamma=0.7, clip=math.inf, seed=i, config={}, outcome=Outcome(outcome), eval_mem_acc=acc,
                         baseline=0.125, remembers=remembers, memory_threshold=39 / 240 if judged else None,
                         eval_mem_positions=240 if judged else None))
    return db_url


def test_member_rows_derive_the_memory_outcome(db, url):
    got = [(r["outcome"], r["memory_outcome"], r["remembers"]) for r in member_rows(db, "window")]
    assert got == [(o, memory_outcome(o, r), r) for o, r, _ in MEMBERS]
    assert {r["memory_outcome"] for r in member_rows(db, "window")} <= set(MEMORY_OUTCOMES)


@pytest.mark.parametrize("text, want", [
    ("memory_outcome=stable (memory)", [0]),
    ("memory_outcome = 'stable (no memory)'", [1, 7]),
    ("memory_outcome=stable", [2]),
    ("memory_outcome!=exploded", [0, 1, 2, 4, 5, 6, 7]),
    ("remembers=false", [1, 7]),
    ("remembers=TRUE", [0]),
    ("remembers=null", [2, 3, 4, 5, 6]),
    ("eval_mem_positions=240", [0, 1, 7]),
    ("memory_threshold>0.16", [0, 1, 7]),
])  # fmt: skip
def test_filters_on_the_memory_columns(db, url, text, want):
    assert [r["pack_index"] for r in member_rows(db, "window", where=[parse_filter(text)])] == want


@pytest.mark.parametrize("text, message", [
    ("memory_outcome=remembering", "memory_outcome: unknown value 'remembering'; choose from: running, stable, "
                                   "stable (no memory), stable (memory)"),
    ("memory_outcome>stable", "memory_outcome can only be compared with = or !="),
    ("remembers=maybe", "remembers: expected true, false or null"),
    ("remembers<1", "remembers can only be compared with = or !="),
])  # fmt: skip
def test_bad_memory_filters_are_refused(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(text)


def test_trials_and_export_show_the_three_outcomes(db, url, tmp_path, capsys):
    code, out, _ = sweeper("trials", "window", "--storage", url, capsys=capsys)
    lines = out.splitlines()
    assert code == 0 and "memory_outcome" in lines[0].split() and "memory_threshold" in lines[0].split()
    body = lines[2:-1]
    labels = [memory_outcome(o, r) for o, r, _ in MEMBERS]
    assert len(body) == len(MEMBERS) and all(label in line for label, line in zip(labels, body))
    assert sum("stable (memory)" in line for line in body) == 1
    assert sum("stable (no memory)" in line for line in body) == 2
    code, _, _ = sweeper("export", "window", "--storage", url, "--format", "csv", "-o", str(tmp_path / "m.csv"),
                         capsys=capsys)
    exported = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert code == 0 and [r["memory_outcome"] for r in exported] == labels
    assert [r["remembers"] for r in exported] == ["" if r is None else str(r) for _, r, _ in MEMBERS]
    assert [r["eval_mem_positions"] for r in exported] == ["240" if r is not None else "" for _, r, _ in MEMBERS]
