"""End to end on the toy suite: results, schema, determinism, resume, interruption, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from audiosaebench.cli import main
from audiosaebench.errors import ResultError
from audiosaebench.registry import get_task
from audiosaebench.results.validation import read_result, validate_result
from tests import factories as fx


def _sae(tmp_path, tiny_models, name="sae", arch="topk", hook="encoder.layers.1", d_in=16, params=None, **kw):
    p = params or fx.random_params(arch, d_in, 64)
    return fx.write_saelens_v6(tmp_path / name, arch, p, k=8 if arch == "topk" else None,
                               model=str(tiny_models["whisper"]), hook=hook, **kw)


def _eval(args, toy_dir):
    return main(["evaluate", "--suite", "toy", "--data-dir", str(toy_dir), "--no-progress", *args])


def _strip_run(doc):
    return {k: v for k, v in doc.items() if k != "run"}


def test_evaluate_writes_valid_deterministic_results(home, tmp_path, tiny_models, toy_dir, capsys):
    sae = _sae(tmp_path, tiny_models)
    assert _eval(["--sae", str(sae), "--out", str(tmp_path / "a")], toy_dir) == 0
    table = capsys.readouterr().out
    assert f"fidelity {get_task('fidelity').metadata.version}" in table and "splice_recovered" in table
    assert _eval(["--sae", str(sae), "--out", str(tmp_path / "b")], toy_dir) == 0
    (fa,) = (tmp_path / "a").rglob("fidelity.json")
    (fb,) = (tmp_path / "b").rglob("fidelity.json")
    a, b = read_result(fa), read_result(fb)
    assert json.dumps(_strip_run(a), sort_keys=True) == json.dumps(_strip_run(b), sort_keys=True)
    assert a["sae"]["hook_point"] == "encoder.layers.1" and a["data"]["submittable"] is False
    assert a["model"]["weights_sha256"] and len(a["data"]["splits"]) == 3
    # what did the arithmetic (another processor or thread count may round the last digits differently)
    assert a["provenance"]["hardware"] and a["provenance"]["torch_threads"] == torch.get_num_threads()
    assert a["provenance"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    older = json.loads(json.dumps(a))
    for field in ("hardware", "torch_threads", "cpu_capability"):
        del older["provenance"][field]
    validate_result(older)  # results written before the fields existed stay valid


def test_identity_sae_is_at_the_fidelity_ceiling_and_mean_sae_at_the_floor(home, tmp_path, tiny_models, toy_dir):
    eye = torch.eye(16)
    ident = {"W_enc": torch.cat([eye, -eye], 1), "b_enc": torch.zeros(32),
             "W_dec": torch.cat([eye, -eye], 0), "b_dec": torch.zeros(16)}
    _sae(tmp_path, tiny_models, "ident", arch="standard", params=ident)
    # a "mean SAE": decodes every frame to the speech_test mean (W_dec = 0, b_dec = mean)
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.loading import load_adapter

    ad = load_adapter(str(tiny_models["whisper"]))
    acts = get_activations(ad, ["encoder.layers.1"], load_suite("toy", toy_dir).split("speech_test"), progress=False)
    mean = torch.from_numpy(acts["encoder.layers.1"].rows(0, acts["encoder.layers.1"].n_frames).mean(0))
    meansae = {"W_enc": torch.zeros(16, 4), "b_enc": torch.zeros(4), "W_dec": torch.zeros(4, 16), "b_dec": mean}
    fx.write_saelens_v6(tmp_path / "mean", "standard", meansae, model=str(tiny_models["whisper"]), hook="encoder.layers.1",
                        extra={"apply_b_dec_to_input": False})
    out = tmp_path / "out"
    assert _eval(["--sae", str(tmp_path / "ident"), "--sae", str(tmp_path / "mean"), "--out", str(out)], toy_dir) == 0
    docs = {d.parent.name.split("-")[0]: read_result(d) for d in out.rglob("fidelity.json")}
    iv = docs["ident"]["metrics"]["values"]
    assert iv["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert iv["speech_test/cosine"] == pytest.approx(1.0, abs=1e-6)
    assert docs["mean"]["metrics"]["values"]["explained_variance"] == pytest.approx(0.0, abs=1e-5)
    lo, hi = docs["ident"]["uncertainty"]["values"]["explained_variance"]
    assert lo <= iv["explained_variance"] <= hi


def test_resume_skips_same_config_and_recovers_from_a_killed_run(home, tmp_path, tiny_models, toy_dir, monkeypatch):
    sae = _sae(tmp_path, tiny_models)
    out = tmp_path / "out"
    assert _eval(["--sae", str(sae), "--out", str(out)], toy_dir) == 0
    (f,) = out.rglob("fidelity.json")
    before = f.read_bytes()
    mtime = f.stat().st_mtime_ns
    assert _eval(["--sae", str(sae), "--out", str(out), "--resume"], toy_dir) == 0
    assert f.stat().st_mtime_ns == mtime
    # a changed option reruns
    assert _eval(["--sae", str(sae), "--out", str(out), "--resume", "--task-option", "fidelity.dense_threshold=0.2"], toy_dir) == 0
    assert json.loads(f.read_text())["config"]["dense_threshold"] == 0.2
    # a run killed mid-task leaves the previous file intact; resume then writes the same bytes as before
    import audiosaebench_tasks.fidelity.compute as comp

    real = comp._split_stats
    monkeypatch.setattr(comp, "_split_stats", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert _eval(["--sae", str(sae), "--out", str(out)], toy_dir) == 130
    assert json.loads(f.read_text())["config"]["dense_threshold"] == 0.2
    monkeypatch.setattr(comp, "_split_stats", real)
    f.write_text(f.read_text()[:100])  # and a half-written file from elsewhere is not trusted
    assert _eval(["--sae", str(sae), "--out", str(out), "--resume"], toy_dir) == 0
    assert _strip_run(json.loads(f.read_text())) == _strip_run(json.loads(before))


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "not found"),
        ("d_in", "d_in=12 but encoder.layers.1"),
        ("hook", "does not exist on"),
        ("nan", "NaN or Inf"),
        ("arch", "unknown architecture"),
        ("task", "unknown task 'fidelty'; did you mean fidelity"),
        ("nohook", "which hook point"),
    ],
)
def test_bad_input_is_one_line_exit_2(home, tmp_path, tiny_models, toy_dir, capsys, case, message):
    args = ["--out", str(tmp_path / "out")]
    if case == "missing":
        args += ["--sae", str(tmp_path / "nope")]
    elif case == "d_in":
        args += ["--sae", str(_sae(tmp_path, tiny_models, d_in=12))]
    elif case == "hook":
        args += ["--sae", str(_sae(tmp_path, tiny_models, hook="encoder.layers.7"))]
    elif case == "nan":
        p = fx.random_params("topk", 16, 64)
        p["W_enc"][3, 3] = float("nan")
        args += ["--sae", str(_sae(tmp_path, tiny_models, params=p))]
    elif case == "arch":
        args += ["--sae", str(_sae(tmp_path, tiny_models, extra={"architecture": "crosscoder"}))]
    elif case == "task":
        args += ["--sae", str(_sae(tmp_path, tiny_models)), "--tasks", "fidelty"]
    elif case == "nohook":
        args += ["--sae", str(_sae(tmp_path, tiny_models, hook=None))]
    assert _eval(args, toy_dir) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_schema_rejects_bad_results(home, tmp_path, tiny_models, toy_dir):
    sae = _sae(tmp_path, tiny_models)
    assert _eval(["--sae", str(sae), "--out", str(tmp_path / "o")], toy_dir) == 0
    (f,) = (tmp_path / "o").rglob("fidelity.json")
    good = json.loads(f.read_text())
    validate_result(good)
    for mutate, msg in [
        (lambda d: d["metrics"]["values"].__setitem__("explained_variance", None), "null without a reason"),
        (lambda d: d.pop("provenance"), "provenance"),
        (lambda d: d["config"].__setitem__("seed", 1), "config_sha256"),
        (lambda d: d["sae"].__setitem__("id", "../../etc"), "schema violation"),
        (lambda d: d["run"].__setitem__("limit", 3), "submittable") if good["data"]["submittable"] else
        (lambda d: d["metrics"].__setitem__("main_score", "nope"), "main score"),
    ]:
        doc = json.loads(json.dumps(good))
        mutate(doc)
        with pytest.raises(ResultError, match=msg):
            validate_result(doc)
    f.write_text(f.read_text().replace('"ceiling": 1.0', '"ceiling": NaN'))
    with pytest.raises(ResultError):
        read_result(f)


def test_limit_runs_are_not_submittable(home, tmp_path, tiny_models, toy_dir):
    sae = _sae(tmp_path, tiny_models)
    assert _eval(["--sae", str(sae), "--out", str(tmp_path / "o"), "--limit", "2"], toy_dir) == 0
    (f,) = (tmp_path / "o").rglob("fidelity.json")
    doc = read_result(f)
    assert doc["run"]["limit"] == 2 and doc["data"]["submittable"] is False
    assert all(s["n_clips"] == 2 for s in doc["data"]["splits"])


def test_import_and_tasks_list_do_not_import_torch():
    code = (
        "import sys, audiosaebench, audiosaebench.cli\n"
        "from audiosaebench.cli import main\n"
        "main(['tasks', 'list'])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fidelity" in out.stdout and "higher is better" in out.stdout


def test_registry_duplicates_and_bad_entry_points(monkeypatch):
    from importlib.metadata import EntryPoint

    from audiosaebench import registry
    from audiosaebench.errors import TaskError

    eps = [EntryPoint("fidelity", "audiosaebench_tasks.fidelity:FidelityTask", registry.GROUP),
           EntryPoint("fidelity", "somewhere.else:Other", registry.GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    registry._group.cache_clear()
    try:
        with pytest.raises(TaskError, match="two tasks"):
            registry.task_names()
        eps[:] = [EntryPoint("renamed", "audiosaebench_tasks.fidelity:FidelityTask", registry.GROUP)]
        registry._group.cache_clear()
        with pytest.raises(TaskError, match="names must agree"):
            registry.get_task("renamed")
    finally:
        registry._group.cache_clear()


def test_every_task_has_complete_metadata_and_docs():
    from pathlib import Path

    from audiosaebench.registry import get_task, task_names

    root = Path(__file__).resolve().parents[1]
    for name in task_names():
        md = get_task(name).metadata
        assert md.citation.strip().startswith("@")
        doc = root / md.docs
        assert doc.exists(), f"{name}: docs page {md.docs} missing"
        assert md.main_score in doc.read_text()


def test_task_without_its_labels_writes_null_with_reason(home, tmp_path, tiny_models, toy_dir):
    sae = _sae(tmp_path, tiny_models)
    assert _eval(["--sae", str(sae), "--out", str(tmp_path / "o"), "--tasks", "phoneme_probing"], toy_dir) == 0
    (f,) = (tmp_path / "o").rglob("phoneme_probing.json")
    doc = read_result(f)
    assert doc["metrics"]["values"]["sae_top1_accuracy"] is None
    assert "no phone alignments" in doc["metrics"]["reasons"]["sae_top1_accuracy"]


def test_resume_reruns_when_the_data_changed(home, tmp_path, tiny_models, toy_dir, monkeypatch):
    from audiosaebench import evaluation
    from audiosaebench.data.suites import load_suite

    sae = _sae(tmp_path, tiny_models)
    out = tmp_path / "out"
    assert _eval(["--sae", str(sae), "--out", str(out), "--tasks", "fidelity"], toy_dir) == 0
    (f,) = out.rglob("fidelity.json")
    mtime = f.stat().st_mtime_ns
    s = load_suite("toy", toy_dir)
    m = s.splits["speech_test"]
    changed = dict(s.splits, speech_test=type(m)(m.dataset, m.split, m.version, m.clips[:-1], m.root))
    monkeypatch.setattr(evaluation, "load_suite", lambda *a, **k: type(s)(s.name, changed, s.submittable))
    assert _eval(["--sae", str(sae), "--out", str(out), "--tasks", "fidelity", "--resume"], toy_dir) == 0
    assert f.stat().st_mtime_ns != mtime
    assert read_result(f)["data"]["splits"][0]["n_clips"] == len(m) - 1


def test_stability_reports_saes_that_differ_in_more_than_seed(tmp_path, tiny_models):
    from audiosaebench.sae.loading import load_sae
    from audiosaebench_tasks.stability.compute import differences

    a = load_sae(_sae(tmp_path, tiny_models, "a"))
    b = load_sae(_sae(tmp_path, tiny_models, "b", params=fx.random_params("topk", 16, 64, seed=1)))
    c = load_sae(fx.write_saelens_v6(tmp_path / "c", "topk", fx.random_params("topk", 16, 64), k=4,
                                     model=str(tiny_models["whisper"]), hook="encoder.layers.1"))
    assert differences(a, b) == []
    assert differences(a, c) == ["k: 8 vs 4"]
    for name, steps in (("a", 100), ("b", 200)):
        (tmp_path / name / "training.json").write_text(json.dumps({"recipe": {"seed": 0, "steps": steps}, "data": []}))
    assert differences(a, b) == ["training recipe differs in steps"]


def test_alignment_across_models_uses_each_models_frames(home, tmp_path, tiny_models, toy_dir):
    """A Whisper SAE and a HuBERT SAE in one run: each is the other's partner, on frames matched by time."""
    w = _sae(tmp_path, tiny_models, "w")
    h = fx.write_saelens_v6(tmp_path / "h", "topk", fx.random_params("topk", 16, 64, seed=3), k=8,
                            model=str(tiny_models["hubert"]), hook="encoder.layers.1")
    out = tmp_path / "out"
    assert _eval(["--sae", str(w), "--sae", str(h), "--tasks", "cross_model_alignment", "--out", str(out)], toy_dir) == 0
    docs = {p.parent.name.split("-")[0]: read_result(p) for p in out.rglob("cross_model_alignment.json")}
    assert set(docs) == {"w", "h"}
    pair = docs["w"]["details"]["pairs"][0]
    assert pair["partner_model"] == str(tiny_models["hubert"]) and pair["frames"] > 0
    assert docs["w"]["partner_saes"][0]["model_id"] == str(tiny_models["hubert"])
    assert 0.0 <= docs["w"]["metrics"]["values"]["linear_cka"] <= 1.0


