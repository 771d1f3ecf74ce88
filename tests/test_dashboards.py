"""Feature dashboards: the streaming top-k, the files and their Neuronpedia export, the pages in
headless Chromium, bad input, the activation store's reuse, and the planted-phone known answer."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from audiosaebench.cli import main
from tests import factories as fx
from tests.test_leaderboard import _browser

HOSTILE = '<img src=x onerror="window.__pwned=1">'
HOOK = "encoder.layers.1"


# -- the streaming top-k -------------------------------------------------------------------------


def _brute_top(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the k largest values and their row ids, ties to the smaller id."""
    order = np.lexsort((np.arange(len(values))[:, None].repeat(values.shape[1], 1), -values), axis=0)[:k]
    return np.take_along_axis(values, order, 0), order


def test_streaming_topk_equals_a_full_sort_with_memory_flat_in_the_items():
    from audiosaebench.dashboards.topk import StreamingTopK

    rng = np.random.default_rng(0)
    d, n, k = 65_536, 300, 8
    values = np.where(rng.random((n, d)) < 0.1, rng.integers(1, 20, (n, d)) / 4, 0.0).astype(np.float32)  # many ties
    extra = rng.integers(0, 10**6, (n, d))
    top = StreamingTopK(k, d)
    size = top.nbytes
    assert size == k * d * (4 + 8 + 8)
    cuts = np.sort(rng.choice(np.arange(1, n), 25, replace=False))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
        top.update(torch.from_numpy(values[lo:hi]), torch.arange(lo, hi), torch.from_numpy(extra[lo:hi]))
        assert top.nbytes == size  # the state never grows with the number of items
    want_v, want_i = _brute_top(values, k)
    assert np.array_equal(top.values.numpy(), want_v)
    assert np.array_equal(top.ids.numpy(), want_i)
    assert np.array_equal(top.extra.numpy(), np.take_along_axis(extra, want_i, 0))


def test_window_maxima_whatever_the_chunking():
    from audiosaebench.dashboards.windows import WindowMaxer, clip_windows

    rng = np.random.default_rng(1)
    offsets = np.array([0, 7, 7, 61, 62, 130])  # an empty clip, a one-frame clip
    starts, ends = clip_windows(offsets, 25)
    assert (ends - starts <= 25).all() and starts[0] == 0 and ends[-1] == 130
    z = torch.from_numpy(np.where(rng.random((130, 9)) < 0.3, rng.random((130, 9)), 0.0).astype(np.float32))
    for chunk in (1, 4, 25, 64, 130):
        maxer, got_v, got_p = WindowMaxer(starts, ends, 25), [], []
        for lo in range(0, 130, chunk):
            out = maxer.feed(lo, z[lo : lo + chunk])
            if out is not None:
                assert out[0] == sum(len(v) for v in got_v)
                got_v.append(out[2])
                got_p.append(out[3])
        v, p = torch.cat(got_v), torch.cat(got_p)
        for w, (a, b) in enumerate(zip(starts, ends, strict=True)):
            assert torch.equal(v[w], z[a:b].max(0).values)
            active = v[w] > 0
            assert ((p[w] >= a) & (p[w] < b))[active].all()
            assert torch.equal(z[p[w][active], torch.nonzero(active)[:, 0]], v[w][active])


def test_detection_scores_add_precision_and_recall_to_coverages_f1():
    from scipy import sparse

    from audiosaebench.toolkit.feature_f1 import feature_detection_scores, feature_f1_scores

    rng = np.random.default_rng(2)
    z_tr, z_te = (sparse.csc_matrix(np.where(rng.random((80, 30)) < 0.3, rng.gamma(2.0, size=(80, 30)).round(1), 0.0))
                  for _ in range(2))
    y_tr, y_te = rng.random((80, 4)) < 0.3, rng.random((80, 4)) < 0.3
    got = feature_detection_scores(z_tr, y_tr, z_te, y_te)
    tr, te = feature_f1_scores(z_tr, y_tr, z_te, y_te)
    assert got["train_f1"].tobytes() == tr.tobytes() and got["f1"].tobytes() == te.tobytes()
    dense = z_te.toarray()
    for j in range(30):
        for c in range(4):
            pred = dense[:, j] > got["threshold"][c, j]
            tp = (pred & y_te[:, c]).sum()
            assert got["precision"][c, j] == pytest.approx(tp / pred.sum() if pred.sum() else 0.0, abs=1e-6)
            assert got["recall"][c, j] == pytest.approx(tp / y_te[:, c].sum() if y_te[:, c].sum() else 0.0, abs=1e-6)


