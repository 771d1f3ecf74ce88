"""The Ray engine (``pip install -e '.[ray]'``): one Ray core task per unit, chained by passing each task the
object refs of the units it waits for (so Ray starts it when they have finished).

With ``RAY_ADDRESS`` set, ``ray.init()`` attaches to that cluster (every node needs audiosaebench
installed and the grid's folders and ``AUDIOSAEBENCH_HOME`` on a shared file system); without it,
``ray.init()`` starts a single-node cluster for the run; a Ray already initialised in this process
(a test's ``ray.init(num_cpus=2)``) is used as it is. Units pass paths, never arrays: their data moves
through the shared activation store. A unit asks ``num_cpus`` (``--cpus-per-unit``, else the grid's
``threads``, else 1; a training unit its recipe's threads) and ``num_gpus=1`` when it can use a GPU
and the grid's device is CUDA (``auto``: when the cluster has GPUs); evaluation units only with
``--gpu-eval``. A task whose worker dies (out of memory, a lost node) is recorded as failed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from audiosaebench.grid.engines import EngineOptions, cpus_of, describe


def _init() -> bool:
    """Attach to (or start) Ray unless this process already did; whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(include_dashboard=False)
    return True


def _gpus(job: dict[str, Any], opts: EngineOptions, cluster_gpus: float) -> int:
    wants = job["wants_gpu"] or (opts.gpu_eval and job["kind"] == "evaluate")
    cuda = opts.device.startswith("cuda") or (opts.device == "auto" and cluster_gpus > 0)
    return 1 if wants and cuda else 0


def _lost(job: dict[str, Any], error: BaseException, failed: set[str]) -> dict[str, Any]:
    """The record of a task Ray could not finish (its worker died, or one it waits for did)."""
    from audiosaebench.grid.records import write_record

    upstream = next((a for a in job["needs"] if a in failed), None)
    if upstream is not None:
        return write_record(job["state_dir"], job["id"], job["config_sha256"], "skipped", seconds=0.0,
                            error=f"needs {upstream}, which did not finish")
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return write_record(job["state_dir"], job["id"], job["config_sha256"], "failed", seconds=0.0,
                        error=f"{type(error).__name__}: {first}"[:500])


def run_ray(jobs: Sequence[dict[str, Any]], opts: EngineOptions) -> list[dict[str, Any]]:
    import ray

    from audiosaebench.grid.units import run_job

    started = _init()
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        task = ray.remote(max_retries=0)(run_job)
        limit = opts.max_workers or len(jobs) or 1
        refs: dict[str, Any] = {}
        owner: dict[Any, dict[str, Any]] = {}
        records: dict[str, dict[str, Any]] = {}
        failed: set[str] = set()
        queue, flying = list(jobs), list[Any]()
        while queue or flying:
            while queue and len(flying) < limit:
                job = queue.pop(0)
                ref = task.options(num_cpus=cpus_of(job, opts), num_gpus=_gpus(job, opts, gpus), name=job["id"]).remote(
                    job, *(refs[a] for a in job["after"] if a in refs))
                refs[job["id"]], owner[ref] = ref, job
                flying.append(ref)
                opts.echo(f"submitted {job['kind']} {job['id']}")
            ready, flying = ray.wait(flying, num_returns=1)
            job = owner[ready[0]]
            try:
                rec = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                rec = _lost(job, e, failed)
            records[job["id"]] = rec
            if rec["status"] != "done":
                failed.add(job["id"])
            opts.echo(f"[{len(records)}/{len(jobs)}] {job['id']}: {describe(rec)}")
        return [records[j["id"]] for j in jobs]
    finally:
        if started:
            ray.shutdown()
