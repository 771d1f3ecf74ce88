"""Engines run a plan's units: ``local`` (serial, in this process: the reference), ``ray`` (Ray core
tasks) and ``slurm`` (submitit job arrays). Each takes the units as JSON jobs (see
:meth:`audiosaebench.grid.plan.Unit.job`) in dependency order and returns their records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ENGINES = ("local", "ray", "slurm")


@dataclass
class EngineOptions:
    max_workers: int | None = None  # units (ray) or SLURM array tasks (slurm) at once
    cpus_per_unit: int | None = None  # default: the grid's threads, else 1
    gpu_eval: bool = False  # evaluation units ask for a GPU too
    device: str = "auto"  # the grid's device: whether units that can use a GPU ask for one
    units_per_job: int = 1  # slurm: units run one after another in one array task
    slurm_partition: str | None = None
    slurm_time_min: int = 240
    slurm_gpus: int = 1
    slurm_cluster: str | None = None  # None: submitit's auto (SLURM when sbatch is there, else local); "local" in tests
    slurm_extra: dict[str, Any] = field(default_factory=dict)
    detach: bool = False  # slurm: submit every array (chained by afterok) and return
    echo: Callable[[str], None] = print


def cpus_of(job: dict[str, Any], opts: EngineOptions) -> int:
    if job["kind"] == "train":
        return int(job["args"]["recipe"]["threads"])
    return int(opts.cpus_per_unit or job["args"].get("threads") or 1)


def describe(rec: dict[str, Any]) -> str:
    err = f": {rec['error']}" if rec.get("error") else ""
    return f"{rec['status']} in {rec.get('seconds', 0):.1f} s{err}"


EXTRAS = {"ray": ("ray", "ray"), "slurm": ("submitit", "slurm")}


def run_engine(name: str, jobs: Sequence[dict[str, Any]], opts: EngineOptions) -> list[dict[str, Any]]:
    import importlib.util

    from audiosaebench.grid.spec import GridError

    if name in EXTRAS and importlib.util.find_spec(EXTRAS[name][0]) is None:
        raise GridError(f"--engine {name} needs {EXTRAS[name][0]}: pip install -e '.[{EXTRAS[name][1]}]'")
    if name == "local":
        from audiosaebench.grid.engines.local import run_local

        return run_local(jobs, opts)
    if name == "ray":
        from audiosaebench.grid.engines.ray import run_ray

        return run_ray(jobs, opts)
    if name == "slurm":
        from audiosaebench.grid.engines.slurm import run_slurm

        return run_slurm(jobs, opts)
    raise ValueError(f"unknown engine {name!r}")
