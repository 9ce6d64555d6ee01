#!/usr/bin/env python
"""Fig. 6 across the early-warning transfer studies, and the table of the paper's ratio claim.

    .venv/bin/python -m tools.transfer_figures --storage URL --out docs/img/ [--studies A,B,...] [--upto 300]

For each study (default: warn_keyrecall_fit_cpu and every shipped studies/transfer_*.toml that is in
the database; a study that is not is skipped with a line saying so), the data of a Fig. 6-style panel
(`sweeper.warn.transfer.fig6_data`): loss, the ephemeral / slow gradient-norm ratio and the same ratio
per entry over batches, stable members against exploding ones (late: onset >= 100; early), as
per-batch medians and quartiles of log10 and a few members' own traces, each member up to its onset.

Written to `--out`:

- `transfer_fig6_bands.csv` (study, class, step, n, quartiles of each signal) and
  `transfer_fig6_traces.csv` (study, class, member_id, onset, step, loss, grad_ratio, grad_rms_ratio):
  the figure's data, always;
- `transfer_fig6.png` when kaleido is installed (plotly's static export, which drives an installed
  Chromium: `.venv/bin/pip install -e ".[figures]"`): one row per study, columns loss / ratio / per-entry
  ratio, the classes' median lines and quartile bands, the member traces faint. Without kaleido it says
  so and writes the CSV only;
- `transfer_ratio_growth.csv`: `sweeper.warn.transfer.ratio_growth` per study (the ratio's growth over
  the first 50 batches, exploding vs stable, raw and per entry, with the AUROC of the growth alone);
- `transfer_feature_shift.csv`: per study, the median of every `portable` feature at batch `--at`
  (default 100) over its stable members and over its members that explode later (onset > `--at`):
  what a predictor fitted on one study meets on another.

It also prints both tables as Markdown, and the figure in numbers: per study and class, the median
per-entry ratio and loss at a few batches (`--batches`).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

FIT_STUDY = "warn_keyrecall_fit_cpu"
SIGNALS = (("loss", "loss"), ("grad_ratio", "grad. ratio eph / slow"),
           ("grad_rms_ratio", "per entry"))
COLOURS = {"stable": "#1f77b4", "exploded_late": "#d62728", "exploded_early": "#ff7f0e"}


def shipped_studies(root: Path) -> list[str]:
    """The fitting study, then the shipped transfer studies by file name."""
    return [FIT_STUDY, *sorted(p.stem for p in (root / "studies").glob("transfer_*.toml"))]


def _known(db, names: Sequence[str]) -> list[str]:
    import sqlalchemy as sa

    from sweeper.db import Study

    with db.read_session() as s:
        there = set(s.scalars(sa.select(Study.name).where(Study.name.in_(list(names)))))
    for n in names:
        if n not in there:
            print(f"skipped {n}: not in the database", file=sys.stderr)
    return [n for n in names if n in there]


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        if not rows:
            return
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _short(study: str) -> str:
    """A study's name without the shared prefix and suffix, for a panel title ("keyrecall_w128_dfa")."""
    return study.removeprefix("transfer_").removesuffix("_cpu")