# -- dashboards of a tiny random model on the toy suite, with hostile labels ----------------------


def _hostile_suite(toy_dir):
    """The toy suite with phone and word alignments on the speech clips and a hostile sound and word label."""
    from audiosaebench.data.suites import Suite, load_suite

    base = load_suite("toy", toy_dir)
    splits = {}
    for role, man in base.splits.items():
        clips = []
        for i, c in enumerate(man.clips):
            labels = dict(c.labels)
            if role.startswith("nonspeech") and i % 3 == 0:
                labels["category"] = HOSTILE
            if role.startswith("speech"):
                d = c.n_samples / 16_000
                labels.update(phones=[[0.0, d / 2, "AA"], [d / 2, d, "S"]], words=[[0.0, d, HOSTILE if i % 2 else "HELLO"]],
                              sex="F" if i % 2 else "M")
            clips.append(dataclasses.replace(c, labels=labels))
        splits[role] = dataclasses.replace(man, clips=tuple(clips))
    return Suite("toy", splits, submittable=False)


def _tiny_sae(folder: Path, whisper: Path, d_sae: int = 200, hook: str = HOOK) -> Path:
    return fx.write_saelens_v6(folder, "topk", fx.random_params("topk", 16, d_sae, seed=3), k=8, model=str(whisper), hook=hook)


@pytest.fixture(scope="module")
def toy_dashboards(tmp_path_factory, tiny_models, toy_dir):
    from audiosaebench.dashboards import build_dashboards

    root = tmp_path_factory.mktemp("dash")
    sae = _tiny_sae(root / "sae", tiny_models["whisper"])
    suite = _hostile_suite(toy_dir)
    summary = build_dashboards(str(sae), root / "out", suite=suite, progress=False, options=None)
    return root / "out", summary, suite, sae


def _docs(out: Path) -> list[dict]:
    return [json.loads((out / "features" / f"{i}.json").read_text()) for i in range(200)]


def test_feature_files_hold_what_scripts_read(toy_dashboards):
    import soundfile as sf
    from matplotlib import image

    out, summary, _, _ = toy_dashboards
    assert summary["features"] == 200 and summary["batches"] == 2
    assert (out / "index.html").exists() and (out / "feature.html").exists()
    docs = _docs(out)
    alive = [d for d in docs if d["examples"]]
    assert len(alive) > 50
    for d in alive:
        assert set(d) >= {"feature_index", "density", "examples", "top_labels", "histogram", "nearest_features", "explanation"}
        assert 0 < d["density"]["all"] <= 1 and len(d["nearest_features"]) == 5
        maxima = [e["max_value"] for e in d["examples"]]
        assert maxima == sorted(maxima, reverse=True), "examples: highest activation first"
        assert d["examples"][0]["group"] == "top" and maxima[0] == d["max_activation"]
        for e in d["examples"]:
            assert {"clip_id", "role", "start_s", "end_s", "peak_s", "max_value", "values", "frame_labels", "peak_label",
                    "audio"} <= set(e)
            assert e["start_s"] <= e["peak_s"] < e["end_s"] and e["end_s"] - e["start_s"] <= 1.0 + 1e-9
            assert e["values"][e["peak_index"]] == e["max_value"] > 0
            if e["role"] == "speech_test":
                assert e["peak_label"] == e["frame_labels"]["phone"][e["peak_index"]] and len(e["frame_labels"]["word"]) == len(e["values"])
            else:
                assert e["peak_label"] == e["clip_labels"]["sound"] and "phone" not in e["frame_labels"]
    ex = alive[0]["examples"][0]
    wave, sr = sf.read(out / ex["audio"])
    assert sr == 16_000 and abs(len(wave) / sr - (ex["end_s"] - ex["start_s"])) < 1e-3
    assert image.imread(out / ex["spectrogram"]).shape[0] == 64
    labelled = [d for d in alive if d["top_labels"]]
    assert labelled and {"level", "label", "f1", "precision", "recall", "train_f1"} <= set(labelled[0]["top_labels"][0])
    assert {lab["level"] for d in labelled for lab in d["top_labels"]} >= {"sound", "phone"}


