#!/usr/bin/env python
"""Print the tables of docs/findings.md's fast-weight sections, computed from a trial database.

    .venv/bin/python -m tools.family_findings [--storage URL] [--bound 2.0]

Reads the studies of the shipped study files (a study not in the database is skipped with a line
saying so) and prints Markdown:

- **Associative retrieval** (`assoc_fastweights_h{20,50,100}_cpu`, `assoc_rnn_h{20,50,100}_cpu`): per
  hidden size and configuration, the evaluation memory accuracy over seeds (mean and a Student-t 95%
  interval of the mean), its error rate, for fast weights the accuracy with the fast state held at 0, and
  the training memory accuracy of the budget's last fifth against the fifth before (still learning?).
- **The DeltaNet transition bound** (`deltanet_map_identity_cpu`, `deltanet_map_silu_cpu`, and the
  frontier study when it ran): for every member its largest `transition_max` (the delta rule's
  `eta_t ||phi(k_t)||^2`, docs/families.md) up to its explosion onset (`sw_members.explode_onset`;
  the whole run for a stable member); the table of exploded vs stable x bound crossed vs not; when
  the bound was first crossed relative to the onset; the largest `fast_norm` up to the onset; and the
  grid of explosions per (lr, beta_scale) (a frontier study's scattered points get no grid).
- **The fastweights map** (`fastweights_map_cpu`): per lambda, explosions and the stable members' memory
  accuracy per (lr, eta) cell, and per eta over both lambdas.
- Each map study's latest stored boundary fit (`sweeper boundary`), when there is one.

"Crossed" means some recorded batch had transition_max > bound (NaN rows, which an exploded member's
non-finite forward pass leaves, are not a crossing; +inf is). Only `stable` and `exploded` members are
counted (`failed`, `running` and `stopped_early` are left out, and said so).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ASSOC_WIDTHS = (20, 50, 100)
DELTANET_STUDIES = ("deltanet_map_identity_cpu", "deltanet_map_silu_cpu", "deltanet_frontier_identity_cpu")
FASTWEIGHTS_MAP = "fastweights_map_cpu"
BOUND = 2.0
"""The delta rule's transition along phi(k_t) is 1 - x with x = eta_t ||phi(k_t)||^2: non-expansive for x in [0, 2]."""


# --- what the database holds ------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRow:
    """One member as the tables need it."""

    id: int
    model_kind: str
    lr: float
    eta: float | None
    beta_scale: float | None
    lam: float | None
    seed: int
    outcome: str
    explode_onset: int | None
    eval_mem_acc: float | None
    eval_mem_acc_frozen: float | None
    baseline: float | None
    sequences: int | None
    """batches x batch_size of its training run."""
    batches: int | None
    """Its training budget in batches."""


def load_members(db, study: str) -> list[MemberRow] | None:
    """The members of `study` (None when the database has no such study)."""
    import sqlalchemy as sa

    from sweeper.db import Member, Study

    with db.read_session() as s:
        study_id = s.scalar(sa.select(Study.id).where(Study.name == study))
        if study_id is None:
            return None
        rows = s.execute(sa.select(Member).where(Member.study_id == study_id).order_by(Member.config_index,
                                                                                       Member.seed)).scalars()
        out = []
        for m in rows:
            train = (m.config or {}).get("train", {})
            batches, batch_size = train.get("batches"), train.get("batch_size")
            out.append(MemberRow(m.id, m.model_kind, m.lr, m.eta, m.beta_scale, m.lam, m.seed, m.outcome.value,
                                 m.explode_onset, m.eval_mem_acc, m.eval_mem_acc_frozen, m.baseline,
                                 batches * batch_size if batches and batch_size else None, batches))
        return out


def load_metric(db, member_ids: Sequence[int], name: str) -> dict[int, list[tuple[int, float]]]:
    """member id -> [(step, value)] of the per-batch metric `name` (a `sw_member_metrics` column), non-NULL
    rows in step order."""
    import sqlalchemy as sa

    from sweeper.db import MemberMetric

    column = getattr(MemberMetric, name)
    out: dict[int, list[tuple[int, float]]] = {i: [] for i in member_ids}
    with db.read_session() as s:
        for start in range(0, len(member_ids), 500):
            chunk = list(member_ids[start:start + 500])
            q = (sa.select(MemberMetric.member_id, MemberMetric.step, column)
                 .where(MemberMetric.member_id.in_(chunk), column.is_not(None))
                 .order_by(MemberMetric.member_id, MemberMetric.step))
            for member_id, step, value in s.execute(q):
                out[member_id].append((step, float(value)))
    return out


