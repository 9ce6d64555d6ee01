"""Databases for tests: a new one, one that already holds a study, a snapshot of every row in it (so a
test can check that a refused command changed nothing), a study with one finished trial to put members
in, and the dashboard's read-only handle for a fixture."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from sweeper.db import Study, Trial, TrialStatus, open_db, upgrade


@contextmanager
def new_sqlite(directory: Path, name: str = "db.sqlite3"):
    """A new SQLite database at the current schema, `directory / name`: yields (url, db), db disposed after."""
    url = f"sqlite:///{directory / name}"
    upgrade(url)
    db = open_db(url)
    try:
        yield url, db
    finally:
        db.dispose()


def database_with_a_study(directory: Path) -> str:
    """The URL of a new SQLite database at the current schema holding one study, 'existing'."""
    with new_sqlite(directory) as (url, db), db.session() as s:
        s.add(Study(name="existing", spec={"k": 1}, source="x"))
    return url


def dashboard_readonly(url: str):
    """The dashboard's read-only handle on `url`, for a fixture (`yield from dashboard_readonly(url)`):
    disposed when the fixture ends."""
    from sweeper.dashboard.data import open_readonly

    db = open_readonly(url)
    yield db
    db.dispose()


def add_study_with_trial(s, *, trial_columns: dict | None = None, **study) -> tuple[Study, Trial]:
    """A study (`study`: its columns) and its one COMPLETE trial, number 0 (`trial_columns`: more of its
    columns), added and flushed in session `s`."""
    row = Study(**study)
    s.add(row)
    s.flush()
    trial = Trial(study_id=row.id, number=0, status=TrialStatus.COMPLETE, **(trial_columns or {}))
    s.add(trial)
    s.flush()
    return row, trial


def snapshot(url: str) -> list:
    """Every table's rows, in table-name order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            tables = sorted(sa.inspect(c).get_table_names())
            return [(t, [tuple(r) for r in c.execute(sa.text(f'SELECT * FROM "{t}"'))]) for t in tables]
    finally:
        engine.dispose()