def test_neuronpedia_export_validates_against_the_schema(toy_dashboards):
    from jsonschema import Draft202012Validator

    from audiosaebench.dashboards.neuronpedia import schema

    out = toy_dashboards[0]
    validator = Draft202012Validator(schema())
    Draft202012Validator.check_schema(schema())
    batches = sorted((out / "neuronpedia").glob("batch-*.json"))
    assert [p.name for p in batches] == ["batch-0.json", "batch-1.json"]
    features = []
    for p in batches:
        doc = json.loads(p.read_text())
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{p.name}: {errors[0].message} at {list(errors[0].absolute_path)}"
        assert doc["layer"] == 1 and doc["sae_id_suffix"] is None
        features += doc["features"]
    assert [f["feature_index"] for f in features] == list(range(200))
    assert len(json.loads(batches[0].read_text())["features"]) == 128
    docs = {d["feature_index"]: d for d in _docs(out)}
    for f in features:
        assert len(f["audio_excerpts"]) == len(f["activations"]) == len(docs[f["feature_index"]]["examples"])
        for a, x in zip(f["activations"], f["audio_excerpts"], strict=True):
            assert len(a["tokens"]) == len(a["values"]) > a["qualifying_token_index"] >= 0
            assert (out / x["audio"]).is_file()
            if x["role"] == "speech_test":
                assert a["tokens"][a["qualifying_token_index"]] == x["peak_label"]  # tokens are the frames' phones
            else:
                assert a["tokens"][0].endswith("s")  # no alignment: frame times
        top = [a for a in f["activations"] if a["bin_min"] == -1]
        assert all(a["bin_contains"] == -1 and a["bin_max"] == docs[f["feature_index"]]["max_activation"] for a in top)
    # a missing required field or an empty values list is caught
    broken = json.loads(batches[0].read_text())
    del broken["features"][0]["frac_nonzero"]
    assert not validator.is_valid(broken)
    broken = json.loads(batches[0].read_text())
    next(f for f in broken["features"] if f["activations"])["activations"][0]["values"] = []
    assert not validator.is_valid(broken)


def test_same_inputs_give_the_same_files(toy_dashboards, tmp_path):
    from audiosaebench.dashboards import build_dashboards

    out, _, suite, sae = toy_dashboards
    build_dashboards(str(sae), tmp_path / "again", suite=suite, progress=False)
    a = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    b = sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    assert a == b
    assert all((out / p).read_bytes() == (tmp_path / "again" / p).read_bytes() for p in a)
    # --overwrite replaces an earlier dashboards folder whole: nothing of the old one is left
    build_dashboards(str(sae), tmp_path / "again", suite=suite, features="3,", overwrite=True, progress=False)
    assert [p.name for p in (tmp_path / "again" / "features").iterdir()] == ["3.json"]


def test_hostile_labels_reach_the_pages_only_as_escaped_text(toy_dashboards):
    out = toy_dashboards[0]
    index = (out / "index.html").read_text()
    assert "<img src=x" not in index and "\\u003cimg src=x" in index  # the best-label column holds it, escaped
    assert "<img src=x" not in (out / "feature.html").read_text()
    assert any(e["peak_label"] == HOSTILE for d in _docs(out) for e in d["examples"])
    assert all("<" not in p.name and '"' not in p.name for p in out.rglob("*"))  # clip ids never name files


