"""Many writers on one cache: processes started at once on the same activation-store
entry leave exactly one valid entry, and two evaluate processes on one cache finish with identical results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests import factories as fx

EXTRACT = """
import json, logging, os, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from audiosaebench.activations.extract import get_activations
from audiosaebench.data.suites import load_suite
from audiosaebench.models.loading import load_adapter
model, toy, barrier, me, n = sys.argv[1:6]
ad = load_adapter(model)
man = load_suite("toy", toy).split("speech_train")
Path(barrier, f"ready-{me}").touch()
while len(list(Path(barrier).glob("ready-*"))) < int(n):  # start together
    time.sleep(0.005)
s = get_activations(ad, ["encoder.layers.1", "encoder.layers.2"], man, batch_size=2, progress=False)
print(json.dumps({h: [a.key, a.n_frames, float(a.rows(0, a.n_frames).sum())] for h, a in s.items()}))
"""


def _env(home):
    return {**os.environ, "AUDIOSAEBENCH_HOME": str(home)}


def test_four_processes_extracting_one_entry_leave_one_valid_entry(tmp_path, tiny_models, toy_dir):
    from audiosaebench.data.toy import build_toy

    build_toy(toy_dir)
    home, barrier = tmp_path / "home", tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", EXTRACT, str(tiny_models["whisper"]), str(toy_dir), str(barrier),
                               str(i), "4"], env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert all(r == results[0] for r in results)  # every process reads the same entries
    root = home / "activations"
    metas = sorted(root.glob("*/*/meta.json"))
    assert len(metas) == 2  # one entry per hook, no duplicates
    assert not [p for p in root.rglob("*") if p.is_dir() and ".tmp-" in p.name]  # no temporary folder left
    from audiosaebench.activations.store import open_store

    for m in metas:
        key = json.loads(m.read_text())["key"]
        assert open_store(key, root) is not None  # valid: every shard matches its checksum
    # the lock backstop: one process extracted, the others waited and then read its entries
    extracted = sum(e.count("extracting encoder.layers.1, encoder.layers.2") for _, e in outs)
    assert extracted == 1, [e[-800:] for _, e in outs]


def _strip(doc):
    return {k: v for k, v in doc.items() if k != "run"}


def test_two_evaluate_processes_on_one_cache_finish_with_identical_results(tmp_path, tiny_models, toy_dir):
    from audiosaebench.data.toy import build_toy

    build_toy(toy_dir)
    sae = fx.write_saelens_v6(tmp_path / "sae", "topk", fx.random_params("topk", 16, 64), k=8,
                              model=str(tiny_models["whisper"]), hook="encoder.layers.1")
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "audiosaebench.cli", "evaluate", "--sae", str(sae), "--suite", "toy", "--data-dir",
           str(toy_dir), "--tasks", "fidelity,phoneme_probing", "--no-progress"]
    procs = [subprocess.Popen([*cmd, "--out", str(tmp_path / f"out{i}")], env=_env(home), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    docs = [{f.name: _strip(json.loads(f.read_text())) for f in (tmp_path / f"out{i}").rglob("*.json")} for i in range(2)]
    assert sorted(docs[0]) == ["fidelity.json", "phoneme_probing.json"]
    assert docs[0] == docs[1]
