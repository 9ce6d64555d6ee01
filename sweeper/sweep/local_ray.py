"""Starting Ray for a study: a private local Ray on loopback, or an existing cluster by address.

The flags are checked before anything is written (`check_num_cpus`, `check_address`): a bad count or
an address where no Ray answers is refused in a second or two, instead of a traceback or a hang
after the study row exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass

from sweeper.errors import SweeperError

ADDRESS_FORMS = "`auto`, `HOST:PORT` or `ray://HOST:PORT`"
PROBE_TIMEOUT_S = 2.0

_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP2_SETTINGS = 0x04


class FlagError(SweeperError, ValueError):
    """A `sweeper submit` flag that cannot be used; `field` names the flag."""


def loopback_only() -> None:
    """Make the Ray this process starts next listen on 127.0.0.1 only. Call it before `import ray`.

    On Linux Ray 2.60 rewrites node IP 127.0.0.1 into the host's routable address, and its gRPC
    servers (GCS, raylet, workers) then listen on every interface, the runtime-env agent on the
    routable address. Ray keeps everything on 127.0.0.1 only where it believes clusters are off,
    which this (oddly named) switch says; Ray reads it once, on import. Children inherit it, and
    `ray start --address` then refuses to join a cluster: call it only for a private single-node Ray.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def private_ray_env() -> None:
    """The environment of a private single-node Ray. Call it before `import ray`.

    Loopback only (see `loopback_only`), and token authentication kept on but chosen explicitly:
    Ray >= 2.59 turns it on for a new local Ray anyway and then warns "Set RAY_AUTH_MODE=disabled
    to opt out" on every submit. Loopback alone does not keep out the other users of this host, so
    the token stays; saying so ourselves is what silences the warning. A user's own RAY_AUTH_MODE wins.
    Ray reads the mode once, on import, hence the order.
    """
    loopback_only()
    os.environ.setdefault("RAY_AUTH_MODE", "token")


# ---------------------------------------------------------------------------------------------------
# Flags, checked before anything is written


def check_num_cpus(value: int | str | None) -> int | None:
    """`--num-cpus`: a whole number of CPUs from 1 to this machine's, or None (all of them)."""
    if value is None:
        return None
    most = os.cpu_count() or 1
    allowed = f"expected a whole number from 1 to {most} (the CPUs of this machine)"
    try:
        count = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        count = None
    if count is None or not 1 <= count <= most:
        raise FlagError("--num-cpus", f"got {str(value)!r}; {allowed}")
    return count


@dataclass(frozen=True)
class ClusterAddress:
    given: str
    """What the user wrote (`auto`, `HOST:PORT`, `ray://HOST:PORT`), handed to `ray.init` as is."""
    host: str
    port: int
    found_by: str
    """Where the endpoint came from: the flag, $RAY_ADDRESS or Ray's address file."""


def parse_address(text: str) -> tuple[str, int, bool]:
    """(host, port, is_ray_client) of `HOST:PORT` or `ray://HOST:PORT`; FlagError otherwise."""
    rest = text.strip()
    client = rest.startswith("ray://")
    if client:
        rest = rest[len("ray://"):]
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise FlagError("--address", f"got {text!r}; expected {ADDRESS_FORMS}")
    return host, int(port), client


def _ray_address_file() -> str:
    # Ray's own default (ray._common.utils.get_default_ray_temp_dir): $TMPDIR on Linux, else /tmp.
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", "ray", "ray_current_cluster")


def _auto_endpoint() -> tuple[str, str]:
    """The cluster `ray.init(address="auto")` would join, the way Ray finds it: (address, where from)."""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env not in ("auto", "local"):
        return env, "$RAY_ADDRESS"
    path = _ray_address_file()
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    if not text:
        raise FlagError("--address", f"auto: no running Ray cluster found ($RAY_ADDRESS is not set and {path} "
                                     "does not exist); start one with `ray start --head`, or give the cluster's HOST:PORT")
    return text, path


