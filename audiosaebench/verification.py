"""Verified rows: re-evaluate a submission's checkpoint and compare every number with the row.

``audiosaebench submission verify submissions/<id> --sae PATH`` loads the checkpoint (its weights
must hash to the row's ``sae_sha256``), runs each task of the row with the row's configuration on
the row's suite, and compares:

* where the machine kind (CPU model and kernel instruction set, or GPU name), the task version and
  the torch / transformers versions are the row's: every metric value must be identical;
  the re-run uses the row's torch thread count, which splits a CPU matrix product's sums;
* elsewhere, another CPU rounds differently: the main score must lie inside the row's 95% interval
  (and how many other values with an interval fall outside theirs is recorded).

A task whose installed version differs from the row's cannot be verified (the row must be re-run);
a multi-SAE task needs its partner checkpoints (``--partner``). The outcome is written to
``submissions/<id>/verification.json``, with the SHA-256 of every result file it checked, so a
result edited afterwards is no longer verified.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audiosaebench import __version__, atomic
from audiosaebench.errors import SubmissionError
from audiosaebench.hashing import sha256_file

log = logging.getLogger(__name__)
RECORD = "verification.json"
RECORD_VERSION = "1"


def machine(provenance: dict[str, Any]) -> dict[str, Any]:
    """What decides a result's last bits: the processor, its kernels and the library versions."""
    return {k: provenance.get(k) for k in ("hardware", "cpu_capability", "device", "torch", "transformers")}


def _same_machine(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return machine(a) == machine(b)


@dataclass
class Outcome:
    task: str
    version: str
    mode: str  # "identical", "interval" or "not verified"
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "version": self.version, "mode": self.mode, "passed": self.passed,
                "detail": self.detail}


def compare(row: dict[str, Any], now: dict[str, Any]) -> Outcome:
    """The row's result against the re-evaluation of the same SAE, task and configuration."""
    task, version = row["task"]["name"], row["task"]["version"]
    want, got = row["metrics"]["values"], now["metrics"]["values"]
    if _same_machine(row["provenance"], now["provenance"]):
        moved = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        detail = "every value identical" if not moved else f"{len(moved)} values differ, e.g. {moved[0]}: " \
                 f"{want.get(moved[0])!r} in the row, {got.get(moved[0])!r} now"
        return Outcome(task, version, "identical", not moved, detail)
    main = row["metrics"]["main_score"]
    intervals = row["uncertainty"]["values"]
    outside = sorted(k for k, (lo, hi) in intervals.items()
                     if k != main and got.get(k) is not None and not lo <= got[k] <= hi)
    if want.get(main) is None or main not in intervals:
        ok = got.get(main) == want.get(main)
        return Outcome(task, version, "interval", ok, f"main score {main} is {got.get(main)!r} (row: {want.get(main)!r}, "
                       "no interval)")
    lo, hi = intervals[main]
    ok = got.get(main) is not None and lo <= got[main] <= hi
    detail = (f"{main} {got.get(main)!r} {'inside' if ok else 'outside'} the row's [{lo:.6g}, {hi:.6g}] "
              f"(another machine: {machine(now['provenance'])['hardware']}); {len(outside)} other values outside their intervals")
    return Outcome(task, version, "interval", ok, detail)


def _row_results(sub: Any) -> dict[str, tuple[Path, dict[str, Any]]]:
    out = {}
    for p in sorted((sub.path / "results").glob("*.json")):
        doc = json.loads(p.read_text(encoding="utf-8"))
        out[doc["task"]["name"]] = (p, doc)
    return out


def _evaluate_like(doc: dict[str, Any], sae: Any, partners: list[Any], data_dir: str | None, device: str,
                   out: Path) -> dict[str, Any]:
    from audiosaebench.evaluation import evaluate

    config = {k: v for k, v in doc["config"].items() if k != "seed"}
    with threads_of_row(doc):
        (rec,) = evaluate([sae], doc["task"]["name"], suite=doc["data"]["suite"], data_dir=data_dir, out=out,
                          device=device, seed=int(doc["config"].get("seed", 0)), kind=doc["kind"],
                          task_config={doc["task"]["name"]: config}, progress=False, partners=partners)
    return rec


@contextlib.contextmanager
def threads_of_row(doc: dict[str, Any]) -> Iterator[None]:
    """Torch's thread count set to the row's (``provenance.torch_threads``) while it is re-run: a CPU
    matrix product splits its sums by thread, so another count may round the last digits differently."""
    from audiosaebench.runtime.threads import torch_threads

    n = (doc.get("provenance") or {}).get("torch_threads")
    with torch_threads(n if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 1024 else None):
        yield


def verify_submission(folder: str | Path, sae_path: str | Path, *, partners: list[str] | None = None,
                      data_dir: str | None = None, device: str = "cpu", model: str | None = None,
                      hook: str | None = None) -> dict[str, Any]:
    """Re-evaluate and compare every result of a submission folder; write and return its verification record."""
    from audiosaebench.leaderboard.submission import validate_submission
    from audiosaebench.registry import get_task
    from audiosaebench.sae import load_sae

    sub = validate_submission(Path(folder), current_versions=False)
    sae = load_sae(sae_path, model_id=model, hook_point=hook)
    if sae.info.sha256 != sub.meta["sae_sha256"]:
        raise SubmissionError(f"{sae_path} hashes to {sae.info.sha256}, not the row's sae_sha256 {sub.meta['sae_sha256']}")
    partner_saes = [load_sae(p) for p in partners or []]
    outcomes, hashes, now_machine = [], {}, None
    with tempfile.TemporaryDirectory(prefix="audiosaebench-verify-") as tmp:
        for name, (path, doc) in _row_results(sub).items():
            hashes[path.name] = sha256_file(path)
            installed = get_task(name).metadata.version
            needed = [p["sha256"] for p in doc.get("partner_saes", [])]
            given = {p.info.sha256: p for p in partner_saes}
            if installed != doc["task"]["version"]:
                outcomes.append(Outcome(name, doc["task"]["version"], "not verified", False,
                                        f"this harness has {name} {installed}: re-run the task for the row"))
                continue
            if any(h not in given for h in needed):
                outcomes.append(Outcome(name, doc["task"]["version"], "not verified", False,
                                        "its partner SAEs were not given (--partner)"))
                continue
            log.info("verifying %s of %s", name, sub.id)
            now = _evaluate_like(doc, sae, [given[h] for h in needed], data_dir, device, Path(tmp) / name)
            outcomes.append(compare(doc, now))
            now_machine = machine(now["provenance"])
    record = {"record_version": RECORD_VERSION, "audiosaebench_version": __version__,
              "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": now_machine,
              "sae_sha256": sae.info.sha256, "results_sha256": hashes,
              "verified": bool(outcomes) and all(o.passed for o in outcomes),
              "tasks": [o.to_dict() for o in outcomes]}
    atomic.write_text(sub.path / RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def verification_status(folder: Path, results: list[Path]) -> str:
    """``verified`` when the folder's record passed every task and names exactly its current result files
    by hash; else ``self-reported``."""
    from audiosaebench import untrusted

    path = folder / RECORD
    if not path.is_file():
        return "self-reported"
    rec = untrusted.read_json(path, SubmissionError, max_bytes=1 << 20)
    if not isinstance(rec, dict) or not rec.get("verified"):
        return "self-reported"
    names = rec.get("results_sha256") or {}
    current = {p.name: sha256_file(p) for p in results}
    return "verified" if names == current else "self-reported"