def draw(panels: list[dict], path: Path) -> None:
    """The PNG (plotly + kaleido): rows = studies, columns = SIGNALS, log10 on the y axes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [f"{_short(p['study'])}: {label}" for p in panels for _, label in SIGNALS]
    fig = make_subplots(rows=len(panels), cols=len(SIGNALS), subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.25 / max(1, len(panels)))
    for r, p in enumerate(panels, start=1):
        for c, (signal, _) in enumerate(SIGNALS, start=1):
            for cls, data in p["classes"].items():
                colour = COLOURS[cls]
                by_member: dict[int, list[dict]] = {}
                for t in data["traces"]:
                    by_member.setdefault(t["member_id"], []).append(t)
                for rows in by_member.values():
                    fig.add_trace(go.Scatter(x=[t["step"] for t in rows], y=[t[signal] for t in rows], mode="lines",
                                             line={"color": colour, "width": 0.6}, opacity=0.25, showlegend=False,
                                             hoverinfo="skip"), row=r, col=c)
                b = data["bands"]
                if not b:
                    continue
                x = [row["step"] for row in b]
                fig.add_trace(go.Scatter(x=x + x[::-1], y=[10 ** row[f"{signal}_q75"] for row in b]
                                         + [10 ** row[f"{signal}_q25"] for row in b][::-1], fill="toself",
                                         fillcolor=colour, opacity=0.15, line={"width": 0}, showlegend=False,
                                         hoverinfo="skip"), row=r, col=c)
                fig.add_trace(go.Scatter(x=x, y=[10 ** row[f"{signal}_median"] for row in b], mode="lines",
                                         line={"color": colour, "width": 2},
                                         name=f"{cls.replace('_', ' ')} ({data['members']})",
                                         legendgroup=f"{r}-{cls}", showlegend=c == 1), row=r, col=c)
            fig.update_yaxes(type="log", row=r, col=c)
            fig.update_xaxes(title_text="batch" if r == len(panels) else None, row=r, col=c)
    fig.update_layout(width=1400, height=330 * len(panels), template="plotly_white", legend={"font": {"size": 9}})
    fig.write_image(str(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True, metavar="URL", help="the trial database")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the CSV (and the PNG) go")
    parser.add_argument("--studies", help="comma-separated study names (default: the fitting and shipped transfer studies)")
    parser.add_argument("--upto", type=int, default=300, help="last batch drawn (default 300)")
    parser.add_argument("--per-class", type=int, default=5, help="member traces drawn per class (default 5)")
    parser.add_argument("--at", type=int, default=100, help="batch of the feature-shift table (default 100)")
    parser.add_argument("--batches", default="0,20,50,100,200", help="batches of the figure-in-numbers table")
    args = parser.parse_args(argv)

    from sweeper.db import open_db
    from sweeper.warn.transfer import fig6_data, load_study, ratio_growth

    root = Path(__file__).resolve().parent.parent
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = open_db(args.storage)
    try:
        names = _known(db, args.studies.split(",") if args.studies else shipped_studies(root))
        studies = [load_study(db, n) for n in names]
    finally:
        db.dispose()
    if not studies:
        print("no study to draw", file=sys.stderr)
        return 1

    panels = [fig6_data(s, upto=args.upto, per_class=args.per_class) for s in studies]
    bands = [{"study": p["study"], "class": c, **row} for p in panels for c, d in p["classes"].items()
             for row in d["bands"]]
    traces = [{"study": p["study"], "class": c, **row} for p in panels for c, d in p["classes"].items()
              for row in d["traces"]]
    write_csv(out / "transfer_fig6_bands.csv", bands)
    write_csv(out / "transfer_fig6_traces.csv", traces)
    written = ["transfer_fig6_bands.csv", "transfer_fig6_traces.csv"]
    if importlib.util.find_spec("kaleido") is not None:
        draw(panels, out / "transfer_fig6.png")
        written.append("transfer_fig6.png")
    else:
        print("kaleido is not installed: wrote the figure's data as CSV only (no PNG)", file=sys.stderr)

    growth = [ratio_growth(s) for s in studies]
    flat = []
    for g in growth:
        row = {"study": g["study"], "upto": g["upto"], "stable": g["stable"], "exploded_later": g["exploded_later"],
               "exploded_before": g["exploded_before"]}
        for kind in ("raw", "rms"):
            row.update({f"{kind}_{k}": v for k, v in g[kind].items()})
        flat.append(row)
    write_csv(out / "transfer_ratio_growth.csv", flat)
    written.append("transfer_ratio_growth.csv")
    shift = [feature_shift(st, args.at) for st in studies]
    write_csv(out / "transfer_feature_shift.csv", [row for rows in shift for row in rows])
    written.append("transfer_feature_shift.csv")
    print(growth_table(growth))
    print()
    print(shift_table(shift, args.at))
    print()
    print(bands_table(panels, [int(b) for b in args.batches.split(",")]))
    print(f"\nwrote {', '.join(str(out / w) for w in written)}", file=sys.stderr)
    return 0


def feature_shift(study, at: int) -> list[dict]:
    """Per outcome class (stable; exploding after `at`), the median of each portable feature of the members'
    histories up to batch `at` (members that ended or exploded before it are left out)."""
    import numpy as np

    from sweeper.warn.features import PORTABLE_FEATURES, feature_matrix

    rows = []
    for cls in ("stable", "exploded_later"):
        views = []
        for t in study.traces:
            if (cls == "stable") == t.exploded or (t.exploded and t.explode_onset <= at):
                continue
            v = t.history.view()
            if len(v.full_rows()) and v.full_rows().step[-1] >= at:
                views.append(v.upto(at))
        X = feature_matrix(views, PORTABLE_FEATURES) if views else np.zeros((0, len(PORTABLE_FEATURES)))
        rows.append({"study": study.name, "class": cls, "at": at, "members": len(views),
                     **{n: (float(np.median(X[:, k])) if len(X) else None) for k, n in enumerate(PORTABLE_FEATURES)}})
    return rows


def shift_table(shift: list[list[dict]], at: int) -> str:
    """Markdown: per study, each feature's median at `at`, stable / exploding later."""
    from sweeper.warn.features import PORTABLE_FEATURES

    names = [n for n in PORTABLE_FEATURES if n not in ("nonfinite", "log_step")]
    lines = [f"Portable features at batch {at}, median over stable / over later-exploding members:", "",
             "| study | members | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for stable, later in shift:
        cells = [f"{_fmt(stable[n])} / {_fmt(later[n])}" for n in names]
        lines.append(f"| {stable['study']} | {stable['members']} / {later['members']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bands_table(panels: list[dict], batches: list[int]) -> str:
    """Markdown: the Fig. 6 panels in numbers, per study and class: median log10 per-entry ratio and log10
    loss at each of `batches` (members up to their onset; n/a where none is left)."""
    head = " | ".join(f"{b}" for b in batches)
    lines = ["Median log10 per-entry gradient ratio (and log10 loss) by batch, each member up to its onset:", "",
             f"| study | class | members | {head} |", "|---|---|---|" + "---|" * len(batches)]
    for p in panels:
        for cls, data in p["classes"].items():
            at = {row["step"]: row for row in data["bands"]}
            cells = [f"{at[b]['grad_rms_ratio_median']:+.2f} ({at[b]['loss_median']:+.2f})" if b in at else "n/a"
                     for b in batches]
            lines.append(f"| {p['study']} | {cls.replace('_', ' ')} | {data['members']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def growth_table(growth: list[dict]) -> str:
    """Markdown: per study, the ratio's growth over the first batches, exploding vs stable."""

    def f(x):
        return "n/a" if x is None else f"{x:+.2f}"

    def auc(x):
        return "n/a" if x is None else f"{x:.3f}"

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.0f}%"

    lines = ["| study | stable | exploded later (onset > 50) | median growth, stable | median growth, exploded later "
             "| grew: stable / exploded later | AUROC of the growth | median start (raw), stable / exploded later "
             "| median start (per entry), stable / exploded later | AUROC of a low start | exploded earlier: members, "
             "median growth to their onset, grew |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in growth:
        r, e = g["raw"], g["rms"]
        lines.append(
            f"| {g['study']} | {g['stable']} | {g['exploded_later']} | {f(r['median_growth_stable'])} "
            f"| {f(r['median_growth_exploded'])} | {pct(r['grew_stable'])} / {pct(r['grew_exploded'])} "
            f"| {auc(r['auroc_growth'])} | {f(r['median_start_stable'])} / {f(r['median_start_exploded'])} "
            f"| {f(e['median_start_stable'])} / {f(e['median_start_exploded'])} | {auc(r['auroc_start_low'])} "
            f"| {g['exploded_early_measured']}, {f(r['early_median_growth'])}, {pct(r['early_grew'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
