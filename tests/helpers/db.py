"""Databases for the refusal tests: one that already holds a study, and a snapshot of every row in it,
so a test can check that a refused command changed nothing."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from sweeper.db import Study, open_db, upgrade


def database_with_a_study(directory: Path) -> str:
    """The URL of a new SQLite database at the current schema holding one study, 'existing'."""
    url = f"sqlite:///{directory / 'db.sqlite3'}"
    upgrade(url)
    db = open_db(url)
    with db.session() as s:
        s.add(Study(name="existing", spec={"k": 1}, source="x"))
    db.dispose()
    return url


def snapshot(url: str) -> list:
    """Every table's rows, in table-name order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            tables = sorted(sa.inspect(c).get_table_names())
            return [(t, [tuple(r) for r in c.execute(sa.text(f'SELECT * FROM "{t}"'))]) for t in tables]
    finally:
        engine.dispose()