def load_signals(db, member_ids: Sequence[int]) -> dict[int, list[tuple[int, float, float]]]:
    """member id -> [(step, transition_max, fast_norm)] over its recorded batches, in step order (NaN for a
    NULL value)."""
    import sqlalchemy as sa

    from sweeper.db import MemberMetric

    out: dict[int, list[tuple[int, float, float]]] = {i: [] for i in member_ids}
    with db.read_session() as s:
        for start in range(0, len(member_ids), 500):
            chunk = list(member_ids[start:start + 500])
            q = (sa.select(MemberMetric.member_id, MemberMetric.step, MemberMetric.transition_max,
                           MemberMetric.fast_norm)
                 .where(MemberMetric.member_id.in_(chunk)).order_by(MemberMetric.member_id, MemberMetric.step))
            for member_id, step, transition, fast_norm in s.execute(q):
                out[member_id].append((step, math.nan if transition is None else float(transition),
                                       math.nan if fast_norm is None else float(fast_norm)))
    return out


def latest_fit_summary(db, study: str) -> dict | None:
    """The latest stored boundary fit of `study`: its plane, summary and cross-validation (None if none)."""
    import sqlalchemy as sa

    from sweeper.db import BoundaryFit, Study

    with db.read_session() as s:
        payload = s.scalar(sa.select(BoundaryFit.payload).join(Study, Study.id == BoundaryFit.study_id)
                           .where(Study.name == study).order_by(BoundaryFit.id.desc()).limit(1))
    if payload is None:
        return None
    boundary = payload.get("boundary") or {}
    return {"kind": payload.get("model"), "x": boundary.get("x", "lr"), "y": boundary.get("y", "plasticity"),
            "summary": payload.get("summary") or {}, "members": payload.get("members") or {},
            "majority": (payload.get("cv") or {}).get("majority_baseline"),
            "coef": (payload.get("hyperplane") or {}).get("coef") or {},
            "transforms": payload.get("transforms") or {},
            "others_at_median": boundary.get("others_at_median") or {}}


# --- the numbers ------------------------------------------------------------------------------------


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean over `values` (low = high = NaN for one value)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(values)
    if n == 1:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


@dataclass(frozen=True)
class AssocRow:
    hidden: int
    model: str
    setting: str
    members: int
    counted: int
    """Members with an evaluation (stable ones; an exploded member has none)."""
    exploded: int
    mean: float
    low: float
    high: float
    min: float
    max: float
    frozen_mean: float | None
    """fastweights: mean evaluation memory accuracy with the fast state held at 0."""
    sequences: int | None
    baseline: float | None
    train_before: float | None
    """Stable members' training memory accuracy, pooled over the recorded batches in [0.6, 0.8) of the budget."""
    train_last: float | None
    """The same over the last fifth of the budget: above train_before, they were still learning at the end."""


def _setting(m: MemberRow) -> tuple[str, str]:
    if m.model_kind == "fastweights":
        name = "fast weights" if m.eta else "same net, eta = 0"
        return name, f"eta {m.eta:g}, lambda {m.lam:g}, lr {m.lr:g}"
    return m.model_kind.upper() if m.model_kind == "rnn" else m.model_kind, f"lr {m.lr:g}"


def _window_mean(members: Sequence[MemberRow], traces: dict[int, list[tuple[int, float]]], low: float,
                 high: float) -> float | None:
    """Mean of the members' recorded values at steps in [low, high) x their budget (NaN values skipped)."""
    values = [v for m in members if m.batches for step, v in traces.get(m.id, ())
              if low * m.batches <= step < high * m.batches and not math.isnan(v)]
    return statistics.fmean(values) if values else None


