"""The reference sweep's committed rows are rebuilt by their own grid (grids/reference-mini.yaml), one
row per trained architecture (all of them would cost CI an hour): `grid run --only` retrains the row's
SAE with SAELens's trainer, which on the CPU kind that trained it gives the row's SAE bit for bit and
its cheap tasks' values exactly; on another kind the retrained SAE's cheap main scores must fall
inside the row's 95% intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "grids" / "reference-mini.yaml"
CHEAP_TASKS = ("phoneme_probing", "coverage", "disentanglement")
ARCHITECTURES = {"topk", "batchtopk", "standard"}


def _rows_by_architecture(plan) -> dict[str, tuple[Path, str]]:
    """The committed sweep row of each trained architecture and its SAE's name in the grid: the rows at
    encoder.layers.2 first (the reference row's hook, so other tests' extraction is reused), then by name."""
    name_of = {item.id: item.label for item in plan.submissions}
    run_of = {e.label: e.train for e in plan.entries}
    rows: dict[str, tuple[Path, str]] = {}
    committed = [(f, name_of[f.name]) for f in sorted((ROOT / "submissions").iterdir()) if f.name in name_of]
    for folder, label in sorted(committed, key=lambda c: run_of[c[1]].hook != "encoder.layers.2"):
        rows.setdefault(run_of[label].architecture, (folder, label))
    return rows


def test_one_sweep_row_per_architecture_is_rebuilt_by_its_grid(tiny_en_dir, mini_suite, tmp_path, monkeypatch):
    from audiosaebench.cli import main
    from audiosaebench.evaluation import evaluate
    from audiosaebench.grid.plan import make_plan
    from audiosaebench.grid.spec import load_spec
    from audiosaebench.sae import load_sae
    from audiosaebench.verification import threads_of_row

    monkeypatch.chdir(ROOT)  # the grid's relative paths (submissions: submissions) are the repository's
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    out = tmp_path / "grid"
    rows = _rows_by_architecture(make_plan(load_spec(GRID, out=out), stages=("extract", "train")))
    assert set(rows) == ARCHITECTURES, f"committed sweep rows cover {sorted(rows)}, not every architecture"
    only = [a for _, label in rows.values() for a in ("--only", label)]
    assert main(["grid", "run", str(GRID), "--out", str(out), "--stages", "extract,train", "--engine", "ray",
                 "--max-workers", "2", *only]) == 0
    problems = {}
    for arch, (row, label) in rows.items():
        meta = yaml.safe_load((row / "submission.yaml").read_text())
        ckpt = out / "checkpoints" / label
        same = json.loads((ckpt / "training.json").read_text())["stats"]["sae_sha256"] == meta["sae_sha256"]
        with threads_of_row(json.loads((row / "results" / f"{CHEAP_TASKS[0]}-mini.json").read_text())):
            recs = evaluate([load_sae(ckpt)], ",".join(CHEAP_TASKS), suite="mini", out=tmp_path / "eval" / arch,
                            progress=False)
        for rec in recs:
            task = rec["task"]["name"]
            want = json.loads((row / "results" / f"{task}-mini.json").read_text())
            main_score = want["metrics"]["main_score"]
            got = rec["metrics"]["values"][main_score]
            lo, hi = want["uncertainty"]["values"][main_score]
            if same and rec["metrics"]["values"] != want["metrics"]["values"]:
                problems[f"{row.name}/{task}"] = "the same SAE, other values"
            elif not same and not lo <= got <= hi:
                problems[f"{row.name}/{task}"] = f"{got} outside [{lo}, {hi}]"
    assert not problems, problems