@pytest.fixture
def served(toy_dashboards):
    out = toy_dashboards[0]
    handler = functools.partial(QuietHandler, directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", out
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _wait(drv, script: str, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout).until(lambda d: d.execute_script(script))


def test_pages_in_headless_chromium(served):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    base, out = served
    docs = _docs(out)
    hostile = next(d for d in docs if any(e["peak_label"] == HOSTILE for e in d["examples"]))
    drv = _browser()
    try:
        drv.get(base + "/index.html")
        rows = drv.find_elements(By.CSS_SELECTOR, "#features tbody tr")
        assert len(rows) == 100  # a page at a time
        assert "of 200" in drv.find_element(By.ID, "range").text
        head = next(th for th in drv.find_elements(By.CSS_SELECTOR, "#features thead th") if th.get_attribute("data-key") == "max")
        head.find_element(By.TAG_NAME, "button").click()
        shown = [int(r.get_attribute("data-feature")) for r in drv.find_elements(By.CSS_SELECTOR, "#features tbody tr")]
        want = sorted(range(200), key=lambda i: (-docs[i]["max_activation"], i))[:100]
        assert shown == want
        head = next(th for th in drv.find_elements(By.CSS_SELECTOR, "#features thead th") if th.get_attribute("data-key") == "max")
        assert head.get_attribute("aria-sort") == "descending"
        drv.find_element(By.ID, "filter").send_keys(HOSTILE[:4])
        filtered = drv.find_elements(By.CSS_SELECTOR, "#features tbody tr")
        cells = [r.find_elements(By.TAG_NAME, "td")[6].text for r in filtered]
        assert cells and any(c in (f"sound: {HOSTILE}", f"word: {HOSTILE}") for c in cells), cells  # rendered as text
        drv.get(f"{base}/feature.html#{hostile['feature_index']}")
        _wait(drv, "const i = document.querySelector('img.spectrogram'); return i && i.complete && i.naturalWidth > 0;")
        _wait(drv, "const a = document.querySelector('audio'); return a && a.readyState >= 1 && a.duration > 0;")
        peaks = [e.text for e in drv.find_elements(By.CSS_SELECTOR, "figcaption .peak")]
        assert HOSTILE in peaks
        assert drv.execute_script("return window.__pwned === undefined && !document.querySelector('figcaption img');")
        with pytest.raises(NoAlertPresentException):
            drv.switch_to.alert.text  # noqa: B018
        errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
    finally:
        drv.quit()


# -- explanations and the leaderboard link ------------------------------------------------------


def _autointerp(sha: str, rows: list[dict]) -> dict:
    from audiosaebench.hashing import sha256_json

    doc = fx.result_doc("coverage", sae_sha=sha, value=0.7)
    doc["task"] = {"name": "autointerp", "version": "1.0.0", "main_score": "detection_balanced_accuracy",
                   "higher_is_better": True}
    doc["metrics"].update(main_score="detection_balanced_accuracy", values={"detection_balanced_accuracy": 0.7},
                          higher_is_better={"detection_balanced_accuracy": True}, reasons={})
    doc["uncertainty"]["values"] = {}
    doc["details"] = {"features": rows}
    doc["config_sha256"] = sha256_json(doc["config"])
    return doc


def test_autointerp_explanations_are_shown_and_must_be_of_this_sae(toy_dashboards, tmp_path):
    from audiosaebench.dashboards import build_dashboards
    from audiosaebench.sae import load_sae

    _, _, suite, sae = toy_dashboards
    sha = load_sae(str(sae)).info.sha256
    rows = [{"feature": 2, "level": "sound", "labels": ["noise"], "train_f1": 0.8, "text": "fires on " + HOSTILE,
             "balanced_accuracy": 0.91, "f1": 0.8, "auroc": 0.95}]
    (tmp_path / "ai.json").write_text(json.dumps(_autointerp(sha, rows)))
    build_dashboards(str(sae), tmp_path / "out", suite=suite, features="2,5", autointerp=tmp_path / "ai.json", progress=False)
    doc = json.loads((tmp_path / "out" / "features" / "2.json").read_text())
    assert doc["explanation"]["text"] == "fires on " + HOSTILE and doc["explanation"]["balanced_accuracy"] == 0.91
    assert json.loads((tmp_path / "out" / "features" / "5.json").read_text())["explanation"]["source"] == "best label"
    assert sorted(p.name for p in (tmp_path / "out" / "features").iterdir()) == ["2.json", "5.json"]
    (tmp_path / "other.json").write_text(json.dumps(_autointerp("9" * 64, rows)))
    with pytest.raises(Exception, match="another SAE"):
        build_dashboards(str(sae), tmp_path / "o2", suite=suite, autointerp=tmp_path / "other.json", progress=False)
    assert not (tmp_path / "o2").exists()


def test_leaderboard_links_the_entry_to_its_dashboards(toy_dashboards, tmp_path):
    import re

    from audiosaebench.sae import load_sae

    out, _, _, sae = toy_dashboards
    sha = load_sae(str(sae)).info.sha256
    subs = tmp_path / "submissions"
    fx.write_submission(subs, "mine", [fx.result_doc("fidelity", sae_sha=sha, value=0.8)])
    fx.write_submission(subs, "other", [fx.result_doc("fidelity", sae_sha="7" * 64, value=0.6)])
    site = tmp_path / "board"
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(site), "--dashboards", str(out)]) == 0
    page = (site / "index.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', page, re.S).group(1))
    (href,) = data["dashboards"].values()
    assert list(data["dashboards"]) == [sha] and href.startswith(("./", "../"))
    assert (site / href).resolve() == (out / "index.html").resolve()
    assert "dashboards" not in json.loads((site / "data.json").read_text())  # the page's link only
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(tmp_path / "b2"),
                 "--dashboards", str(tmp_path)]) == 2  # not a dashboards folder


