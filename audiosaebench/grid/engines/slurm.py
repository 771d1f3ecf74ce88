"""The SLURM engine (``pip install -e '.[slurm]'``, submitit): one job array per step of the plan (extraction,
training, then each wave of evaluation), each array after the one before it.

``--units-per-job N`` puts N units, run one after another, in each array task (a unit's imports and
model load are then paid once per N). On SLURM each array is submitted at once with
``--dependency=afterok:<previous array>`` (and ``--kill-on-invalid-dep=yes``), so a killed or
timed-out array cancels what follows instead of leaving it pending; ``--detach`` returns after
submitting. A unit that fails inside a job still ends its job successfully (its record says it
failed, and the units that need it skip themselves), so the arrays after it still run their other
units. submitit's local executor (``--slurm-cluster local``, used by the tests) has no dependencies:
each array is waited for before the next is submitted; it is the same code path otherwise.
Extraction (and training on a GPU) asks ``--slurm-gpus`` GPUs when the grid's device is CUDA,
evaluation only with ``--gpu-eval``; ``--slurm-time-min`` is every job's time limit (submitit's own
default would kill a job after a few minutes).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audiosaebench.grid.engines import EngineOptions, cpus_of, describe


def steps(jobs: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The jobs grouped into arrays: consecutive runs of one (kind, wave), in plan order."""
    return [list(g) for _, g in itertools.groupby(jobs, key=lambda j: (j["kind"], j["wave"]))]


def _params(group: list[dict[str, Any]], opts: EngineOptions, after: str | None, cluster: str) -> dict[str, Any]:
    kind = group[0]["kind"]
    gpu = opts.device.startswith("cuda") and any(j["wants_gpu"] or (opts.gpu_eval and kind == "evaluate") for j in group)
    p: dict[str, Any] = {"name": f"grid-{kind}", "timeout_min": opts.slurm_time_min,
                         "cpus_per_task": max(cpus_of(j, opts) for j in group), "tasks_per_node": 1, "nodes": 1}
    if gpu:
        p["gpus_per_node"] = opts.slurm_gpus
    if opts.max_workers:
        p["slurm_array_parallelism"] = opts.max_workers
    if opts.slurm_partition:
        p["slurm_partition"] = opts.slurm_partition
    extra = dict(opts.slurm_extra)
    if after and cluster == "slurm":
        p["slurm_dependency"] = f"afterok:{after}"
        extra.setdefault("kill-on-invalid-dep", "yes")
    if extra:
        p["slurm_additional_parameters"] = extra
    return p


def _finished(job: dict[str, Any], since: str) -> dict[str, Any] | None:
    """The record a unit wrote itself, in this run, in a job that died later (the units before it did finish)."""
    from audiosaebench.grid.records import read_record

    rec = read_record(job["state_dir"], job["id"])
    fresh = (rec is not None and rec.get("config_sha256") == job["config_sha256"] and rec.get("status") == "done"
             and str(rec.get("finished", "")) >= since)
    return rec if fresh else None


def _collect(sjobs: list[Any], chunks: list[list[dict[str, Any]]], opts: EngineOptions, done: int,
             total: int, since: str) -> list[dict[str, Any]]:
    """Wait for an array: its units' records (a job that died: a failed record for each of its units)."""
    from submitit.core.utils import UncompletedJobError

    from audiosaebench.grid.records import write_record

    out = []
    for sj, chunk in zip(sjobs, chunks, strict=True):
        try:
            recs = sj.result()
        except (UncompletedJobError, OSError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            recs = [_finished(j, since) or write_record(j["state_dir"], j["id"], j["config_sha256"], "failed", seconds=0.0,
                                                 error=f"SLURM job {sj.job_id}: {first}"[:500]) for j in chunk]
        for rec in recs:
            out.append(rec)
            opts.echo(f"[{done + len(out)}/{total}] {rec['unit']}: {describe(rec)}")
    return out


def run_slurm(jobs: Sequence[dict[str, Any]], opts: EngineOptions) -> list[dict[str, Any]]:
    import submitit

    from audiosaebench.grid.units import run_jobs

    if not jobs:
        return []
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the records' format: a unit's own record of this run
    folder = Path(jobs[0]["state_dir"]) / "submitit"
    after: str | None = None
    pending: list[tuple[list[Any], list[list[dict[str, Any]]]]] = []
    records: list[dict[str, Any]] = []
    for group in steps(jobs):
        n = max(1, opts.units_per_job)
        chunks = [group[i : i + n] for i in range(0, len(group), n)]
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=opts.slurm_cluster)
        ex.update_parameters(**_params(group, opts, after, ex.cluster))
        sjobs = ex.map_array(run_jobs, chunks)
        after = str(sjobs[0].job_id).split("_")[0]
        opts.echo(f"submitted {len(chunks)} job(s) of {len(group)} {group[0]['kind']} unit(s): array {after} "
                  f"({ex.cluster})")
        if ex.cluster == "slurm":
            pending.append((sjobs, chunks))
        else:  # no dependencies outside SLURM: the next array waits for this one here
            records += _collect(sjobs, chunks, opts, len(records), len(jobs), since)
    if opts.detach:
        opts.echo("detached: follow with `audiosaebench grid status GRID.yaml`")
        return records
    for sjobs, chunks in pending:
        records += _collect(sjobs, chunks, opts, len(records), len(jobs), since)
    return records