def _speaks_grpc(host: str, port: int, timeout: float) -> bool | None:
    """None: nothing accepts a connection; False: something does, but not a gRPC (HTTP/2) server;
    True: an HTTP/2 server answered. Ray's GCS and its client server are gRPC; another service on the
    port (Redis holds 6379, Ray's default, on some machines) would make `ray.init` wait a long time."""
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    with conn:
        try:
            conn.sendall(_HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except OSError:
            return False
    return len(head) == 9 and head[3] == _HTTP2_SETTINGS


def check_address(text: str | None, timeout: float = PROBE_TIMEOUT_S) -> ClusterAddress | None:
    """`--address`: None (start a private Ray), or a cluster that answers now; FlagError otherwise."""
    if text is None:
        return None
    text = text.strip()
    if text == "auto":
        endpoint, found_by = _auto_endpoint()
        host, port, _ = _parse_found(endpoint, found_by)
    else:
        found_by = "--address"
        host, port, _ = parse_address(text)
    answer = _speaks_grpc(host, port, timeout)
    where = f"{host}:{port}" + ("" if found_by == "--address" else f" (from {found_by})")
    if answer is None:
        raise FlagError("--address", f"no Ray cluster answers at {where} (nothing accepts a connection); "
                                     f"start one with `ray start --head`, or give {ADDRESS_FORMS}")
    if not answer:
        raise FlagError("--address", f"{where} accepts connections but is not a Ray cluster (no gRPC server); "
                                     f"give the Ray head's address, {ADDRESS_FORMS}")
    return ClusterAddress(given=text, host=host, port=port, found_by=found_by)


def _parse_found(endpoint: str, found_by: str) -> tuple[str, int, bool]:
    try:
        return parse_address(endpoint)
    except FlagError:
        raise FlagError("--address", f"auto: {found_by} holds {endpoint!r}, not {ADDRESS_FORMS}") from None


# ---------------------------------------------------------------------------------------------------
# Starting


class _DropMessages(logging.Filter):
    """Drops a library's log lines that would tell sweeper's users something untrue for them."""

    def __init__(self, *needles: str):
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.needles)


def quiet_ray_hints() -> None:
    """Ray's hints that do not apply here: a study resumes by running `sweeper submit` again, never
    `Tuner.restore` (sweeper's state is in the database); token authentication is chosen on purpose
    (`private_ray_env`)."""
    for name, needles in (("ray.tune.tune", ("Tuner.restore", "Stop signal received")),
                          ("ray._private.authentication.authentication_token_setup",
                           ("Token authentication is enabled",))):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(*needles))


def start_ray(address: ClusterAddress | str | None, num_cpus: int | None, num_gpus: int | None) -> bool:
    """Connect to `address`, or start a private local Ray bound to loopback. True if we started it."""
    import ray

    quiet_ray_hints()
    if ray.is_initialized():
        return False
    with _own_sigterm():
        return _init(address, num_cpus, num_gpus)


@contextlib.contextmanager
def _own_sigterm():
    """`ray.init` replaces the process's SIGTERM handler with its own (`sys.exit(signum)`). A handler the
    process had set (a Python function, like the CLI's: stop as after Ctrl-C, print the resume line,
    exit 143) is put back after it; without one, Ray's stays."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(before):
            signal.signal(signal.SIGTERM, before)


def _init(address: ClusterAddress | str | None, num_cpus: int | None, num_gpus: int | None) -> bool:
    import ray

    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
    if address:
        given = address.given if isinstance(address, ClusterAddress) else address
        try:
            ray.init(address=given, **quiet)
        except (ConnectionError, TimeoutError) as exc:
            raise FlagError("--address", f"could not join the Ray cluster at {given}: {exc}") from None
        return True
    # address="local": never attach to some other cluster by accident. Loopback only: a Ray head
    # accepts code from anyone who can reach it.
    # Ray itself turns 127.0.0.1 into the routable address unless loopback_only() ran before Ray was
    # imported (`sweeper submit` does it); say so rather than listen on the network quietly.
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address="127.0.0.1", **quiet)
    if not ray.util.get_node_ip_address().startswith("127."):
        logging.getLogger(__name__).warning(
            "the local Ray listens on %s, not only on loopback: call sweeper.sweep.local_ray.loopback_only() "
            "before importing ray (or set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0)", ray.util.get_node_ip_address())
    return True
