#!/usr/bin/env python
"""Time the frontier page of a 10,000-member study in headless Chromium (budget: drawn within 2 s).

    .venv/bin/python dashboards/bench_frontier.py [--members 10000] [--runs 5] [--budget-ms 2000]

Writes a synthetic study (sweeper.dashboard.synthetic) into a temporary SQLite database, serves
`sweeper dashboard` on a free port, and measures navigation start -> all points drawn, in the
browser's clock: cold (a fresh browser context: empty cache) and warm (reloads in one context, as a
user with the dashboard open sees it). Prints the medians; exits 1 if the warm median is over budget.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget-ms", type=float, default=2000.0)
    parser.add_argument("--screenshot", help="save a screenshot of the last cold visit here")
    args = parser.parse_args()

    from sweeper.dashboard.bench import FRONTIER_DRAWN_JS, browser, serving, time_frontier
    from sweeper.dashboard.synthetic import make_study
    from sweeper.db import open_db, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        upgrade(url)
        db = open_db(url)
        start = time.perf_counter()
        make_study(db, "bench", members=args.members)
        db.dispose()
        print(f"inserted {args.members} synthetic members in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        with serving(url) as base, browser() as b:
            cold = []
            for i in range(args.runs):
                shot = args.screenshot if i == args.runs - 1 else None
                result = time_frontier(b, base, "bench", args.members, screenshot=shot)
                if result["console_errors"]:
                    print(f"console errors: {result['console_errors']}", file=sys.stderr)
                cold.append(result["drawn_ms"])
            context = b.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            warm = []
            for i in range(args.runs + 1):
                page.goto(f"{base}/frontier?study=bench", wait_until="commit")
                drawn = page.evaluate(FRONTIER_DRAWN_JS, args.members)
                if i:  # the first visit fills the cache
                    warm.append(drawn)
            context.close()
    report = {
        "members": args.members, "runs": args.runs, "budget_ms": args.budget_ms,
        "cold_ms": [round(c) for c in cold], "cold_median_ms": round(statistics.median(cold)),
        "warm_ms": [round(w) for w in warm], "warm_median_ms": round(statistics.median(warm)),
        "load_average": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }  # fmt: skip
    print(json.dumps(report))
    return 0 if report["warm_median_ms"] <= args.budget_ms else 1


if __name__ == "__main__":
    sys.exit(main())