def assoc_rows(members: Iterable[MemberRow], hidden: int,
               mem_acc: dict[int, list[tuple[int, float]]] | None = None) -> list[AssocRow]:
    """One row per configuration of an associative-retrieval study (fast weights first, then eta = 0).
    `mem_acc`: the members' per-batch training memory accuracy (`load_metric(db, ids, "mem_acc")`)."""
    groups: dict[tuple[str, str], list[MemberRow]] = {}
    for m in members:
        groups.setdefault(_setting(m), []).append(m)
    rows = []
    for (model, setting), ms in sorted(groups.items(), key=lambda kv: (kv[0][0] != "fast weights", kv[0])):
        stable = [m for m in ms if m.outcome == "stable"]
        accs = [m.eval_mem_acc for m in stable if finite(m.eval_mem_acc)]
        frozen = [m.eval_mem_acc_frozen for m in stable if finite(m.eval_mem_acc_frozen)]
        mean, low, high = t_interval(accs)
        traces = mem_acc or {}
        rows.append(AssocRow(hidden, model, setting, len(ms), len(accs), sum(m.outcome == "exploded" for m in ms),
                             mean, low, high, min(accs, default=math.nan), max(accs, default=math.nan),
                             statistics.fmean(frozen) if frozen and ms[0].model_kind == "fastweights" else None,
                             ms[0].sequences, ms[0].baseline, _window_mean(stable, traces, 0.6, 0.8),
                             _window_mean(stable, traces, 0.8, 1.01)))
    return rows


@dataclass(frozen=True)
class BoundRecord:
    """One member against the transition bound."""

    member: MemberRow
    exploded: bool
    peak: float
    """Largest transition_max up to the explosion onset (the whole run for a stable member); NaN if none."""
    peak_run: float
    """Largest transition_max over the whole recorded run."""
    first_cross: int | None
    """First recorded batch with transition_max > bound, or None."""
    peak_fast_norm: float
    """Largest fast_norm (RMS norm of the fast state at a sequence's end) up to the onset, or the whole run."""
    crossed: bool
    """Crossed at or before the onset (anywhere in the run for a stable member)."""


def bound_record(member: MemberRow, trace: Sequence[tuple[int, float, float]], bound: float = BOUND) -> BoundRecord:
    """`trace`: the member's (step, transition_max, fast_norm) rows (`load_signals`)."""
    exploded = member.outcome == "exploded"
    horizon = member.explode_onset if exploded and member.explode_onset is not None else math.inf
    values = [(step, v) for step, v, _ in trace if not math.isnan(v)]
    before = [v for step, v in values if step <= horizon]
    norms = [n for step, _, n in trace if step <= horizon and not math.isnan(n)]
    first = next((step for step, v in values if v > bound), None)
    return BoundRecord(member, exploded, max(before, default=math.nan), max((v for _, v in values), default=math.nan),
                       first, max(norms, default=math.nan), first is not None and first <= horizon)


@dataclass(frozen=True)
class BoundTable:
    """Exploded vs stable x bound crossed vs not, and the timing of the first crossing."""

    exploded_crossed: int
    exploded_not: int
    exploded_crossed_later: int
    """Exploded members whose first crossing came after their onset (counted in exploded_not)."""
    stable_crossed: int
    stable_not: int
    leads: tuple[int, ...]
    """onset - first crossing, for exploded members that crossed at or before the onset."""
    crossed_at_start: int
    """Members (either outcome) whose first crossing is batch 0."""
    left_out: dict[str, int]


def bound_table(records: Sequence[BoundRecord], left_out: dict[str, int]) -> BoundTable:
    ex = [r for r in records if r.exploded]
    st = [r for r in records if not r.exploded]
    leads = tuple(sorted(r.member.explode_onset - r.first_cross for r in ex
                         if r.crossed and r.member.explode_onset is not None))
    return BoundTable(sum(r.crossed for r in ex), sum(not r.crossed for r in ex),
                      sum(not r.crossed and r.first_cross is not None for r in ex),
                      sum(r.crossed for r in st), sum(not r.crossed for r in st), leads,
                      sum(r.first_cross == 0 for r in records), dict(left_out))


def counted(members: Iterable[MemberRow]) -> tuple[list[MemberRow], dict[str, int]]:
    """The stable and exploded members, and how many of each other outcome were left out."""
    kept, left = [], {}
    for m in members:
        if m.outcome in ("stable", "exploded"):
            kept.append(m)
        else:
            left[m.outcome] = left.get(m.outcome, 0) + 1
    return kept, left


def grid_cells(records: Sequence[BoundRecord], y: str) -> dict[tuple[float, float], list[BoundRecord]]:
    """(lr, y) -> the records of that cell; y is "beta_scale" or "eta"."""
    cells: dict[tuple[float, float], list[BoundRecord]] = {}
    for r in records:
        cells.setdefault((r.member.lr, getattr(r.member, y)), []).append(r)
    return cells


# --- printing ---------------------------------------------------------------------------------------


