"""`sweeper submit` refuses malformed study files and storage URLs before Ray starts, naming the file
and the field, and leaves the database exactly as it was (every malformed case of tests/study/test_spec.py)."""

from __future__ import annotations

import pytest

from sweeper.cli import main
from tests.helpers.db import database_with_a_study, snapshot
from tests.study.test_spec import BAD, study


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    return database_with_a_study(tmp_path_factory.mktemp("refusals"))


@pytest.mark.parametrize("text, field", [(t, f) for _, t, f in BAD], ids=[c for c, _, _ in BAD])
def test_malformed_study_is_refused_and_nothing_is_written(populated, tmp_path, capsys, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    before = snapshot(populated)
    assert main(["submit", str(path), "--storage", populated, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweeper: error: ") and str(path) in err and field in err, err
    assert snapshot(populated) == before


@pytest.mark.parametrize("url, words", [
    ("mysql://root@127.0.0.1/test", "unsupported database"),
    ("sqlite://", "storage"),
    ("not a url", "storage"),
    ("postgresql://postgres@127.0.0.1:1/none", "storage"),
])
def test_bad_storage_is_refused(tmp_path, capsys, url, words):
    good = tmp_path / "good.toml"
    good.write_text(study())
    assert main(["submit", str(good), "--storage", url, "--no-progress"]) == 2
    assert words in capsys.readouterr().err


def test_missing_study_file(tmp_path, capsys):
    assert main(["submit", str(tmp_path / "nope.toml"), "--storage", f"sqlite:///{tmp_path}/x.sqlite3"]) == 2
    assert "nope.toml" in capsys.readouterr().err
    assert not (tmp_path / "x.sqlite3").exists()
