"""A real Ray cluster of two nodes (separate `ray start` processes, token authentication on) running a
study into PostgreSQL; then the worker node is killed mid-study.

The nodes share this machine, so "multi-node" here means two raylets with their own object stores,
workers and process groups, joined through the head's GCS: what a second host adds, minus the network.
Tune's storage is a directory both nodes see, passed with --tune-storage as a real cluster needs.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.helpers.cluster import LocalCluster
from tests.helpers.studies import rows, write_study
from tests.helpers.sweep import assert_study_sound

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(tmp_path / "ray") as c:
        c.start_head(cpus=1)
        c.add_node(cpus=1)
        c.wait_for_nodes(2)
        yield c
    assert not any(node.alive() for node in c.nodes)  # torn down: nothing of ours left running


@pytest.fixture
def pg_url(fresh_database, tmp_path):
    with fresh_database("postgresql", tmp_path) as url:
        yield url


def submit(cluster: LocalCluster, path, url: str, tune_storage) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweeper", "submit", str(path), "--storage", url,
                             "--address", cluster.address, "--tune-storage", str(tune_storage), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cluster.env,
                            start_new_session=True)


def watch(proc: subprocess.Popen, cluster: LocalCluster, url: str, until=None, timeout: float = 400) -> set[str]:
    """Poll the running packs' worker pids while the driver runs: the names of the nodes that ran them.
    `until(nodes_seen, running_rows)` may act (kill a node) and returns True once done."""
    seen: set[str] = set()
    deadline = time.time() + timeout
    acted = until is None
    while proc.poll() is None and time.time() < deadline:
        try:
            running = rows(url, "SELECT number, worker FROM sw_trials WHERE status = 'RUNNING' AND worker IS NOT NULL")
        except Exception:  # the study's tables may not exist yet
            running = []
        for node in cluster.nodes:
            pids = set(node.pids())
            if any(int(pid) in pids for _, pid in running):
                seen.add(node.name)
        if not acted:
            acted = until(cluster, running)
        time.sleep(0.3)
    return seen


def finish(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_token_auth_is_on(cluster):
    """A driver without the cluster's token is refused."""
    probe = f"import ray; ray.init(address={cluster.address!r})"
    env = {**cluster.env, "RAY_AUTH_TOKEN": "0" * 64}
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "token" in r.stderr.lower() or "authentication" in r.stderr.lower(), r.stderr[-2000:]


def test_study_on_two_nodes_lands_every_trial_once(cluster, pg_url, tmp_path):
    path = write_study(tmp_path, "cluster", batches=400, width=32)  # 6 configurations x 2 seeds, 3 packs
    proc = submit(cluster, path, pg_url, tmp_path / "tune")
    seen = watch(proc, cluster, pg_url)
    out = finish(proc)
    assert proc.returncode == 0, out
    assert_study_sound(pg_url, "cluster", configs=6, seeds=2)
    assert rows(pg_url, "SELECT max(attempts) FROM sw_trials") == [(1,)]
    assert seen == {"head", "node1"}, seen  # packs ran on both nodes


def test_killed_worker_node_trials_are_rescheduled(cluster, pg_url, tmp_path):
    path = write_study(tmp_path, "nodekill", batches=2500, width=64, max_failures=1)
    worker = cluster.nodes[1]
    killed: list[int] = []

    def kill_worker_node(cluster, running) -> bool:
        pids = set(worker.pids())
        on_worker = [number for number, pid in running if int(pid) in pids]
        if not on_worker:
            return False
        time.sleep(1.0)  # mid-pack
        killed.extend(on_worker)
        worker.kill()  # raylet, agents and Ray workers of node1 at once, as if its host died
        return True

    proc = submit(cluster, path, pg_url, tmp_path / "tune")
    watch(proc, cluster, pg_url, until=kill_worker_node)
    out = finish(proc)
    assert killed, "no pack ever ran on the worker node"
    assert not worker.alive()
    assert proc.returncode == 0, out
    # the killed pack ran again (on the head) under the same number; nothing lost, duplicated or RUNNING
    assert_study_sound(pg_url, "nodekill", configs=6, seeds=2)
    for number in killed:
        assert rows(pg_url, "SELECT status, attempts FROM sw_trials WHERE number = :n", n=number) == [("COMPLETE", 2)]