def _median(values: Iterable[float]) -> float:
    """The median of the non-NaN values (NaN if none)."""
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def num(x: float) -> str:
    """Three significant digits (a grid value as the study file's comments write it)."""
    return "-" if math.isnan(x) else f"{x:.3g}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def print_assoc(db) -> None:
    print("## Associative retrieval (Ba et al. 2016, sec. 4.1) on a CPU budget\n")
    rows: list[AssocRow] = []
    for h in ASSOC_WIDTHS:
        for study in (f"assoc_fastweights_h{h}_cpu", f"assoc_rnn_h{h}_cpu"):
            members = load_members(db, study)
            if members is None:
                print(f"(study {study} is not in this database)")
                continue
            rows += assoc_rows(members, h, load_metric(db, [m.id for m in members], "mem_acc"))
    if not rows:
        return
    seqs = sorted({r.sequences for r in rows if r.sequences})
    base = sorted({round(r.baseline, 4) for r in rows if r.baseline is not None})
    print(f"Sequences trained per member: {', '.join(f'{s:,}' for s in seqs)}; no-memory baseline "
          f"{', '.join(fmt(b) for b in base)}. Mean over seeds with a 95% t-interval; error = 1 - mean.\n")
    print(table(
        ["R (hidden)", "model", "setting", "stable / members", "eval memory accuracy [95% CI]", "error %",
         "seed min - max", "fast state held at 0", "training memory accuracy, 60-80% -> last 20% of the budget"],
        ([str(r.hidden), r.model, r.setting, f"{r.counted} / {r.members}",
          f"{fmt(r.mean)} [{fmt(r.low)}, {fmt(r.high)}]", fmt(100 * (1 - r.mean), 1),
          f"{fmt(r.min)} - {fmt(r.max)}", fmt(r.frozen_mean) if r.frozen_mean is not None else "",
          f"{fmt(r.train_before)} -> {fmt(r.train_last)}"] for r in rows)))
    print()


