"""The local engine: every unit in this process, one after another, in dependency order (the reference)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audiosaebench.grid.engines import EngineOptions, describe


def run_local(jobs: Sequence[dict[str, Any]], opts: EngineOptions) -> list[dict[str, Any]]:
    from audiosaebench.errors import AudioSAEBenchError
    from audiosaebench.grid.units import run_job

    if opts.max_workers not in (None, 1):
        raise AudioSAEBenchError("--engine local runs one unit at a time; use --engine ray or slurm for --max-workers")
    done: dict[str, dict[str, Any]] = {}
    for i, job in enumerate(jobs, 1):
        opts.echo(f"[{i}/{len(jobs)}] {job['kind']} {job['id']}")
        rec = run_job(job, *(done[a] for a in job["after"] if a in done))
        done[job["id"]] = rec
        opts.echo(f"[{i}/{len(jobs)}] {job['id']}: {describe(rec)}")
    return list(done.values())
