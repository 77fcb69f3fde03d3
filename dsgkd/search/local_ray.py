"""Which Ray a search runs on: the caller's, a cluster's, or a private local instance; how many trials fit, and what
one holds."""
from __future__ import annotations

import contextlib
import os
import socket

import ray

from dsgkd.errors import UserError
from dsgkd.search.space import SearchSpace


@contextlib.contextmanager
def ray_session(address: str | None):
    """Use the caller's Ray, join a cluster, or start a private local instance for the search."""
    if ray.is_initialized():
        yield
    elif address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address)
        try:
            yield
        finally:
            ray.shutdown()
    else:
        with local_ray():
            yield


@contextlib.contextmanager
def local_ray(num_cpus: int | None = None):
    """A local Ray whose processes all know its address; yields that address.

    Train V2 frees a stopped trial's worker placement group through the State API (so the dashboard must
    run, ray #54305), and a Ray process finds the State API by auto-detecting "the" local cluster, which
    fails when a second Ray instance runs on the machine; the next trial then waits forever for workers.
    So the GCS port is chosen here and exported as RAY_ADDRESS to every process the instance starts. The
    dashboard binds to localhost (Ray's default); it is never exposed publicly.
    """
    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    address = f"{ray.util.get_node_ip_address()}:{port}"
    saved = {k: os.environ.get(k) for k in ("RAY_GCS_SERVER_PORT", "RAY_ADDRESS")}
    os.environ.update(RAY_GCS_SERVER_PORT=str(port), RAY_ADDRESS=address)
    try:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                 resources={"trial_driver": num_cpus or os.cpu_count() or 1})
        yield address
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def concurrency(space: SearchSpace) -> int:
    """Trials that can run at once: set explicitly, or what the cluster's CPUs/GPUs fit (unset, Tune
    over-subscribes the worker placement groups and hangs)."""
    b = space.budget
    res = ray.cluster_resources()
    multi = b.workers_per_trial > 1
    if multi and res.get("trial_driver", 0) < 1:
        raise UserError("the Ray cluster advertises no 'trial_driver' resource, which multi-worker trials need; "
                        "start its head with --resources='{\"trial_driver\": 8}' (cluster.yaml does)")
    if b.max_concurrent:
        return b.max_concurrent
    limits = {"CPU": res.get("CPU", 0) // (b.workers_per_trial * b.cpus_per_worker)}
    if multi:
        limits["trial_driver"] = res["trial_driver"]
    if b.gpus_per_worker:
        limits["GPU"] = res.get("GPU", 0) // (b.workers_per_trial * b.gpus_per_worker)
    n = int(min(limits.values()))
    if n < 1:
        raise UserError(
            f"budget: a trial needs {b.workers_per_trial} worker(s) × {b.cpus_per_worker} CPU / "
            f"{b.gpus_per_worker} GPU but the cluster has {res.get('CPU', 0):g} CPU / {res.get('GPU', 0):g} GPU; "
            "lower budget.workers_per_trial, or set budget.max_concurrent on an autoscaling cluster")
    return n


def trial_resources(space: SearchSpace) -> dict[str, float]:
    """A single-worker trial trains in its own process and holds that worker's CPUs/GPU; a multi-worker
    trial is a driver holding one `trial_driver` unit while its Train workers get a placement group."""
    b = space.budget
    if b.workers_per_trial > 1:
        return {"trial_driver": 1}
    return {"CPU": b.cpus_per_worker, **({"GPU": b.gpus_per_worker} if b.gpus_per_worker else {})}
