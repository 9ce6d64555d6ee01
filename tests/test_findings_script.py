"""tools/findings.py: `--list` names every section with its minutes, every section's study files load and its
commands are real ones, and a small section runs its commands for real on a tiny synthetic database,
keeping each command's output and exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import findings

ROOT = Path(__file__).resolve().parent.parent


def test_list_names_every_section_with_its_minutes(capsys):
    assert findings.main(["--list"]) == 0
    out = capsys.readouterr().out
    for s in findings.SECTIONS:
        line = next(row for row in out.splitlines() if row.split()[:1] == [s.key])
        assert f"{s.minutes:.0f}" in line.split() and s.doc in line
    total = next(row for row in out.splitlines() if row.startswith("all "))
    assert float(total.split()[1]) == pytest.approx(sum(s.minutes for s in findings.SECTIONS), abs=0.5)


def test_every_section_reads_shipped_studies_and_runs_known_commands(tmp_path):
    from sweeper.study import load_study

    assert len(findings.BY_KEY) == len(findings.SECTIONS)
    for s in findings.SECTIONS:
        assert s.steps and s.minutes > 0 and s.doc.split(":")[0] in ("findings.md", "benchmarks.md")
        for study in s.studies:
            assert load_study(ROOT / study, budget_bytes=1 << 40).name == Path(study).stem
        for step in s.steps:
            argv = findings.command(step, "sqlite:///x.sqlite3", tmp_path / "x.json")
            assert "{storage}" not in " ".join(argv) and "{json}" not in " ".join(argv)
            if step.argv[0].startswith("tools."):
                assert (ROOT / (step.argv[0].replace(".", "/") + ".py")).is_file()


def test_unknown_section_is_refused_naming_the_sections(capsys):
    assert findings.main(["--only", "fig7_boundary,nope", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "--only" in err and "nope" in err and "fig7_boundary" in err


def test_a_small_section_runs_its_commands_on_a_synthetic_database(tmp_path):
    from sweeper.db import open_db, upgrade
    from tests.helpers.synthetic import make_study

    url = f"sqlite:///{tmp_path / 'tiny.sqlite3'}"
    upgrade(url)
    db = open_db(url)
    make_study(db, "tiny", members=120, steps=1, seed=3)
    db.dispose()
    section = findings.Section("tiny", "findings.md: a test", 0.1, (), (
        findings.Step("status", findings._sw("status", "tiny", "--json"), json=True),
        findings.Step("boundary", findings._sw("boundary", "tiny", "--bootstrap", "10", "--folds", "2", "--no-store")),
        findings.Step("missing", findings._sw("boundary", "no_such_study")),
    ))
    record = findings.run_section(section, tmp_path / "out", url)
    where = tmp_path / "out" / "tiny"
    assert [s["returncode"] for s in record["steps"]][:2] == [0, 0] and record["steps"][2]["returncode"] == 2
    assert not record["ok"] and json.loads((where / "section.json").read_text()) == record
    status = json.loads((where / "00_status.json").read_text())
    assert [s["name"] for s in status] == ["tiny"]
    assert "boundary (P = 0.5" in (where / "01_boundary.txt").read_text()
    assert "no_such_study" in (where / "02_missing.err").read_text()
    assert record["steps"][0]["argv"][:3] == ["sweeper", "status", "tiny"]