def print_bound(db, study: str, bound: float) -> None:
    members = load_members(db, study)
    if members is None:
        print(f"(study {study} is not in this database)\n")
        return
    kept, left = counted(members)
    traces = load_signals(db, [m.id for m in kept])
    records = [bound_record(m, traces[m.id], bound) for m in kept]
    t = bound_table(records, left)
    print(f"## {study}: the transition bound (transition_max > {bound:g})\n")
    extra = f"; left out: {', '.join(f'{v} {k}' for k, v in sorted(left.items()))}" if left else ""
    print(f"{len(records)} members ({t.exploded_crossed + t.exploded_not} exploded, "
          f"{t.stable_crossed + t.stable_not} stable){extra}.\n")
    print(table(["", "bound crossed (at or before the onset)", "not crossed", "total"], [
        ["exploded", str(t.exploded_crossed),
         f"{t.exploded_not} ({t.exploded_crossed_later} crossed only after the onset)",
         str(t.exploded_crossed + t.exploded_not)],
        ["stable", str(t.stable_crossed), str(t.stable_not), str(t.stable_crossed + t.stable_not)],
    ]))
    crossed = t.exploded_crossed + t.stable_crossed
    exploded = t.exploded_crossed + t.exploded_not
    print(f"\nAs a predictor of explosion: precision {fmt(t.exploded_crossed / crossed if crossed else math.nan)} "
          f"(exploded among the crossed), recall {fmt(t.exploded_crossed / exploded if exploded else math.nan)} "
          f"(crossed among the exploded). First crossing at batch 0 (at initialisation): {t.crossed_at_start} "
          "members.")
    if t.leads:
        print(f"Onset - first crossing, exploded members that crossed by their onset: median "
              f"{statistics.median(t.leads):g} batches, range {t.leads[0]} to {t.leads[-1]}; "
              f"{sum(v == 0 for v in t.leads)} crossed at the onset batch itself, "
              f"{sum(v > 0 for v in t.leads)} before it.")
    for name, rs in (("exploded", [r for r in records if r.exploded and r.first_cross is not None]),
                     ("stable", [r for r in records if not r.exploded and r.first_cross is not None])):
        firsts = sorted(r.first_cross for r in rs)
        if firsts:
            print(f"First crossing, {name} members that crossed at all: median batch {statistics.median(firsts):g}, "
                  f"range {firsts[0]} to {firsts[-1]}.")
    late = [r for r in records if r.exploded and not r.crossed and r.first_cross is not None
            and r.member.explode_onset is not None]
    if late:
        lags = sorted(r.first_cross - r.member.explode_onset for r in late)
        onsets_late = sorted(r.member.explode_onset for r in late)
        print(f"Exploded members that crossed only after their onset: onsets at batches {onsets_late[0]} to "
              f"{onsets_late[-1]}, first crossing {lags[0]} to {lags[-1]} batches after the onset "
              f"(median {statistics.median(lags):g}).")
    by_lr = {}
    for r in records:
        if r.exploded:
            by_lr.setdefault(r.member.lr, []).append(r)
    if by_lr:
        print("Exploded members per lr: crossed by the onset / not, onsets: " + "; ".join(
            f"{num(lr)} {sum(r.crossed for r in rs)}/{sum(not r.crossed for r in rs)}, "
            f"{min(r.member.explode_onset for r in rs)}-{max(r.member.explode_onset for r in rs)}"
            for lr, rs in sorted(by_lr.items()) if all(r.member.explode_onset is not None for r in rs)) + ".")
    groups = [("exploded, crossed", [r for r in records if r.exploded and r.crossed]),
              ("exploded, not crossed", [r for r in records if r.exploded and not r.crossed]),
              ("stable, crossed", [r for r in records if not r.exploded and r.crossed]),
              ("stable, not crossed", [r for r in records if not r.exploded and not r.crossed])]
    print("Median over members of the largest transition_max and of the largest fast_norm (the fast state's RMS "
          "norm at a sequence's end), up to the onset: " + "; ".join(
              f"{name} {fmt(_median(r.peak for r in rs), 2)} and {num(_median(r.peak_fast_norm for r in rs))}"
              for name, rs in groups if rs) + ".")
    accs = [r.member.eval_mem_acc for r in records if not r.exploded and finite(r.member.eval_mem_acc)]
    if accs:
        baseline = next((r.member.baseline for r in records if r.member.baseline is not None), None)
        print(f"Stable members' evaluation memory accuracy: median {fmt(statistics.median(accs))}, "
              f"{sum(a >= 0.9 for a in accs)} of {len(accs)} at 0.9 or more (no-memory baseline {fmt(baseline)}).")
    stable_peaks = [r.peak for r in records if not r.exploded and not math.isnan(r.peak)]
    exploded_peaks = [r.peak for r in records if r.exploded and not math.isnan(r.peak)]
    if stable_peaks and exploded_peaks:
        above = sum(p > max(stable_peaks) for p in exploded_peaks)
        print(f"Largest transition_max of any stable member: {fmt(max(stable_peaks), 2)}; exploded members above "
              f"it (up to their onset): {above} of {len(exploded_peaks)}; smallest of an exploded member: "
              f"{fmt(min(exploded_peaks), 2)}.")
    onsets = sorted(r.member.explode_onset for r in records if r.exploded and r.member.explode_onset is not None)
    if onsets:
        print(f"Explosion onsets: median batch {statistics.median(onsets):g}, range {onsets[0]} to {onsets[-1]}.")
    print()
    cells = grid_cells(records, "beta_scale")
    lrs = sorted({k[0] for k in cells})
    ys = sorted({k[1] for k in cells}, reverse=True)
    if len(lrs) * len(ys) > 2 * len(cells):  # scattered points (a frontier search), not a grid
        print(f"{len(cells)} configurations off a grid (lr {num(lrs[0])} to {num(lrs[-1])}, beta_scale {num(ys[-1])} "
              f"to {num(ys[0])}): no per-cell table.\n")
        print_fit(db, study)
        return
    print("Per cell: exploded / members, and the median over its members of the largest transition_max up to "
          "the onset (whole run if stable).\n")
    print(table(["beta_scale \\ lr", *map(num, lrs)], (
        [num(y), *(f"{sum(r.exploded for r in cells[(x, y)])}/{len(cells[(x, y)])} "
                   f"({fmt(_median(r.peak for r in cells[(x, y)]), 2)})" if (x, y) in cells else ""
                   for x in lrs)] for y in ys)))
    print()
    print_fit(db, study)


