"""The database commands (sweeper status, trials, query, export) and the read-side queries behind them.

Run in-process through `sweeper.cli.main`, on SQLite and PostgreSQL,
over one populated study whose members cover every outcome and whose metrics hold NaN and inf.
Expected values are computed from the population below, not written in by hand.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sweeper.cli import db as commands_db
from sweeper.db import (
    Member,
    MemberMetric,
    Outcome,
    Study,
    StudyStatus,
    Trial,
    TrialStatus,
    open_db,
    parse_url,
    upgrade,
)
from sweeper.db.models import SCHEMA_REVISION
from sweeper.db.queries import MEMBER_COLUMNS, StudyNotFound, member_rows, parse_filter, study_progress
from tests.helpers.cli import sweeper

BACKENDS = ["sqlite", "postgresql"]

# ---------------------------------------------------------------------------------------------------
# The population: study "sweep", configurations (lr, plasticity) x seeds, packed into trials.

CONFIGS = [(1e-3, 1e3), (1e-3, 1e4), (1e-2, 1e3), (1e-2, 1e4)]
NAN, INF = math.nan, math.inf
# (trial number, config index, seed, outcome, explode_step, stop_step, final_loss, eval_mem_acc)
MEMBERS = [
    (0, 0, 0, "stable", None, None, 0.40, 0.80),
    (0, 0, 1, "stable", None, None, 0.35, 0.90),
    (0, 1, 0, "stable", None, None, 0.50, 0.60),
    (0, 1, 1, "exploded", 2, None, NAN, NAN),
    (1, 2, 0, "exploded", 1, None, INF, None),
    (1, 2, 1, "stopped_early", None, 2, 0.90, 0.30),
    (1, 3, 0, "running", None, None, None, None),
    (1, 3, 1, "running", None, None, None, None),
    (2, 0, 2, "failed", None, None, None, None),
]
TRIALS = {0: TrialStatus.COMPLETE, 1: TrialStatus.RUNNING, 2: TrialStatus.FAILED, 3: TrialStatus.WAITING}
STEPS = 3


def grad_ratio(member: tuple, step: int) -> float | None:
    """Per-step grad_ratio: exploded members go to inf then NaN, others stay small."""
    if member[3] == "exploded":
        return [1.0, INF, NAN][step]
    return 0.1 * (step + 1) if member[3] != "failed" else None


def populate(url: str) -> None:
    upgrade(url)
    db = open_db(url)
    with db.session() as s:
        study = Study(name="sweep", spec={"lr": [1e-3, 1e-2]}, status=StudyStatus.RUNNING, planned_trials=len(TRIALS))
        s.add(study)
        s.add(Study(name="other", spec={}, status=StudyStatus.COMPLETE, planned_trials=1))
        s.flush()
        trials = {n: Trial(study_id=study.id, number=n, status=status) for n, status in TRIALS.items()}
        s.add_all(trials.values())
        s.flush()
        packed: dict[int, int] = {}
        for m in MEMBERS:
            trial, config, seed, outcome, explode_step, stop_step, final_loss, eval_mem_acc = m
            lr, plasticity = CONFIGS[config]
            pack_index = packed[trial] = packed.get(trial, -1) + 1
            member = Member(
                trial_id=trials[trial].id, study_id=study.id, pack_index=pack_index, config_index=config,
                lr=lr, plasticity=plasticity, ratio=0.1, gamma=0.7, clip=INF, seed=seed,
                config={"lr": lr, "clip": INF}, outcome=Outcome(outcome), explode_step=explode_step,
                stop_step=stop_step, steps_done=STEPS, final_loss=final_loss, eval_mem_acc=eval_mem_acc,
                wall_time_s=1.5, device="cpu",
            )  # fmt: skip
            s.add(member)
            s.flush()
            s.add_all(
                MemberMetric(member_id=member.id, step=k, loss=final_loss, grad_ratio=grad_ratio(m, k))
                for k in range(STEPS)
            )
    db.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def sweep_url(request, tmp_path_factory, fresh_database) -> Iterator[str]:
    """The populated database, shared by the tests that only read it."""
    with fresh_database(request.param, tmp_path_factory.mktemp("cli")) as url:
        populate(url)
        yield url


def strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def snapshot(url: str) -> dict:
    """Schema and every row of every table, and on SQLite the files beside the database."""
    engine = sa.create_engine(parse_url(url))
    with engine.connect() as c:
        state = {"tables": sorted(sa.inspect(c).get_table_names())}
        for table in state["tables"]:
            state[table] = repr(c.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")).all())
        if url.startswith("sqlite"):
            state["pragmas"] = [c.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("user_version", "schema_version")]
    engine.dispose()
    if url.startswith("sqlite"):
        state["files"] = sorted(p.name for p in Path(parse_url(url).database).parent.iterdir())
    return state


# ---------------------------------------------------------------------------------------------------
# sweeper status


def test_status_counts_trials_and_members_in_sql(sweep_url, capsys):
    code, out, err = sweeper("status", "--storage", sweep_url, "--json", capsys=capsys)
    assert (code, err) == (0, "")
    by_name = {p["name"]: p for p in strict_json(out)}
    assert set(by_name) == {"sweep", "other"}
    sweep = by_name["sweep"]
    assert sweep["status"] == "RUNNING" and sweep["finished_at"] is None
    assert sweep["trials"] == {
        "planned": len(TRIALS), "total": len(TRIALS),
        **{s.value: sum(v == s for v in TRIALS.values()) for s in TrialStatus},
    }  # fmt: skip
    assert sweep["members"] == {"total": len(MEMBERS), **{o.value: sum(m[3] == o for m in MEMBERS) for o in Outcome}}
    stable = [m[7] for m in MEMBERS if m[3] == "stable" and m[7] is not None and not math.isnan(m[7])]
    assert sweep["best_eval_mem_acc"] == max(stable)
    assert by_name["other"]["members"]["total"] == 0 and by_name["other"]["best_eval_mem_acc"] is None

    code, out, _ = sweeper("status", "sweep", "--storage", sweep_url, capsys=capsys)
    header, rule, row, *_ = out.splitlines()
    assert code == 0 and header.split()[:5] == ["study", "status", "created_at", "planned", "trials"]
    assert row.split()[0] == "sweep" and len(out.splitlines()) == 4  # one study only


def test_unknown_study_names_the_known_ones(sweep_url, capsys):
    for argv in (["status", "nope"], ["trials", "nope"], ["export", "nope", "--format", "csv", "-o", "/tmp/x.csv"]):
        code, out, err = sweeper(*argv, "--storage", sweep_url, capsys=capsys)
        assert code == 2 and out == ""
        assert err.startswith("sweeper: error: study: no study named 'nope'") and "known studies" in err
        assert "other, sweep" in err  # newest first
    db = open_db(sweep_url)
    with pytest.raises(LookupError):
        study_progress(db, "nope")
    with pytest.raises(StudyNotFound):
        member_rows(db, "nope")
    db.dispose()
    assert not Path("/tmp/x.csv").exists()


# ---------------------------------------------------------------------------------------------------
# sweeper trials


def _json_rows(url: str, capsys, *args: str) -> list[dict]:
    code, out, err = sweeper("trials", "sweep", "--storage", url, "--format", "json", *args, capsys=capsys)
    assert (code, err) == (0, "")
    return strict_json(out)


def test_trials_filter_sort_limit(sweep_url, capsys):
    rows = _json_rows(sweep_url, capsys)
    assert len(rows) == len(MEMBERS) and list(rows[0]) == list(MEMBER_COLUMNS)
    assert [(r["trial"], r["config_index"], r["seed"]) for r in rows] == [m[:3] for m in MEMBERS]

    exploded = _json_rows(sweep_url, capsys, "--filter", "outcome=exploded")
    assert [(r["seed"], r["explode_step"]) for r in exploded] == [(m[2], m[4]) for m in MEMBERS if m[3] == "exploded"]

    high_lr = _json_rows(sweep_url, capsys, "--filter", "lr>1e-3", "--filter", "outcome != running")
    expected = [m for m in MEMBERS if CONFIGS[m[1]][0] > 1e-3 and m[3] != "running"]
    assert [(r["trial"], r["seed"]) for r in high_lr] == [(m[0], m[2]) for m in expected]

    # NaN and inf are values: filter on them, sort them (NaN above every number, NULLs last).
    nan_loss = _json_rows(sweep_url, capsys, "--filter", "final_loss=nan")
    assert [r["final_loss"] for r in nan_loss] == ["NaN"]
    assert _json_rows(sweep_url, capsys, "--filter", "final_loss=inf")[0]["final_loss"] == "Infinity"
    assert len(_json_rows(sweep_url, capsys, "--filter", "eval_mem_acc=null")) == sum(m[7] is None for m in MEMBERS)

    best = _json_rows(sweep_url, capsys, "--filter", "eval_mem_acc!=nan", "--sort", "eval_mem_acc", "--desc",
                      "--limit", "2")  # fmt: skip
    finite = sorted((m[7] for m in MEMBERS if m[7] is not None and not math.isnan(m[7])), reverse=True)
    assert [r["eval_mem_acc"] for r in best] == finite[:2]
    by_loss = _json_rows(sweep_url, capsys, "--sort", "final_loss")
    losses = [r["final_loss"] for r in by_loss]
    n_null = sum(m[6] is None for m in MEMBERS)
    assert losses[-n_null:] == [None] * n_null and losses[-n_null - 2 : -n_null] == ["Infinity", "NaN"]


def test_trials_table_and_csv(sweep_url, capsys):
    code, out, _ = sweeper("trials", "sweep", "--storage", sweep_url, capsys=capsys)
    lines = out.splitlines()
    # an ephemeral study: the families' axes (NULL in every row) are left out of the table
    shown = [c for c in commands_db.TRIAL_TABLE_COLUMNS if c not in ("eta", "beta_scale", "lam")]
    assert code == 0 and lines[0].split() == shown and "model_kind" in shown
    assert len(lines) == 2 + len(MEMBERS) + 1 and lines[-1] == f"{len(MEMBERS)} members"
    widths = {len(line) for line in lines[:2]}
    assert len(widths) == 1  # header and rule aligned
    assert any(" nan " in line and "exploded" in line for line in lines)

    code, out, _ = sweeper("trials", "sweep", "--storage", sweep_url, "--format", "csv", capsys=capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == len(MEMBERS) and list(rows[0]) == list(MEMBER_COLUMNS)
    assert {r["final_loss"] for r in rows if r["outcome"] == "exploded"} == {"nan", "inf"}
    assert rows[0]["clip"] == "inf" and rows[-1]["eval_mem_acc"] == ""
    assert [float(r["lr"]) for r in rows] == [CONFIGS[m[1]][0] for m in MEMBERS]


@pytest.mark.parametrize(
    "argv, field, message",
    [
        (["--filter", "learning_rte>1"], "--filter", "unknown filter column 'learning_rte'; choose from: member_id"),
        (["--filter", "lr~1"], "--filter", "expected COLUMN OP VALUE"),
        (["--filter", "lr>abc"], "--filter", "lr: expected a number"),
        (["--filter", "outcome=boom"], "--filter", "unknown value 'boom'; choose from: running, stable"),
        (["--filter", "lr=1; DROP TABLE sw_members"], "--filter", "expected a number"),
        (["--filter", "1=1 OR lr>0"], "--filter", "cannot read filter"),
        (["--sort", "lr; DROP TABLE sw_members"], "--sort", "unknown sort column"),
        (["--limit", "0"], "--limit", "positive integer"),
    ],
)
def test_trials_refuses_bad_filters_and_sorts(sweep_url, capsys, argv, field, message):
    before = snapshot(sweep_url)
    code, out, err = sweeper("trials", "sweep", "--storage", sweep_url, *argv, capsys=capsys)
    assert code == 2 and out == "" and err.startswith(f"sweeper: error: {field}: ") and message in err
    assert snapshot(sweep_url) == before


def test_parse_filter():
    assert parse_filter("lr>1e-3") == ("lr", ">", 1e-3)
    assert parse_filter(" outcome = 'exploded' ") == ("outcome", "=", "exploded")
    assert parse_filter("explode_step<=10") == ("explode_step", "<=", 10)
    assert parse_filter("device!=null") == ("device", "!=", None)
    column, op, value = parse_filter("final_loss>=-inf")
    assert (column, op, value) == ("final_loss", ">=", -math.inf)
    with pytest.raises(ValueError, match="null can only be compared"):
        parse_filter("lr>null")
    with pytest.raises(ValueError, match="expected an integer"):
        parse_filter("seed=1.5")


# ---------------------------------------------------------------------------------------------------
# sweeper query


def test_query_formats(sweep_url, capsys):
    sql = "SELECT pack_index, final_loss, outcome FROM sw_members WHERE study_id = 1 ORDER BY id"
    code, out, err = sweeper("query", sql, "--storage", sweep_url, "--format", "json", capsys=capsys)
    result = strict_json(out)
    assert (code, err) == (0, "") and result["columns"] == ["pack_index", "final_loss", "outcome"]
    assert len(result["rows"]) == len(MEMBERS)
    losses = [row[1] for row in result["rows"]]
    assert losses[3] == "NaN" and losses[4] == "Infinity" and losses[0] == 0.4

    code, out, _ = sweeper("query", sql, "--storage", sweep_url, "--format", "csv", capsys=capsys)
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["pack_index", "final_loss", "outcome"] and len(rows) == 1 + len(MEMBERS)
    assert rows[5][1] == "inf" and rows[4][1].lower() == "nan"  # SQLite hands back NaN as the text 'NaN'

    code, out, _ = sweeper("query", sql, "--storage", sweep_url, capsys=capsys)
    assert code == 0 and out.splitlines()[0].split() == ["pack_index", "final_loss", "outcome"]
    assert out.splitlines()[-1] == f"{len(MEMBERS)} rows"


REFUSED = [
    "INSERT INTO sw_studies (name, created_at, status, spec) VALUES ('x', '2026-01-01', 'CREATED', '{}')",
    "UPDATE sw_members SET lr = 0",
    "DELETE FROM sw_members",
    "DROP TABLE sw_members",
    "SELECT 1; DROP TABLE sw_members",
    "SELECT 1; DELETE FROM sw_member_metrics;",
    "PRAGMA query_only = OFF",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "CREATE TEMP TABLE t AS SELECT * FROM sw_members",
    "CREATE TABLE t (x INTEGER)",
    "ALTER TABLE sw_members RENAME TO members",
    "VACUUM",
]
POSTGRESQL_REFUSED = [
    "WITH d AS (DELETE FROM sw_members RETURNING id) SELECT * FROM d",
    "SET default_transaction_read_only = off",
    "COPY sw_members TO STDOUT",
    "TRUNCATE sw_members",
    "SELECT * FROM sw_members FOR UPDATE",
]


def test_query_refuses_anything_but_one_read_and_changes_nothing(sweep_url, capsys, tmp_path):
    statements = [*REFUSED]
    if sweep_url.startswith("sqlite"):
        statements.append(f"ATTACH DATABASE '{tmp_path}/evil.sqlite3' AS evil")
    else:
        statements += POSTGRESQL_REFUSED
    before = snapshot(sweep_url)
    for sql in statements:
        code, out, err = sweeper("query", sql, "--storage", sweep_url, capsys=capsys)
        assert (code, out) == (2, ""), sql
        assert err.startswith("sweeper: error: query: only a single read statement"), (sql, err)
    assert snapshot(sweep_url) == before
    assert list(tmp_path.iterdir()) == []

    code, _, err = sweeper("query", "SELECT * FROM no_such_table", "--storage", sweep_url, capsys=capsys)
    assert code == 2 and "no_such_table" in err and "only a single read" not in err


# ---------------------------------------------------------------------------------------------------
# Example queries (listed in docs/guide.md): each runs through `sweeper query` on both backends.

EXAMPLES = {
    "explosion_rate_per_cell": """
        SELECT m.lr, m.plasticity, count(*) AS members,
               sum(CASE WHEN m.outcome = 'exploded' THEN 1 ELSE 0 END) AS exploded,
               avg(CASE WHEN m.outcome = 'exploded' THEN 1.0 ELSE 0.0 END) AS explosion_rate
        FROM sw_members m JOIN sw_studies s ON s.id = m.study_id
        WHERE s.name = 'sweep' AND m.outcome NOT IN ('running', 'failed')
        GROUP BY m.lr, m.plasticity
        ORDER BY m.lr, m.plasticity""",
    "exploded_members": """
        SELECT t.number AS trial, m.pack_index, m.lr, m.plasticity, m.seed, m.explode_step
        FROM sw_members m
        JOIN sw_trials t ON t.id = m.trial_id
        JOIN sw_studies s ON s.id = m.study_id
        WHERE s.name = 'sweep' AND m.outcome = 'exploded'
        ORDER BY m.explode_step, t.number, m.pack_index""",
    "mean_eval_mem_acc_per_config": """
        SELECT m.config_index, min(m.lr) AS lr, min(m.plasticity) AS plasticity,
               count(*) AS seeds, avg(m.eval_mem_acc) AS mean_eval_mem_acc
        FROM sw_members m JOIN sw_studies s ON s.id = m.study_id
        WHERE s.name = 'sweep' AND m.outcome = 'stable' AND m.eval_mem_acc <> 'NaN'
        GROUP BY m.config_index
        ORDER BY m.config_index""",
    "grad_ratio_trace": """
        SELECT mm.step, mm.grad_ratio, mm.loss
        FROM sw_member_metrics mm
        JOIN sw_members m ON m.id = mm.member_id
        JOIN sw_trials t ON t.id = m.trial_id
        JOIN sw_studies s ON s.id = m.study_id
        WHERE s.name = 'sweep' AND t.number = 0 AND m.pack_index = 3
        ORDER BY mm.step""",
    "first_warning_step_before_explosion": """
        SELECT m.id AS member_id, m.explode_step, min(mm.step) AS first_step_grad_ratio_above_10
        FROM sw_members m
        JOIN sw_member_metrics mm ON mm.member_id = m.id
        JOIN sw_studies s ON s.id = m.study_id
        WHERE s.name = 'sweep' AND m.outcome = 'exploded' AND mm.grad_ratio > 10
        GROUP BY m.id, m.explode_step
        ORDER BY m.id""",
}


def _expected(name: str) -> list[list]:
    def finished(m):
        return m[3] not in ("running", "failed")

    if name == "explosion_rate_per_cell":
        cells = sorted({CONFIGS[m[1]] for m in MEMBERS if finished(m)})
        out = []
        for cell in cells:
            ms = [m for m in MEMBERS if CONFIGS[m[1]] == cell and finished(m)]
            n_exploded = sum(m[3] == "exploded" for m in ms)
            out.append([*cell, len(ms), n_exploded, n_exploded / len(ms)])
        return out
    if name == "exploded_members":
        exploded = [(m[4], m[0], i, m) for i, m in enumerate(MEMBERS) if m[3] == "exploded"]
        pack = {i: sum(1 for k in MEMBERS[:i] if k[0] == m[0]) for i, m in enumerate(MEMBERS)}
        return [[m[0], pack[i], *CONFIGS[m[1]], m[2], m[4]] for _, _, i, m in sorted(exploded)]
    if name == "mean_eval_mem_acc_per_config":
        out = []
        for config, cell in enumerate(CONFIGS):
            accs = [m[7] for m in MEMBERS if m[1] == config and m[3] == "stable" and not math.isnan(m[7])]
            if accs:
                out.append([config, *cell, len(accs), sum(accs) / len(accs)])
        return out
    if name == "grad_ratio_trace":
        member = [m for m in MEMBERS if m[0] == 0][3]
        return [[k, grad_ratio(member, k), member[6]] for k in range(STEPS)]
    if name == "first_warning_step_before_explosion":
        ids = {i + 1: m for i, m in enumerate(MEMBERS)}  # member ids in insertion order
        return [
            [i, m[4], min(k for k in range(STEPS) if not grad_ratio(m, k) <= 10)]
            for i, m in ids.items()
            if m[3] == "exploded"
        ]
    raise KeyError(name)


def _same(a, b) -> bool:
    if isinstance(b, float) and math.isnan(b):
        return a == "NaN"  # strict JSON
    if isinstance(b, float) and math.isinf(b):
        return a == ("Infinity" if b > 0 else "-Infinity")
    if isinstance(b, float):
        return a is not None and math.isclose(float(a), b, rel_tol=1e-12)
    return a == b


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_queries(sweep_url, capsys, name):
    code, out, err = sweeper("query", EXAMPLES[name], "--storage", sweep_url, "--format", "json", capsys=capsys)
    assert (code, err) == (0, "")
    rows = strict_json(out)["rows"]
    expected = _expected(name)
    assert len(rows) == len(expected) and expected, (rows, expected)
    for row, want in zip(rows, expected, strict=True):
        assert all(_same(a, b) for a, b in zip(row, want, strict=True)), (row, want)


# ---------------------------------------------------------------------------------------------------
# sweeper export


def test_export_csv_and_parquet(sweep_url, capsys, tmp_path):
    n_metrics = len(MEMBERS) * STEPS
    code, out, err = sweeper("export", "sweep", "--storage", sweep_url, "--format", "csv",
                             "-o", str(tmp_path / "sweep.csv"), capsys=capsys)  # fmt: skip
    assert (code, err) == (0, "") and f"wrote {len(MEMBERS)} members" in out
    members = list(csv.DictReader(open(tmp_path / "sweep.csv", newline="")))
    metrics = list(csv.DictReader(open(tmp_path / "sweep_metrics.csv", newline="")))
    assert len(members) == len(MEMBERS) and len(metrics) == n_metrics
    assert {m["final_loss"] for m in members if m["outcome"] == "exploded"} == {"nan", "inf"}
    assert [m["grad_ratio"] for m in metrics if m["member_id"] == "4"] == ["1.0", "inf", "nan"]

    code, out, err = sweeper("export", "sweep", "--storage", sweep_url, "--format", "parquet",
                             "-o", str(tmp_path / "sweep.parquet"), capsys=capsys)  # fmt: skip
    assert (code, err) == (0, "")
    import pyarrow.parquet as pq

    members = pq.read_table(tmp_path / "sweep.parquet")
    metrics = pq.read_table(tmp_path / "sweep_metrics.parquet")
    assert members.num_rows == len(MEMBERS) and metrics.num_rows == n_metrics
    assert members.column_names == list(MEMBER_COLUMNS)
    assert str(members.schema.field("lr").type) == "double" and str(members.schema.field("seed").type) == "int64"
    losses = members.column("final_loss").to_pylist()
    assert math.isnan(losses[3]) and losses[4] == INF and losses[-1] is None
    trace = [r["grad_ratio"] for r in metrics.to_pylist() if r["member_id"] == 4]
    assert trace[:2] == [1.0, INF] and math.isnan(trace[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sweep.csv", "sweep.parquet", "sweep_metrics.csv", "sweep_metrics.parquet"
    ]  # fmt: skip

    code, _, err = sweeper("export", "sweep", "--storage", sweep_url, "--format", "csv",
                           "-o", str(tmp_path / "no" / "x.csv"), capsys=capsys)  # fmt: skip
    assert code == 2 and err.startswith("sweeper: error: --output: ") and "does not exist" in err


# ---------------------------------------------------------------------------------------------------
# Databases the commands cannot use


def test_missing_or_unmigrated_database_is_an_error_and_nothing_is_created(db_url, capsys, tmp_path, monkeypatch):
    commands = [["status"], ["trials", "sweep"], ["query", "SELECT 1"], ["export", "sweep", "--format", "csv",
                "-o", str(tmp_path / "out.csv")]]  # fmt: skip
    for argv in commands:
        code, out, err = sweeper(*argv, "--storage", db_url, capsys=capsys)
        assert (code, out) == (2, "") and err.startswith("sweeper: error: --storage: ")
        assert ("no database at" if db_url.startswith("sqlite") else "no sweeper schema") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no SQLite file, no export

    upgrade(db_url, "0002")
    for argv in commands:
        code, out, err = sweeper(*argv, "--storage", db_url, capsys=capsys)
        assert (code, out) == (2, "") and "revision 0002" in err and f"needs revision {SCHEMA_REVISION}" in err
    from sweeper.db.migrate import current_revision

    assert current_revision(db_url) == "0002"  # not upgraded behind the user's back

    code, _, err = sweeper("status", "--storage", "mysql://x@y/z", capsys=capsys)
    assert code == 2 and "unsupported database 'mysql'" in err


def test_storage_defaults_to_sweeper_db(sweep_url, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SWEEPER_DB", sweep_url)
    code, out, _ = sweeper("status", "--json", capsys=capsys)
    assert code == 0 and {p["name"] for p in strict_json(out)} == {"sweep", "other"}
    monkeypatch.delenv("SWEEPER_DB")
    monkeypatch.chdir(tmp_path)
    code, _, err = sweeper("status", capsys=capsys)
    assert code == 2 and "sweeper.sqlite3" in err and list(tmp_path.iterdir()) == []
