"""What a worker runs: one unit, from JSON-able arguments only (paths, names, numbers; never arrays).

Every engine calls :func:`run_job` (in-process, in a Ray task, in a SLURM job), so a unit does the
same work wherever it runs and its data moves through the shared activation store and result
folders. :func:`run_job` never raises for a failed unit (only for an interruption): it writes the
unit's record (:mod:`audiosaebench.grid.records`) and returns it, so one failure leaves the other
units running, and units that need a failed one are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from audiosaebench.errors import AudioSAEBenchError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def unit_process(home: str, threads: int | None) -> Iterator[None]:
    """The unit's cache home and torch thread count, restored afterwards (local units share a process)."""
    from audiosaebench.runtime.threads import torch_threads

    old_home = os.environ.get("AUDIOSAEBENCH_HOME")
    os.environ["AUDIOSAEBENCH_HOME"] = home
    try:
        with torch_threads(threads):
            yield
    finally:
        if old_home is None:
            os.environ.pop("AUDIOSAEBENCH_HOME", None)
        else:
            os.environ["AUDIOSAEBENCH_HOME"] = old_home


def run_extraction_unit(*, home: str, model: str, dtype: str, device: str, suite: str, data_dir: str | None, role: str,
                        hooks: Sequence[str], keep_states: Sequence[str], batch_size: int, limit: int | None,
                        keys: Sequence[str], threads: int | None = None) -> dict[str, Any]:
    """One forward pass over a split fills every listed hook's store entry (and the state cache for ``keep_states``)."""
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.suites import load_suite
    from audiosaebench.evaluation import limited, resolve_device
    from audiosaebench.models.loading import load_adapter

    with unit_process(home, threads):
        adapter = load_adapter(model, device=resolve_device(device), dtype=dtype)
        sets = get_activations(adapter, list(hooks), limited(load_suite(suite, data_dir).split(role), limit),
                               batch_size=batch_size, progress=False, keep_states=list(keep_states))
    for h, key in zip(hooks, keys, strict=True):
        if sets[h].key != key:
            raise AudioSAEBenchError(f"{role} at {h}: the store key is {sets[h].key[:12]}, the plan's {key[:12]} "
                                     "(the model or the data changed since planning; run the grid again)")
    return {"frames": {h: sets[h].n_frames for h in hooks}}


def run_evaluation_unit(*, home: str, sae: str, partners: Sequence[str], tasks: Sequence[str], suite: str,
                        data_dir: str | None, model: str, device: str, dtype: str, batch_size: int, limit: int | None,
                        seed: int, task_config: dict[str, dict[str, Any]], kind: str, out: str, resume: bool,
                        threads: int | None = None) -> dict[str, Any]:
    """``evaluate`` of one SAE on all its tasks: results land where and how ``evaluate`` writes them."""
    from audiosaebench.evaluation import evaluate

    with unit_process(home, threads):
        records = evaluate([sae], list(tasks), suite=suite, data_dir=data_dir, out=out, model=model, device=device,
                           dtype=dtype, batch_size=batch_size, resume=resume, limit=limit, seed=seed,
                           task_config=task_config, kind=kind, progress=False, partners=list(partners))
    return {"sae_id": records[0]["sae"]["id"] if records else None,
            "main_scores": {r["task"]["name"]: r["metrics"]["values"].get(r["metrics"]["main_score"]) for r in records}}


def _run(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "extract":
        return run_extraction_unit(**job["args"])
    if job["kind"] == "train":
        from audiosaebench.grid.training import run_training_unit

        return run_training_unit(**job["args"], config_sha256=job["config_sha256"])
    if job["kind"] == "evaluate":
        return run_evaluation_unit(**job["args"])
    raise ValueError(f"unknown unit kind {job['kind']!r}")


def _unfinished_need(job: dict[str, Any], upstream: Sequence[dict[str, Any]] | None) -> str | None:
    """The first unit this one needs that did not finish (from the engine's results, else the records)."""
    from audiosaebench.grid.records import read_record

    got = {r.get("unit"): r for r in upstream or ()}
    for need in job.get("needs", ()):
        rec = got.get(need) or read_record(job["state_dir"], need)
        if not rec or rec.get("status") != "done":
            return need
    return None


def _one_line(e: BaseException) -> str:
    if isinstance(e, AudioSAEBenchError):
        return str(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


def run_job(job: dict[str, Any], *upstream: Any) -> dict[str, Any]:
    """Run one unit and return its record (``upstream``: the records of units it waited for, if the engine has them)."""
    from audiosaebench.grid.records import write_record

    uid, sha, state = job["id"], job["config_sha256"], job["state_dir"]
    need = _unfinished_need(job, [u for u in upstream if isinstance(u, dict)] or None)
    if need is not None:
        return write_record(state, uid, sha, "skipped", seconds=0.0, error=f"needs {need}, which did not finish")
    t0 = time.perf_counter()
    try:
        summary = _run(job)
    except Exception as e:  # noqa: BLE001 - recorded with its traceback; the other units go on
        log.error("unit %s failed: %s", uid, _one_line(e))
        tb = None if isinstance(e, AudioSAEBenchError) else traceback.format_exc()
        return write_record(state, uid, sha, "failed", seconds=time.perf_counter() - t0, error=_one_line(e), traceback=tb)
    return write_record(state, uid, sha, "done", seconds=time.perf_counter() - t0, summary=summary)


def run_jobs(jobs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several units one after another in this process (a SLURM job's chunk)."""
    return [run_job(j) for j in jobs]