def print_fastweights_map(db) -> None:
    members = load_members(db, FASTWEIGHTS_MAP)
    if members is None:
        print(f"(study {FASTWEIGHTS_MAP} is not in this database)\n")
        return
    kept, left = counted(members)
    print(f"## {FASTWEIGHTS_MAP}: explosions over (lr, eta) per lambda\n")
    extra = f"; left out: {', '.join(f'{v} {k}' for k, v in sorted(left.items()))}" if left else ""
    print(f"{len(kept)} members{extra}. Per cell: exploded / members, and the mean evaluation memory accuracy "
          "of its stable members.\n")
    for lam in sorted({m.lam for m in kept}):
        ms = [m for m in kept if m.lam == lam]
        lrs = sorted({m.lr for m in ms})
        etas = sorted({m.eta for m in ms}, reverse=True)
        ex = sum(m.outcome == "exploded" for m in ms)
        onsets = sorted(m.explode_onset for m in ms if m.outcome == "exploded" and m.explode_onset is not None)
        when = f", onsets at batches {onsets[0]} to {onsets[-1]} (median {statistics.median(onsets):g})" if onsets else ""
        print(f"lambda = {lam:g}: {ex} of {len(ms)} exploded{when}.\n")

        def cell(lr, eta, ms=ms):
            c = [m for m in ms if m.lr == lr and m.eta == eta]
            accs = [m.eval_mem_acc for m in c if m.outcome == "stable" and finite(m.eval_mem_acc)]
            acc = fmt(statistics.fmean(accs), 2) if accs else "-"
            return f"{sum(m.outcome == 'exploded' for m in c)}/{len(c)} ({acc})" if c else ""

        print(table(["eta \\ lr", *map(num, lrs)], ([num(eta), *(cell(lr, eta) for lr in lrs)] for eta in etas)))
        print()
    print("Per eta, both lambdas together: members, exploded, and the stable members' evaluation memory accuracy.\n")
    rows = []
    for eta in sorted({m.eta for m in kept}):
        ms = [m for m in kept if m.eta == eta]
        accs = [m.eval_mem_acc for m in ms if m.outcome == "stable" and finite(m.eval_mem_acc)]
        rows.append([num(eta), str(len(ms)), str(sum(m.outcome == "exploded" for m in ms)),
                     f"{fmt(statistics.median(accs), 2)} [{fmt(min(accs), 2)}, {fmt(max(accs), 2)}]" if accs else "-",
                     f"{sum(a > 0.2 for a in accs)} of {len(accs)}"])
    print(table(["eta", "members", "exploded", "memory accuracy, median [min, max]", "above 0.2"], rows))
    print()
    print_fit(db, FASTWEIGHTS_MAP)


def print_fit(db, study: str) -> None:
    fit = latest_fit_summary(db, study)
    if fit is None:
        print(f"(no stored boundary fit of {study}: `sweeper boundary {study}` stores one)\n")
        return
    s = fit["summary"]
    others = ", ".join(f"{k} {num(v) if isinstance(v, float) else v}" for k, v in fit["others_at_median"].items())
    print(f"Stored boundary fit ({fit['kind']}, plane log10 {fit['y']} vs log10 {fit['x']}"
          f"{', others at their median: ' + others if others else ''}): slope {fmt(s.get('slope'))} "
          f"[{fmt(s.get('slope_ci95_low'))}, {fmt(s.get('slope_ci95_high'))}], intercept {fmt(s.get('intercept'))} "
          f"[{fmt(s.get('intercept_ci95_low'))}, {fmt(s.get('intercept_ci95_high'))}], "
          f"consistent with -1: {s.get('consistent_with_slope_minus_1', '-')}, cross-validated accuracy "
          f"{fmt(s.get('cv_accuracy'))} (majority class {fmt(fit['majority'])}), AUROC {fmt(s.get('cv_auroc'))}, "
          f"members {s.get('members', '-')}; coefficients of logit P(stable): "
          + ", ".join(f"{_feature(a, fit['transforms'].get(a))} {fmt(c)}" for a, c in fit["coef"].items()) + ".\n")


def _feature(axis: str, transform: str | None) -> str:
    """How a fit's payload names a feature: "log10 lr", or its transform when that names the axis."""
    return transform if transform and axis in transform else f"{transform or 'log10'} {axis}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=None, help="database URL (default: $SWEEPER_DB or sqlite:///sweeper.sqlite3)")
    parser.add_argument("--bound", type=float, default=BOUND, help="the transition bound (default: 2)")
    args = parser.parse_args(argv)

    from sweeper.db import open_db
    from sweeper.errors import SweeperError

    try:
        db = open_db(args.storage)
    except SweeperError as e:
        print(f"family_findings: error: {e}", file=sys.stderr)
        return 2
    print_assoc(db)
    for study in DELTANET_STUDIES:
        print_bound(db, study, args.bound)
    print_fastweights_map(db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
