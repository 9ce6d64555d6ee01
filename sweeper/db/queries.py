"""Read-side queries over the trial database: study progress, member tables, exports.

Each function takes an open `Database` and reads in one read-only session; counting and filtering
happen in SQL, so a study of a million metric rows costs the database, not Python. What a value is
(NaN included) follows `sweeper.db.types`: a NaN comes back as float('nan') on both backends.

    study_progress(db)                                   # one dict per study
    member_rows(db, "sweep", where=[parse_filter("lr>1e-3")], sort="eval_mem_acc", descending=True)
    export_study(db, "sweep", "out/sweep.parquet", "parquet")

Filters are a small grammar, `COLUMN OP VALUE` with OP one of = != < <= > >=, over a fixed list of
columns (`MEMBER_COLUMNS`); values are converted to the column's type before they reach SQL (as bound
parameters, never as SQL text), so a filter cannot inject anything.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from sweeper.db.engine import Database, safe_url
from sweeper.db.models import FAMILY_ONLY_METRIC_NAMES, METRIC_NAMES, Member, MemberMetric, Outcome, Study, Trial, TrialStatus
from sweeper.errors import SweeperError
from sweeper.outcomes import MEMORY_OUTCOMES, STABLE_MEMORY, STABLE_NO_MEMORY

OPS = ("=", "!=", "<", "<=", ">", ">=")
_MAX_KNOWN = 10


class StudyNotFound(SweeperError, LookupError):
    """No study of that name in the database. The message lists the studies there are (up to 10)."""

    field_default = "study"


# ---------------------------------------------------------------------------------------------------
# Studies


def _study_id(session: sa.orm.Session, db: Database, name: str) -> int:
    study_id = session.scalar(sa.select(Study.id).where(Study.name == name))
    if study_id is not None:
        return study_id
    known = session.scalars(sa.select(Study.name).order_by(Study.created_at.desc()).limit(_MAX_KNOWN + 1)).all()
    where = safe_url(db.url)
    if not known:
        raise StudyNotFound(f"no study named {name!r} in {where}: the database has no studies")
    more = ", ..." if len(known) > _MAX_KNOWN else ""
    raise StudyNotFound(
        f"no study named {name!r} in {where}; known studies (newest first): {', '.join(known[:_MAX_KNOWN])}{more}"
    )


def study_id(session: sa.orm.Session, db: Database, name: str) -> int:
    """The id of the study named `name`; StudyNotFound, listing the studies there are, when there is none."""
    return _study_id(session, db, name)


def _not_nan(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # Float64 binds NaN as 'NaN' text on SQLite and as a NaN double on PostgreSQL (where NaN = NaN),
    # so this drops NaN rows on both; NULLs drop out too.
    return column != math.nan


def study_progress(db: Database, name: str | None = None) -> list[dict[str, Any]]:
    """Per study (newest first, or just `name`): status, times, trials by status, members by outcome.

    Each dict: name, status, created_at, finished_at, heartbeat_at, optuna_study_name,
    trials = {"planned", "total", "WAITING", ..., "PRUNED"}, members = {"total", "running", "stable",
    "exploded", "stopped_early", "failed"}, memory_outcomes = members by `memory_outcome` (every value
    of `sweeper.outcomes.MEMORY_OUTCOMES`: the stable members split into "stable (memory)", "stable (no
    memory)" and "stable", those without a judgement), best_eval_mem_acc (the highest non-NaN
    eval_mem_acc of a stable member, or None). Raises StudyNotFound for an unknown `name`.
    """
    with db.read_session() as s:
        studies = sa.select(Study).order_by(Study.created_at.desc(), Study.id.desc())
        if name is not None:
            studies = studies.where(Study.id == _study_id(s, db, name))
        rows = s.scalars(studies).all()
        ids = [study.id for study in rows]
        trial_counts = s.execute(
            sa.select(Trial.study_id, Trial.status, sa.func.count())
            .where(Trial.study_id.in_(ids))
            .group_by(Trial.study_id, Trial.status)
        ).all()
        member_counts = s.execute(
            sa.select(Member.study_id, Member.outcome, sa.func.count())
            .where(Member.study_id.in_(ids))
            .group_by(Member.study_id, Member.outcome)
        ).all()
        label = MEMORY_OUTCOME.label("memory_outcome")
        memory_counts = s.execute(
            sa.select(Member.study_id, label, sa.func.count()).where(Member.study_id.in_(ids))
            .group_by(Member.study_id, label)
        ).all()
        best = dict(
            s.execute(
                sa.select(Member.study_id, sa.func.max(Member.eval_mem_acc))
                .where(Member.study_id.in_(ids), Member.outcome == Outcome.STABLE, _not_nan(Member.eval_mem_acc))
                .group_by(Member.study_id)
            ).all()
        )

    progress = {}
    for study in rows:
        progress[study.id] = {
            "name": study.name,
            "status": study.status.value,
            "created_at": study.created_at,
            "finished_at": study.finished_at,
            "heartbeat_at": study.heartbeat_at,
            "optuna_study_name": study.optuna_study_name,
            "trials": {"planned": study.planned_trials, "total": 0, **{t.value: 0 for t in TrialStatus}},
            "members": {"total": 0, **{o.value: 0 for o in Outcome}},
            "memory_outcomes": dict.fromkeys(MEMORY_OUTCOMES, 0),
            "best_eval_mem_acc": best.get(study.id),
        }
    for key, counts in (("trials", trial_counts), ("members", member_counts)):
        for study_id, value, n in counts:
            progress[study_id][key][value.value] = n
            progress[study_id][key]["total"] += n
    for study_id, value, n in memory_counts:
        progress[study_id]["memory_outcomes"][value] = n
    return list(progress.values())


# ---------------------------------------------------------------------------------------------------
# Members


MEMORY_OUTCOME = sa.case(
    (sa.and_(Member.outcome == Outcome.STABLE, Member.remembers.is_(True)), sa.literal(STABLE_MEMORY)),
    (sa.and_(Member.outcome == Outcome.STABLE, Member.remembers.is_(False)), sa.literal(STABLE_NO_MEMORY)),
    else_=sa.cast(Member.outcome, sa.String(16)),
)
"""`sweeper.outcomes.memory_outcome` in SQL: the outcome the user sees (exploded / stable (no memory) /
stable (memory) / ...), derived from the stored outcome and memory judgement."""

MEMBER_COLUMNS: dict[str, sa.ColumnElement] = {
    "member_id": Member.id,
    "trial": Trial.number,
    "pack_index": Member.pack_index,
    "config_index": Member.config_index,
    "model_kind": Member.model_kind,
    "lr": Member.lr,
    "plasticity": Member.plasticity,
    "ratio": Member.ratio,
    "gamma": Member.gamma,
    "clip": Member.clip,
    "eta": Member.eta,
    "beta_scale": Member.beta_scale,
    "lam": Member.lam,
    "seed": Member.seed,
    "outcome": Member.outcome,
    "memory_outcome": MEMORY_OUTCOME,
    "explode_onset": Member.explode_onset,
    "explode_step": Member.explode_step,
    "stop_step": Member.stop_step,
    "steps_done": Member.steps_done,
    "final_step": Member.final_step,
    "final_loss": Member.final_loss,
    "final_acc": Member.final_acc,
    "mem_acc": Member.mem_acc,
    "baseline": Member.baseline,
    "eval_loss": Member.eval_loss,
    "eval_acc": Member.eval_acc,
    "eval_mem_acc": Member.eval_mem_acc,
    "eval_mem_acc_frozen": Member.eval_mem_acc_frozen,
    "eval_mem_positions": Member.eval_mem_positions,
    "memory_threshold": Member.memory_threshold,
    "remembers": Member.remembers,
    "wall_time_s": Member.wall_time_s,
    "device": Member.device,
    "optuna_trial_number": Member.optuna_trial_number,
}
"""The columns of `member_rows`, in order; also the columns a filter or a sort may name."""

_FLOAT_COLUMNS = {
    "lr", "plasticity", "ratio", "gamma", "clip", "eta", "beta_scale", "lam", "final_loss", "final_acc", "mem_acc",
    "baseline", "eval_loss", "eval_acc", "eval_mem_acc", "eval_mem_acc_frozen", "memory_threshold", "wall_time_s",
}  # fmt: skip
_TEXT_COLUMNS = {"outcome", "memory_outcome", "device", "model_kind"}
_BOOL_COLUMNS = {"remembers"}
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$", re.DOTALL)
_NULL = {"null", "none"}

Filter = tuple[str, str, Any]


def _check_column(column: str, what: str) -> None:
    if column not in MEMBER_COLUMNS:
        raise ValueError(f"unknown {what} column {column!r}; choose from: {', '.join(MEMBER_COLUMNS)}")


def _typed_value(column: str, op: str, text: str) -> Any:
    """The filter value `text` converted to `column`'s type (None for null)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if text.lower() in _NULL:
        if op not in ("=", "!="):
            raise ValueError(f"{column}{op}{text}: null can only be compared with = or !=")
        return None
    if column in _FLOAT_COLUMNS:
        try:
            return float(text)  # also nan, inf, -inf
        except ValueError:
            raise ValueError(f"{column}: expected a number, got {text!r}") from None
    if column in _BOOL_COLUMNS:
        if op not in ("=", "!="):
            raise ValueError(f"{column} can only be compared with = or !=, not {op}")
        if text.lower() not in _BOOLS:
            raise ValueError(f"{column}: expected true, false or null, got {text!r}")
        return _BOOLS[text.lower()]
    if column in _TEXT_COLUMNS:
        allowed = {"outcome": [o.value for o in Outcome], "memory_outcome": list(MEMORY_OUTCOMES)}.get(column)
        if allowed is not None:
            if op not in ("=", "!="):
                raise ValueError(f"{column} can only be compared with = or !=, not {op}")
            if text not in allowed:
                raise ValueError(f"{column}: unknown value {text!r}; choose from: {', '.join(allowed)}")
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{column}: expected an integer, got {text!r}") from None