# -- bad input: one line, nothing written ---------------------------------------------------------


@pytest.mark.parametrize("case", ["feature out of range", "feature list out of range", "out not empty",
                                  "overwrite a foreign folder", "missing hook"])
def test_bad_input_is_one_line_and_writes_nothing(case, tiny_models, toy_dir, tmp_path, capsys):
    hook = "encoder.layers.7" if case == "missing hook" else HOOK
    sae = _tiny_sae(tmp_path / "sae", tiny_models["whisper"], d_sae=64, hook=hook)
    out = tmp_path / "out"
    features = {"feature out of range": "65", "feature list out of range": "3,64"}.get(case, "all")
    if case in ("out not empty", "overwrite a foreign folder"):
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    rc = main(["dashboards", "--sae", str(sae), "--suite", "toy", "--data-dir", str(toy_dir), "--features", features,
               "--out", str(out), "--no-progress", *(["--overwrite"] if case == "overwrite a foreign folder" else [])])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("audiosaebench: error:"), err
    want = {"feature out of range": "the SAE has 64 features", "feature list out of range": "feature index 64 is out of range",
            "out not empty": "not empty", "overwrite a foreign folder": "not a dashboards folder",
            "missing hook": "does not exist"}[case]
    assert want in err
    if case in ("out not empty", "overwrite a foreign folder"):
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary folder left


def test_a_run_after_evaluate_reuses_the_activation_store(home, tiny_models, toy_dir, tmp_path, monkeypatch, capsys):
    from audiosaebench.activations import extract

    sae = _tiny_sae(tmp_path / "sae", tiny_models["whisper"], d_sae=64)
    assert main(["evaluate", "--sae", str(sae), "--tasks", "coverage", "--suite", "toy", "--data-dir", str(toy_dir),
                 "--out", str(tmp_path / "results"), "--no-progress"]) == 0

    def no_extraction(*args, **kwargs):
        raise AssertionError("dashboards extracted activations the store holds")

    monkeypatch.setattr(extract, "_extract_into", no_extraction)
    assert main(["dashboards", "--sae", str(sae), "--suite", "toy", "--data-dir", str(toy_dir), "--out",
                 str(tmp_path / "dash"), "--features", "10", "--no-progress"]) == 0
    assert "wrote dashboards of 10 features" in capsys.readouterr().out
    assert len(list((tmp_path / "dash" / "features").iterdir())) == 10


