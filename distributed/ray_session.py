"""Joining a cluster or starting an embedded local Ray, once per driver."""
from __future__ import annotations

import os


def init_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None) -> str:
    """Join the cluster given by `address`, RAY_ADDRESS or `ray job submit`; otherwise start an
    embedded local Ray sized to this machine (dashboard off, bound to loopback). Returns which."""
    import ray

    if ray.is_initialized():
        return "already initialized"
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return f"cluster at {address}"
    # address="local": always a new cluster, never some other Ray already running on this machine
    kwargs = dict(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                  dashboard_host="127.0.0.1", log_to_driver=True)
    if temp_dir:
        kwargs["_temp_dir"] = temp_dir
    ray.init(**kwargs)
    return f"embedded local Ray with {kwargs['num_cpus']} CPUs"