def test_align_frames_matches_centre_times():
    import numpy as np

    from audiosaebench_tasks.cross_model_alignment.compute import align_frames

    class Acts:
        def __init__(self, lengths):
            self.clip_ids = [f"c{i}" for i in range(len(lengths))]
            self.offsets = np.concatenate([[0], np.cumsum(lengths)])

    class Grid:
        def __init__(self, hop, offset):
            self.hop, self.offset = hop, offset

        def frame_centres_s(self, n):
            return self.offset + self.hop * np.arange(n)

    fine, coarse = Grid(0.02, 0.0125), Grid(0.04, 0.02)
    ra, rb = align_frames(Acts([10, 0, 6]), fine, Acts([5, 2, 3]), coarse)
    # every coarse frame once, paired with the fine frame nearest in time; the empty clip is skipped
    np.testing.assert_array_equal(rb, [0, 1, 2, 3, 4, 7, 8, 9])
    np.testing.assert_array_equal(ra, [0, 2, 4, 6, 8, 10, 12, 14])


def test_partner_is_compared_but_not_evaluated_and_submission_partners_are_checked(home, tmp_path, tiny_models, toy_dir,
                                                                                    capsys):
    import yaml

    from audiosaebench.sae import load_sae

    w = _sae(tmp_path, tiny_models, "w")
    h = fx.write_saelens_v6(tmp_path / "subs" / "ref-h" / "ckpt", "topk", fx.random_params("topk", 16, 64, seed=3),
                            k=8, model=str(tiny_models["hubert"]), hook="encoder.layers.1")
    out = tmp_path / "out"
    assert _eval(["--sae", str(w), "--partner", str(h), "--tasks", "cross_model_alignment", "--out", str(out)], toy_dir) == 0
    (doc,) = [read_result(p) for p in out.rglob("*.json")]  # the partner itself is not evaluated
    assert doc["partner_saes"][0]["model_id"] == str(tiny_models["hubert"])
    # a submission folder as partner: its checkpoint.location is loaded and must match sae_sha256
    meta = {"id": "ref-h", "kind": "reference", "model": {"id": str(tiny_models["hubert"])},
            "hook_point": "encoder.layers.1", "sae_sha256": load_sae(h).info.sha256, "checkpoint": {"location": "ckpt"}}
    (tmp_path / "subs" / "ref-h" / "submission.yaml").write_text(yaml.safe_dump(meta))
    # ... found by discovery in a folder of submissions (reference, other model)
    out2 = tmp_path / "out2"
    assert _eval(["--sae", str(w), "--partner", str(tmp_path / "subs"), "--tasks", "cross_model_alignment",
                  "--out", str(out2)], toy_dir) == 0
    (doc2,) = [read_result(p) for p in out2.rglob("*.json")]
    assert doc2["partner_saes"][0]["id"] == "ref-h"
    meta["sae_sha256"] = "0" * 64
    (tmp_path / "subs" / "ref-h" / "submission.yaml").write_text(yaml.safe_dump(meta))
    capsys.readouterr()
    assert _eval(["--sae", str(w), "--partner", str(tmp_path / "subs" / "ref-h"), "--tasks", "cross_model_alignment",
                  "--out", str(tmp_path / "o3")], toy_dir) != 0
    assert "not the declared sae_sha256" in capsys.readouterr().err
    meta["checkpoint"]["location"] = "rebuilt by train-reference (not uploaded)"
    (tmp_path / "subs" / "ref-h" / "submission.yaml").write_text(yaml.safe_dump(meta))
    assert _eval(["--sae", str(w), "--partner", str(tmp_path / "subs"), "--tasks", "cross_model_alignment",
                  "--out", str(tmp_path / "o4")], toy_dir) != 0
    err = capsys.readouterr().err
    assert "no loadable reference SAE" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()


