"""The reference sweep's committed rows (grids/reference-mini.yaml) are rebuilt from their recipe, one
row per architecture (all of them would cost CI tens of minutes): the grid's SAELens training units
retrain the row's SAE, which on the CPU kind that trained it is the row's SAE bit for bit; on another
kind, the retrained SAE's cheap main scores must fall inside the row's 95% intervals."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "grids" / "reference-mini.yaml"
ROWS = sorted(p.parent for p in (ROOT / "submissions").glob("sweep-*/submission.yaml"))
CHEAP_TASKS = ("phoneme_probing", "coverage", "disentanglement", "autointerp")


def _one_row_per_architecture() -> dict[str, Path]:
    rows: dict[str, Path] = {}
    for row in ROWS:  # sorted: the same row of each architecture every time
        arch = yaml.safe_load((row / "submission.yaml").read_text())["architecture"]
        rows.setdefault(arch, row)
    return rows


def _label(run: dict) -> str:
    """A run's name after the hook, as the grid names it: architecture, sparsity, width, seed."""
    num = lambda v: str(int(v)) if float(v).is_integer() else f"{v:g}"  # noqa: E731
    arch = run["architecture"]
    tag = f"k{num(run['k'])}" if arch in ("topk", "batchtopk") else f"l1c{num(run['l1_coefficient'])}"
    return f"{arch}-{tag}-d1536-s{run.get('seed', 0)}"


def _grid_of(rows: dict[str, Path], out: Path) -> Path:
    """The reference grid cut down to the runs of ``rows``, at their hook (extraction and training only)."""
    doc = yaml.safe_load(REFERENCE.read_text())
    runs = []
    for run in doc["train"]["runs"]:
        lists = [k for k, v in run.items() if isinstance(v, list)]
        assert len(lists) <= 1, run  # the reference grid varies one field per run
        runs += [run] if not lists else [{**run, lists[0]: v} for v in run[lists[0]]]
    wanted = {row.name.lower() for row in rows.values()}
    hooks = {yaml.safe_load((r / "submission.yaml").read_text())["hook_point"] for r in rows.values()}
    assert len(hooks) == 1, hooks
    (hook,) = hooks
    layer = hook.rsplit(".", 1)[-1]
    doc["train"]["runs"] = [r for r in runs if f"sweep-whisper-tiny.en-l{layer}-{_label(r)}" in wanted]
    assert len(doc["train"]["runs"]) == len(rows), (wanted, [_label(r) for r in runs])
    doc.update(hooks=[hook], tasks=["phoneme_probing"], out=str(out))
    doc.pop("submissions", None)
    doc.pop("partners", None)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "grid.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.skipif(not ROWS, reason="no sweep rows are committed")
def test_one_sweep_row_per_architecture_is_rebuilt_by_its_recipe(tiny_en_dir, mini_suite, tmp_path):
    from audiosaebench.cli import main
    from audiosaebench.evaluation import evaluate
    from audiosaebench.sae import load_sae

    rows = _one_row_per_architecture()
    assert {"topk", "batchtopk", "standard"} <= set(rows) or {"topk", "jumprelu", "standard"} <= set(rows), sorted(rows)
    grid = _grid_of(rows, tmp_path / "grid")
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _temp_dir=tempfile.mkdtemp(dir="/tmp", prefix="ray-"))
    try:  # two training units at once, one thread each (the recipe's): the weights do not depend on it
        assert main(["grid", "run", str(grid), "--stages", "extract,train", "--engine", "ray", "--max-workers", "2"]) == 0
    finally:
        ray.shutdown()
    outside = {}
    for arch, row in rows.items():
        meta = yaml.safe_load((row / "submission.yaml").read_text())
        (ckpt,) = [p for p in (tmp_path / "grid" / "checkpoints").iterdir()
                   if f"sweep-{p.name}".lower() == row.name.lower()]
        trained = json.loads((ckpt / "training.json").read_text())["stats"]["sae_sha256"]
        if trained == meta["sae_sha256"]:
            continue  # the row's SAE, bit for bit: its results are this SAE's (checked when the row was verified)
        recs = evaluate([load_sae(ckpt)], ",".join(CHEAP_TASKS), suite="mini", out=tmp_path / "eval" / arch, progress=False)
        for rec in recs:
            want = json.loads((row / "results" / f"{rec['task']['name']}-mini.json").read_text())
            main_score = want["metrics"]["main_score"]
            lo, hi = want["uncertainty"]["values"][main_score]
            if not lo <= rec["metrics"]["values"][main_score] <= hi:
                outside[f"{row.name}/{rec['task']['name']}"] = (lo, hi, rec["metrics"]["values"][main_score])
    assert not outside, f"retrained sweep SAEs outside their rows' 95% intervals (low, high, now): {outside}"
