"""submission verify: how a re-evaluation is compared with a row, and when a row counts as verified."""

from __future__ import annotations

import copy
import json

from audiosaebench.verification import compare, verification_status
from tests import factories as fx


def _pair(**provenance):
    row = fx.result_doc("fidelity", value=0.8)
    row["provenance"].update(hardware="CPU A", cpu_capability="AVX512")
    now = copy.deepcopy(row)
    now["provenance"].update(provenance)
    return row, now


def test_on_the_rows_machine_every_value_must_be_identical():
    row, now = _pair()
    assert compare(row, now).passed and compare(row, now).mode == "identical"
    now["metrics"]["values"]["splice_recovered"] = 0.8000001
    out = compare(row, now)
    assert not out.passed and "splice_recovered" in out.detail


def test_on_another_machine_the_main_score_must_lie_in_the_rows_interval():
    row, now = _pair(hardware="CPU B")
    now["metrics"]["values"]["splice_recovered"] = 0.85  # the row's interval is [0.7, 0.9]
    out = compare(row, now)
    assert out.passed and out.mode == "interval" and "CPU B" in out.detail
    now["metrics"]["values"]["splice_recovered"] = 0.95
    assert not compare(row, now).passed


def test_a_row_is_re_run_with_its_own_torch_thread_count(monkeypatch):
    import torch

    from audiosaebench import evaluation, verification

    seen = []
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: seen.append(torch.get_num_threads()) or [{}])
    before = torch.get_num_threads()
    for threads in (1, 3):
        row = fx.result_doc("fidelity")
        row["provenance"]["torch_threads"] = threads
        verification._evaluate_like(row, None, [], None, "cpu", None)
    assert seen == [1, 3] and torch.get_num_threads() == before


def test_a_row_is_verified_only_while_its_results_are_the_ones_checked(tmp_path):
    from audiosaebench.hashing import sha256_file

    folder = fx.write_submission(tmp_path / "submissions", "row", [fx.result_doc("fidelity")])
    results = sorted((folder / "results").glob("*.json"))
    assert verification_status(folder, results) == "self-reported"
    record = {"verified": True, "results_sha256": {p.name: sha256_file(p) for p in results}, "tasks": []}
    (folder / "verification.json").write_text(json.dumps(record))
    assert verification_status(folder, results) == "verified"
    doc = json.loads(results[0].read_text())
    doc["metrics"]["values"]["splice_recovered"] = 0.99  # an edited number
    results[0].write_text(json.dumps(doc))
    assert verification_status(folder, results) == "self-reported"
    record["verified"] = False
    (folder / "verification.json").write_text(json.dumps(record))
    assert verification_status(folder, results) == "self-reported"


def test_every_committed_row_is_verified_and_carries_every_task():
    """The leaderboard's rows: each re-evaluated from its checkpoint (submissions/rebuild.sh) with
    results unchanged since, and a result for every registered task (null with a reason where one
    cannot apply)."""
    from pathlib import Path

    from audiosaebench.registry import task_names

    rows = sorted(p.parent for p in (Path(__file__).resolve().parents[1] / "submissions").glob("*/submission.yaml"))
    assert rows
    for folder in rows:
        results = sorted((folder / "results").glob("*.json"))
        assert verification_status(folder, results) == "verified", folder.name
        tasks = sorted(json.loads(p.read_text())["task"]["name"] for p in results)
        assert tasks == task_names(), (folder.name, tasks)
