"""Starting Ray for a study: a private local Ray on loopback, or an existing cluster by address."""

from __future__ import annotations

import logging
import os


def loopback_only() -> None:
    """Make the Ray this process starts next listen on 127.0.0.1 only. Call it before `import ray`.

    On Linux Ray 2.60 rewrites node IP 127.0.0.1 into the host's routable address, and its gRPC
    servers (GCS, raylet, workers) then listen on every interface, the runtime-env agent on the
    routable address. Ray keeps everything on 127.0.0.1 only where it believes clusters are off,
    which this (oddly named) switch says; Ray reads it once, on import. Children inherit it, and
    `ray start --address` then refuses to join a cluster: call it only for a private single-node Ray.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None) -> bool:
    """Connect to `address`, or start a private local Ray bound to loopback. True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
    if address:
        ray.init(address=address, **quiet)
        return True
    # address="local": never attach to some other cluster by accident. Loopback only: a Ray head
    # accepts code from anyone who can reach it.
    # Ray itself turns 127.0.0.1 into the routable address unless sweeper.sweep.local_ray.loopback_only() ran
    # before Ray was imported (`sweeper submit` does it); say so rather than listen on the network quietly.
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address="127.0.0.1", **quiet)
    if not ray.util.get_node_ip_address().startswith("127."):
        logging.getLogger(__name__).warning(
            "the local Ray listens on %s, not only on loopback: call sweeper.sweep.local_ray.loopback_only() "
            "before importing ray (or set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0)", ray.util.get_node_ip_address())
    return True
