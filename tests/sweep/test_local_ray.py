"""Security defaults: the private Ray that `sweeper submit` starts listens on loopback only.

Ray 2.60 on Linux turns node IP 127.0.0.1 into the host's routable address and then listens on every
interface; `sweeper.sweep.local_ray.loopback_only` keeps it on 127.0.0.1. This test reads the kernel's
socket tables (/proc/net/tcp, tcp6, udp, udp6) for every process of a running `sweeper submit`
(the driver, the Ray that `start_ray(None, ...)` started, its workers), as a port scan would see them.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.studies import write_study
from tests.helpers.sweep import wait_for

pytestmark = pytest.mark.slow

def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = {root}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _socket_inodes(pids: set[int]) -> dict[str, int]:
    inodes = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes[link[8:-1]] = pid
    return inodes


def _address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])  # /proc prints the address in host (little-endian) order
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return ipaddress.IPv6Address(words)


def listening(pids: set[int]) -> list[tuple[str, str, int, int]]:
    """(table, address, port, pid) of every listening TCP socket and bound UDP socket of `pids`."""
    inodes = _socket_inodes(pids)
    out = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"/proc/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode in inodes and (state == "0A" or table.startswith("udp")):  # 0A: LISTEN
                host, port = local.split(":")
                out.append((table, str(_address(host)), int(port, 16), inodes[inode]))
    return out


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_address_decoding():
    assert str(_address("0100007F")) == "127.0.0.1"
    assert _loopback(str(_address("0000000000000000FFFF00000100007F")))  # ::ffff:127.0.0.1
    assert not _loopback(str(_address("00000000000000000000000000000000")))  # :: (every interface)
    assert not _loopback(str(_address("00000000")))  # 0.0.0.0


def test_sweeper_submit_private_ray_listens_on_loopback_only(tmp_path):
    """`sweeper submit` without --address: every socket of the driver, its Ray and Ray's workers."""
    url = f"sqlite:///{tmp_path / 'sec.sqlite3'}"
    path = write_study(tmp_path, "sec", batches=2500, width=64)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    proc = subprocess.Popen([sys.executable, "-m", "sweeper", "submit", str(path), "--storage", url, "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        wait_for(url, "SELECT 1 FROM sw_trials WHERE status = 'RUNNING' AND worker IS NOT NULL")
        seen: set[tuple[str, str, int, int]] = set()
        deadline = time.time() + 5  # agents and workers are all up once a pack trains; look a while
        while time.time() < deadline:
            seen.update(listening(_descendants(proc.pid)))
            time.sleep(0.5)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started, in its own session
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
    assert len({port for _, _, port, _ in seen}) >= 3, seen  # GCS, raylet, workers at least: the scan saw Ray
    exposed = [s for s in seen if not _loopback(s[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"