def test_tasks_run_with_numpy_blas_on_one_thread_and_torch_untouched(tmp_path, tiny_models, toy_dir, monkeypatch):
    """Probe results must not depend on the core count, and torch keeps its threads."""
    import scipy.linalg  # noqa: F401 - scipy's BLAS loaded, so that "before" lists it
    from threadpoolctl import threadpool_info

    from audiosaebench import evaluation
    from audiosaebench_tasks.stability import StabilityTask

    def ours():  # the BLAS inside the numpy and scipy wheels
        return [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"
                and ("numpy" in lib["filepath"] or "scipy" in lib["filepath"])]

    seen = {}
    real_run = StabilityTask.run

    def spy(self, ctx):
        seen["blas"], seen["torch"] = ours(), torch.get_num_threads()
        return real_run(self, ctx)

    monkeypatch.setattr(StabilityTask, "run", spy)
    before, torch_threads = ours(), torch.get_num_threads()
    evaluation.evaluate([_sae(tmp_path, tiny_models)], "stability", suite="toy", data_dir=toy_dir,
                        out=tmp_path / "r", progress=False)
    assert before and [p for p, _ in seen["blas"]] == [p for p, _ in before]
    assert all(n == 1 for _, n in seen["blas"]), seen["blas"]
    assert seen["torch"] == torch_threads
    assert ours() == before  # the limit ends with the run


