"""Byte-identical results whether every cache was empty (cold) or full (warm): the reproducibility
promise is the same JSON, whatever a previous run left in $AUDIOSAEBENCH_HOME."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.slow

MODEL, HOOK = "openai/whisper-tiny.en", "encoder.layers.2"


def _without_timings(doc: dict) -> str:
    doc = {k: v for k, v in doc.items() if k not in ("run", "provenance")}
    return json.dumps(doc, sort_keys=True)


def test_cold_and_warm_runs_write_the_same_json_for_every_task(tiny_en_dir, mini_suite, tmp_path, monkeypatch):
    from audiosaebench.evaluation import evaluate
    from audiosaebench.registry import task_names
    from audiosaebench.sae.reference import identity_sae, random_sae

    saes = [random_sae(384, 1536, 32, MODEL, HOOK, seed=3), identity_sae(384, MODEL, HOOK)]
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    shutil.copytree(mini_suite[0], home / "data" / "mini")
    shutil.copytree(tiny_en_dir, home / "models" / tiny_en_dir.name)
    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(home))
    options = {"causal_patching": {"max_pairs": 6}, "steering": {"max_speech_clips": 6}}

    def run(out: str) -> dict[str, str]:
        recs = evaluate(saes, "all", suite="mini", out=tmp_path / out, limit=12, progress=False, task_config=options)
        return {f"{r['sae']['id']}/{r['task']['name']}": _without_timings(r) for r in recs}

    cold = run("cold")
    for cache in ("splice-cache", "steering-cache", "causal-cache", "probing-cache", "coverage-cache", "state-cache"):
        assert (home / cache).exists(), f"the cold run left nothing in {cache}"
    warm = run("warm")
    assert set(cold) == set(warm) and len(cold) == len(saes) * len(task_names())
    differ = [k for k in cold if cold[k] != warm[k]]
    assert not differ, f"cold and warm results differ: {differ}"
