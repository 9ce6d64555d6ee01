#!/usr/bin/env python
"""Time the frontier page of a 10,000-member study in headless Chromium (budget: drawn within 2 s).

    .venv/bin/python -m tools.bench_frontier [--members 10000] [--runs 5] [--budget-ms 2000] [--no-fit]

Writes a synthetic study (tests.helpers.synthetic) into a temporary SQLite database and fits its
stability boundary (`sweeper boundary`, so the page draws the P(stable) contours too; `--no-fit`
skips that), then serves `sweeper dashboard` twice on free ports: as users get it (sweeper's partial
plotly.js bundle) and with `--full-plotly` (the full plotly.min.js Dash would serve), the baseline.
It measures navigation start -> all points drawn, in the browser's clock, alternating the two servers
visit by visit so both see the same machine: cold (a fresh browser context: empty cache) and warm
(reloads in one context, as a user with the dashboard open sees it). The first visit to each server
counts: it is what a user meets after `sweeper dashboard` starts.

Prints one JSON line: medians, every visit, and full/partial ratios. Exits 1 if the partial bundle's
cold or warm median is over budget.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}; expected an integer >= 1")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=_positive, default=10_000)
    parser.add_argument("--runs", type=_positive, default=5)
    parser.add_argument("--budget-ms", type=float, default=2000.0)
    parser.add_argument("--no-fit", action="store_true", help="do not fit the boundary (no contours on the page)")
    parser.add_argument("--screenshot", help="save a screenshot of the last cold visit (partial bundle) here")
    args = parser.parse_args()

    from sweeper.db import open_db, upgrade
    from tests.helpers.browser import FRONTIER_DRAWN_JS, browser, serving, time_frontier
    from tests.helpers.synthetic import make_study

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        upgrade(url)
        db = open_db(url)
        start = time.perf_counter()
        make_study(db, "bench", members=args.members)
        if not args.no_fit:
            from sweeper.analysis.boundary import fit_boundary

            fit_boundary(db, "bench", bootstrap=50)
        db.dispose()
        print(f"wrote {args.members} synthetic members{'' if args.no_fit else ' and their boundary fit'} in "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr)  # fmt: skip
        variants = ("partial", "full")
        cold = {v: [] for v in variants}
        warm = {v: [] for v in variants}
        errors = []
        with serving(url) as partial, serving(url, full_plotly=True) as full, browser() as b:
            bases = {"partial": partial, "full": full}
            for i in range(args.runs):
                for v in variants if i % 2 == 0 else variants[::-1]:
                    shot = args.screenshot if (i == args.runs - 1 and v == "partial") else None
                    result = time_frontier(b, bases[v], "bench", args.members, screenshot=shot)
                    errors += result["console_errors"]
                    cold[v].append(result["drawn_ms"])
            contexts = {v: b.new_context(viewport={"width": 1400, "height": 1000}) for v in variants}
            pages = {v: contexts[v].new_page() for v in variants}
            for i in range(args.runs + 1):
                for v in variants if i % 2 == 0 else variants[::-1]:
                    pages[v].goto(f"{bases[v]}/frontier?study=bench", wait_until="commit")
                    drawn = pages[v].evaluate(FRONTIER_DRAWN_JS, args.members)
                    if i:  # the first visit fills the cache
                        warm[v].append(drawn)
            for context in contexts.values():
                context.close()
    if errors:
        print(f"console errors: {errors}", file=sys.stderr)
    report = {"members": args.members, "runs": args.runs, "budget_ms": args.budget_ms, "boundary_fit": not args.no_fit}
    for v in variants:
        report[f"{v}_cold_median_ms"] = round(statistics.median(cold[v]))
        report[f"{v}_warm_median_ms"] = round(statistics.median(warm[v]))
    for v in variants:
        report[f"{v}_cold_ms"] = [round(c) for c in cold[v]]
        report[f"{v}_warm_ms"] = [round(w) for w in warm[v]]
    report["full_over_partial_cold"] = round(report["full_cold_median_ms"] / report["partial_cold_median_ms"], 2)
    report["full_over_partial_warm"] = round(report["full_warm_median_ms"] / report["partial_warm_median_ms"], 2)
    report.update(console_errors=len(errors), load_average=[round(x, 1) for x in os.getloadavg()], cpus=os.cpu_count())
    print(json.dumps(report))
    within = max(report["partial_cold_median_ms"], report["partial_warm_median_ms"]) <= args.budget_ms
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