def test_the_tasks_of_a_run_share_sae_codes_and_write_the_same_results(home, tmp_path, tiny_models, toy_dir, monkeypatch):
    """The code memo (audiosaebench.codes.MEMO) saves encoding and changes no result."""
    from audiosaebench import evaluation
    from audiosaebench.codes import MEMO
    from audiosaebench.sae.sae import SAE

    rows = []
    encode = SAE.encode_with_state
    monkeypatch.setattr(SAE, "encode_with_state", lambda self, x: rows.append(len(x)) or encode(self, x))
    sae = _sae(tmp_path, tiny_models)
    runs = {}
    for memo_mb in ("0", "256"):
        monkeypatch.setenv("AUDIOSAEBENCH_CODE_MEMO_MB", memo_mb)
        rows.clear()
        recs = evaluation.evaluate([sae], "fidelity,phoneme_probing,coverage,disentanglement", suite="toy",
                                   data_dir=toy_dir, out=tmp_path / memo_mb, progress=False)
        runs[memo_mb] = ({r["task"]["name"]: _strip_run(r) for r in recs}, sum(rows))
        assert len(MEMO) == 0  # released when the run ends
    assert runs["256"][0] == runs["0"][0]
    assert runs["256"][1] < runs["0"][1] / 2, (runs["256"][1], runs["0"][1])
