"""Trials per hour on a local 2-node Ray cluster vs one node, and recovery after a node is killed.

The topology of docker/compose.yaml without Docker (tests.helpers.cluster.LocalCluster: separate `ray start`
processes, token authentication on, PostgreSQL storage, shared Tune storage). Same study, 1 CPU per
node; a fresh PostgreSQL database per run.

    .venv/bin/python -m tools.bench_cluster [--pg postgresql://postgres@127.0.0.1:5432/postgres]
        [--batches 1500] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from tests.helpers.cluster import LocalCluster
from tests.helpers.studies import write_study

SPACE = "[space.lr]\nvalues = [1e-3, 3e-3, 1e-2, 3e-2]\n[space.plasticity]\nvalues = [1e2, 1e3, 1e4, 1e5]\n"
CONFIGS, SEEDS, PACKS = 16, 2, 8


def fresh_db(admin_url: str) -> str:
    name = f"sweeper_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_db(admin_url: str, url: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def query(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(sql))]
    finally:
        engine.dispose()


def run_study(work: Path, admin_url: str, nodes: int, batches: int, kill_worker: bool = False) -> dict:
    name = f"bench_{nodes}n{'_kill' if kill_worker else ''}"
    study = write_study(work, name, space=SPACE, seeds=SEEDS, per_trial=4, batches=batches, width=64,
                        metrics_every=50, report_every=50)
    url = fresh_db(admin_url)
    try:
        with LocalCluster(work / name) as cluster:
            cluster.start_head(cpus=1)
            for _ in range(nodes - 1):
                cluster.add_node(cpus=1)
            cluster.wait_for_nodes(nodes)
            started = time.time()
            proc = subprocess.Popen([sys.executable, "-m", "sweeper", "submit", str(study), "--storage", url,
                                     "--address", cluster.address, "--tune-storage", str(work / f"{name}-tune"),
                                     "--no-progress"], env=cluster.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            killed_at, killed_packs = None, []
            while kill_worker and killed_at is None and proc.poll() is None:
                pids = set(cluster.nodes[1].pids())
                try:
                    running = query(url, "SELECT number, worker FROM sw_trials WHERE status = 'RUNNING' "
                                         "AND worker IS NOT NULL")
                except sa.exc.ProgrammingError:
                    running = []
                on_worker = [n for n, pid in running if int(pid) in pids]
                if on_worker:
                    time.sleep(2.0)
                    cluster.nodes[1].kill()
                    killed_at, killed_packs = time.time() - started, on_worker
                time.sleep(0.3)
            out, _ = proc.communicate(timeout=3600)
            wall = time.time() - started
        members = query(url, "SELECT count(*), count(DISTINCT (config_index, seed)) FROM sw_members")[0]
        trials = dict(query(url, "SELECT status, count(*) FROM sw_trials GROUP BY status"))
        attempts = dict(query(url, "SELECT number, attempts FROM sw_trials"))
        running = trials.get("RUNNING", 0)
        result = {"nodes": nodes, "cpus": nodes, "rc": proc.returncode, "wall_s": round(wall, 1),
                  "trials": sum(trials.values()), "trials_by_status": trials,
                  "trials_per_hour": round(3600 * sum(trials.values()) / wall, 1),
                  "members": members[0], "members_lost": CONFIGS * SEEDS - members[1],
                  "members_duplicated": members[0] - members[1], "left_running": running}
        if kill_worker:
            result.update(killed_at_s=round(killed_at, 1) if killed_at else None, killed_packs=killed_packs,
                          rescheduled=[n for n in killed_packs if attempts.get(n, 0) >= 2])
        if proc.returncode != 0:
            result["output"] = out[-2000:]
        return result
    finally:
        drop_db(admin_url, url)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--batches", type=int, default=1500, help="training batches per member (pack length)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="sweeper-bench-") as tmp:
        for nodes, kill in ((1, False), (2, False), (2, True)):
            r = run_study(Path(tmp), args.pg, nodes, args.batches, kill_worker=kill)
            results.append(r)
            print(json.dumps(r), flush=True)
    one, two = results[0], results[1]
    print(f"1 node: {one['trials_per_hour']} trials/h; 2 nodes: {two['trials_per_hour']} trials/h "
          f"(x{two['trials_per_hour'] / one['trials_per_hour']:.2f}); node kill: rescheduled "
          f"{len(results[2].get('rescheduled', []))}/{len(results[2].get('killed_packs', []))}, lost "
          f"{results[2]['members_lost']}, duplicated {results[2]['members_duplicated']}, "
          f"left RUNNING {results[2]['left_running']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