def parse_filter(text: str) -> Filter:
    """`"lr>1e-3"` -> ("lr", ">", 0.001). Values: numbers (nan, inf too), outcome and memory_outcome names
    (`memory_outcome=stable (memory)`), true or false (remembers), null.

    Raises ValueError, naming what is allowed, for an unknown column, operator or value.
    """
    match = _FILTER.match(text) if isinstance(text, str) else None
    if match is None or not match.group(3):
        raise ValueError(f"cannot read filter {text!r}; expected COLUMN OP VALUE with OP one of {' '.join(OPS)}")
    column, op, value = match.groups()
    _check_column(column, "filter")
    return column, op, _typed_value(column, op, value)


def _condition(column: str, op: str, value: Any) -> sa.ColumnElement[bool]:
    _check_column(column, "filter")
    if op not in OPS:
        raise ValueError(f"unknown operator {op!r}; choose from: {' '.join(OPS)}")
    if isinstance(value, str):
        value = _typed_value(column, op, value)
    expr = MEMBER_COLUMNS[column]
    if value is None:
        return expr.is_(None) if op == "=" else expr.is_not(None)
    if column == "outcome":
        value = Outcome(value)
    return {
        "=": expr.__eq__, "!=": expr.__ne__, "<": expr.__lt__, "<=": expr.__le__, ">": expr.__gt__, ">=": expr.__ge__,
    }[op](value)  # fmt: skip