# -- known answer: planted phone features on the real Whisper tiny.en ------------------------------


def _phone_segments(manifest) -> dict[str, int]:
    from audiosaebench.data.phones import ARPABET, from_mfa

    n: dict[str, int] = {}
    for clip in manifest.clips:
        for _, _, p in clip.labels.get("phones", []):
            q = from_mfa(str(p))
            if q in ARPABET:
                n[q] = n.get(q, 0) + 1
    return n


def _purity(out: Path, features: list[int], n_phone: dict[str, int], phone_of=None) -> dict[int, tuple[str, float]]:
    """Per feature: (phone, share of its first min(20, n_P) examples whose peak label is that phone);
    the phone is ``phone_of[j]`` (planted) or the feature's most common peak label."""
    from collections import Counter

    got = {}
    for j in features:
        labels = [e["peak_label"] for e in json.loads((out / "features" / f"{j}.json").read_text())["examples"]]
        p = phone_of[j] if phone_of else (Counter(labels).most_common(1)[0][0] if labels else "")
        m = min(20, n_phone.get(p, 0))
        got[j] = (p, sum(lab == p for lab in labels[:m]) / m if m else 0.0)
    return got


@pytest.mark.slow
def test_planted_phone_features_peak_on_their_phone_and_random_ones_do_not(tiny_en_dir, mini_suite, tmp_path):
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.dashboards import build_dashboards
    from audiosaebench.data.phones import ARPABET
    from audiosaebench.data.suites import load_suite
    from audiosaebench.labels import frame_phone_ids
    from audiosaebench.models.loading import load_adapter
    from audiosaebench.sae.reference import random_sae
    from audiosaebench.sae.writing import write_saelens_v6
    from tests.planted import planted_phone_sae

    model, hook = "openai/whisper-tiny.en", "encoder.layers.2"
    ad, suite = load_adapter(model), load_suite("mini")
    train = get_activations(ad, [hook], suite.split("speech_train"), progress=False)[hook]
    planted = planted_phone_sae(np.asarray(train.rows(0, train.n_frames)), frame_phone_ids(suite.split("speech_train"), train, ad),
                                model, hook)
    n_phone = _phone_segments(suite.split("speech_test"))
    runs = {}
    for name, sae in (("planted", planted), ("random", random_sae(384, 1536, 32, model, hook, seed=0))):
        folder = write_saelens_v6(sae, tmp_path / name)
        runs[name] = build_dashboards(str(folder), tmp_path / f"dash-{name}", features="39", progress=False,
                                      options=_speech_label_options())
    planted_purity = _purity(tmp_path / "dash-planted", list(range(39)), n_phone, dict(enumerate(ARPABET)))
    passed = [ARPABET[j] for j, (_, share) in planted_purity.items() if share >= 0.8]
    assert len(passed) >= 30, planted_purity
    random_purity = _purity(tmp_path / "dash-random", list(range(39)), n_phone)
    assert sum(share >= 0.8 for _, share in random_purity.values()) < 10, random_purity
    # the label a planted feature predicts best is its phone
    best = [json.loads((tmp_path / "dash-planted" / "features" / f"{j}.json").read_text())["top_labels"][:1] for j in range(39)]
    hits = sum(bool(b) and b[0]["level"] == "phone" and b[0]["label"] == ARPABET[j] for j, b in enumerate(best))
    assert hits >= 30, best


def _speech_label_options():
    from audiosaebench.dashboards.build import Options

    return Options(label_splits=("speech",))  # the speech splits only: the known answer reads phones
