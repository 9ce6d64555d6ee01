"""A Ray cluster of several nodes on this machine: docker/compose.yaml's topology without Docker.

    with LocalCluster(root) as cluster:          # token authentication on, a fresh token
        cluster.start_head(cpus=1)               # `ray start --head`, its own process group
        worker = cluster.add_node(cpus=1)        # `ray start --address`, another process group
        cluster.wait_for_nodes(2)
        subprocess.run([... "sweeper", "submit", study, "--address", cluster.address], env=cluster.env)
        worker.kill()                            # SIGKILL its raylet, agents and Ray workers

Each node is started by `ray start` in a session of its own, so every process Ray starts for that
node (GCS, raylet, agents, Ray workers) shares one process group: killing or stopping a node never
touches another node, nor any other Ray on the machine (`ray stop` would stop them all).

Ray 2.60 refuses a loopback-only cluster of several nodes on Linux: `--node-ip-address 127.0.0.1`
is rewritten to the host's routable address, and the servers then listen on every interface; the
switch that keeps Ray on loopback (see `sweeper.sweep.local_ray.loopback_only`) makes `ray start
--address` refuse to join. So this cluster is reachable from the network while it runs and is
protected by Ray's token authentication (RAY_AUTH_MODE=token, a random RAY_AUTH_TOKEN passed to
every process through the environment, never written to ~/.ray). Every port is chosen free, so
it never collides with another Ray on the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


@dataclass
class Node:
    name: str
    pgid: int
    """Process group of every process Ray started for this node."""
    temp_dir: Path
    log: Path
    head: bool = False

    def pids(self) -> list[int]:
        """Live processes of this node: its process group, and the Ray workers its raylet started
        (a raylet puts each worker in a process group of its own)."""
        procs = _processes()
        mine = {pid for pid, (_, pgrp) in procs.items() if pgrp == self.pgid}
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        todo = list(mine)
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in mine:
                    mine.add(child)
                    todo.append(child)
        return sorted(mine)

    def alive(self) -> bool:
        return bool(self.pids())

    def kill(self) -> None:
        """SIGKILL every process of the node at once, as when its host dies."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_gone(self, 10.0)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the node, SIGKILL whatever is left after `grace` seconds."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        _wait_gone(self, grace)
        self.kill()


def _wait_gone(node: Node, seconds: float) -> None:
    deadline = time.time() + seconds
    while node.alive() and time.time() < deadline:
        time.sleep(0.2)


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live (not zombie) process, from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            out[int(entry)] = (int(fields[1]), int(fields[2]))
    return out


@dataclass
class LocalCluster:
    root: Path
    """Holds each node's `ray start` log."""
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        # Ray's temp dirs hold unix sockets, whose paths may not exceed 107 bytes: keep them short.
        self._temp = Path(tempfile.mkdtemp(prefix="swray-", dir="/tmp"))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every node and of a driver: token authentication on, this cluster's token."""
        env = dict(os.environ)
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, RAY_USAGE_STATS_ENABLED="0",
                   RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1")  # a driver's loopback_only() must not leak in
        env.pop("RAY_ADDRESS", None)
        return env

    def _ports(self) -> list[str]:
        return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]

    def _start(self, name: str, args: list[str], head: bool) -> Node:
        temp_dir = self._temp / name
        log = self.root / f"{name}.log"
        cmd = [_ray_bin(), "start", "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp_dir),
               "--disable-usage-stats", *self._ports(), *args]
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        node = Node(name=name, pgid=proc.pid, temp_dir=temp_dir, log=log, head=head)
        self.nodes.append(node)  # before waiting: a failed start is still torn down
        try:
            rc = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            rc = None
        if rc != 0:
            raise RuntimeError(f"`ray start` for {name} failed ({rc}):\n{log.read_text()[-3000:]}")
        return node

    def start_head(self, cpus: int = 1) -> Node:
        return self._start("head", ["--head", "--port", str(self.port), "--num-cpus", str(cpus),
                                    "--include-dashboard=false", "--dashboard-host", "127.0.0.1",
                                    "--dashboard-port", str(free_port())], head=True)

    def add_node(self, cpus: int = 1) -> Node:
        name = f"node{len(self.nodes)}"
        return self._start(name, ["--address", self.address, "--num-cpus", str(cpus)], head=False)

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        """Until the head's GCS lists `count` live nodes (asked by a short-lived driver)."""
        probe = ("import ray, sys, time\n"
                 f"ray.init(address={self.address!r}, log_to_driver=False)\n"
                 f"deadline = time.time() + {timeout}\n"
                 f"while sum(n['Alive'] for n in ray.nodes()) < {count} and time.time() < deadline:\n"
                 "    time.sleep(0.5)\n"
                 f"sys.exit(0 if sum(n['Alive'] for n in ray.nodes()) >= {count} else 1)\n")
        r = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True,
                           timeout=timeout + 60)
        if r.returncode != 0:
            raise RuntimeError(f"the cluster did not reach {count} live nodes:\n{r.stderr[-3000:]}")

    def stop(self) -> None:
        """Stop every node this cluster started (and nothing else), workers first."""
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self._temp, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