def _conditions(where: Mapping[str, Any] | Iterable[Filter] | None) -> list[sa.ColumnElement[bool]]:
    if where is None:
        return []
    if isinstance(where, Mapping):
        return [_condition(column, "=", value) for column, value in where.items()]
    return [_condition(*f) for f in where]


def _member_select(study_id: int) -> sa.Select:
    return (
        sa.select(*(column.label(name) for name, column in MEMBER_COLUMNS.items()))
        .join(Trial, Member.trial_id == Trial.id)
        .where(Member.study_id == study_id)
    )


def _row_dict(row: sa.Row) -> dict[str, Any]:
    out = dict(row._mapping)
    out["outcome"] = out["outcome"].value
    return out


def member_rows(
    db: Database,
    study: str,
    *,
    where: Mapping[str, Any] | Iterable[Filter] | None = None,
    sort: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One dict per member of `study` (keys: `MEMBER_COLUMNS`), by trial and pack index unless `sort`.

    `where` is {column: value} (all equal) or (column, op, value) filters, e.g. from `parse_filter`;
    they all must hold. `sort` names a column (NULLs last either way). Raises StudyNotFound for an
    unknown study and ValueError for an unknown column, operator or a bad limit.
    """
    conditions = _conditions(where)
    order = [MEMBER_COLUMNS["trial"], MEMBER_COLUMNS["pack_index"]]
    if sort is not None:
        _check_column(sort, "sort")
        key = MEMBER_COLUMNS[sort]
        order.insert(0, (key.desc() if descending else key.asc()).nulls_last())
    elif descending:
        order = [c.desc() for c in order]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    with db.read_session() as s:
        query = _member_select(_study_id(s, db, study)).where(*conditions).order_by(*order).limit(limit)
        return [_row_dict(row) for row in s.execute(query)]


# ---------------------------------------------------------------------------------------------------
# Export


_ALL_METRICS = (*METRIC_NAMES, *FAMILY_ONLY_METRIC_NAMES)
METRIC_COLUMNS = ("member_id", "trial", "pack_index", "step", *_ALL_METRICS)
"""The columns of the per-step metrics file: one row per (member, step), one column per metric."""
_EXTENSIONS = {"csv": "csv", "parquet": "parquet"}
_BATCH = 10_000


def _metric_batches(db: Database, study_id: int) -> Iterator[list[tuple]]:
    query = (
        sa.select(
            MemberMetric.member_id, Trial.number, Member.pack_index, MemberMetric.step,
            *(getattr(MemberMetric, name) for name in _ALL_METRICS),
        )
        .join(Member, MemberMetric.member_id == Member.id)
        .join(Trial, Member.trial_id == Trial.id)
        .where(Member.study_id == study_id)
        .order_by(Trial.number, Member.pack_index, MemberMetric.step)
        .execution_options(yield_per=_BATCH)
    )  # fmt: skip
    with db.read_session() as s:
        for partition in s.execute(query).partitions():
            yield [tuple(row) for row in partition]


def _arrow_type(name: str):
    import pyarrow as pa

    if name in _FLOAT_COLUMNS or name in _ALL_METRICS:
        return pa.float64()
    if name in _BOOL_COLUMNS:
        return pa.bool_()
    if name in _TEXT_COLUMNS:
        return pa.string()
    return pa.int64()


class _Writer:
    """Rows to a CSV or Parquet file, batch by batch, written to a temporary name and renamed at the end."""

    def __init__(self, path: Path, fmt: str, columns: tuple[str, ...] | list[str]):
        self.path, self.fmt, self.columns = path, fmt, list(columns)
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.rows = 0
        if fmt == "csv":
            self.file = open(self.tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self.csv = csv.writer(self.file)
            self.csv.writerow(self.columns)  # floats print as nan, inf, -inf
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.schema = pa.schema([(c, _arrow_type(c)) for c in self.columns])
            self.parquet = pq.ParquetWriter(self.tmp, self.schema)

    def write(self, rows: list[tuple]) -> None:
        self.rows += len(rows)
        if self.fmt == "csv":
            self.csv.writerows(rows)
            return
        import pyarrow as pa

        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in self.columns]
        self.parquet.write_table(pa.Table.from_arrays([list(c) for c in columns], schema=self.schema))

    def close(self, ok: bool) -> None:
        (self.file if self.fmt == "csv" else self.parquet).close()
        try:
            if ok:
                os.replace(self.tmp, self.path)  # fails e.g. when PATH is a directory
        finally:
            self.tmp.unlink(missing_ok=True)


def export_study(
    db: Database, study: str, path: str | os.PathLike, fmt: Literal["csv", "parquet"] = "csv"
) -> dict[str, Any]:
    """Write `study`'s member rows to `path` and its per-step metrics to `<stem>_metrics.<ext>` beside it.

    Both files are CSV (NaN and infinities as nan, inf, -inf; NULL as an empty field) or Parquet
    (typed columns, NULL as null). Existing files are replaced, and only once complete. Returns
    {"members": n, "metric_rows": n, "files": [members file, metrics file]}.
    """
    if fmt not in _EXTENSIONS:
        raise ValueError(f"unknown export format {fmt!r}; choose from: {', '.join(_EXTENSIONS)}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    metrics_path = path.with_name(f"{path.stem}_metrics.{_EXTENSIONS[fmt]}")
    if metrics_path == path:
        raise ValueError(f"{path}: the members file and the metrics file would be the same file")

    with db.read_session() as s:
        study_id = _study_id(s, db, study)
        members = [tuple(row) for row in s.execute(_member_select(study_id).order_by(Trial.number, Member.pack_index))]
    outcome = list(MEMBER_COLUMNS).index("outcome")
    members = [(*row[:outcome], row[outcome].value, *row[outcome + 1 :]) for row in members]

    counts = {}
    for target, columns, batches in (
        (path, tuple(MEMBER_COLUMNS), iter([members])),
        (metrics_path, METRIC_COLUMNS, _metric_batches(db, study_id)),
    ):
        writer = _Writer(target, fmt, columns)
        ok = False
        try:
            for batch in batches:
                writer.write(batch)
            ok = True
        finally:
            writer.close(ok)
        counts[target] = writer.rows
    return {"members": counts[path], "metric_rows": counts[metrics_path], "files": [str(path), str(metrics_path)]}
