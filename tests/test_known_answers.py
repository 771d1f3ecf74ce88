"""Known-answer tests on the mini suite with the real Whisper tiny.en (METRICS.md, last section).

A planted SAE built from the labels must score near the ceiling, identity and PCA exactly at the
fidelity ceiling, a random SAE near the floor, and planted > trained > random with non-overlapping
95% intervals on each main score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audiosaebench.training import Recipe, train_topk
from tests.planted import concept_frames, planted_phone_sae, planted_sae

HOOK = "encoder.layers.2"
MODEL = "openai/whisper-tiny.en"


@pytest.fixture(scope="module")
def setup(tiny_en_dir, mini_suite):
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.suites import load_suite
    from audiosaebench.labels import frame_phone_ids
    from audiosaebench.models.loading import load_adapter
    from audiosaebench.sae.reference import identity_sae, pca_sae, random_sae
    from audiosaebench.training import TRAIN_ROLES

    ad = load_adapter(MODEL)
    suite = load_suite("mini", mini_suite[0])
    acts = {r: get_activations(ad, [HOOK], suite.split(r), progress=False)[HOOK] for r in suite.splits}
    tr = acts["speech_train"]
    x = np.asarray(tr.rows(0, tr.n_frames))
    y = frame_phone_ids(suite.split("speech_train"), tr, ad)
    x_all = np.concatenate([np.asarray(acts[r].rows(0, acts[r].n_frames)) for r in TRAIN_ROLES])
    # the reference recipe (all train splits), shortened from 1,500 steps
    trained, _ = train_topk(x_all, Recipe(k=32, expansion=4, steps=600, batch_size=512), model_id=MODEL, hook=HOOK,
                            sae_id="trained")
    xc, yc = concept_frames(suite, acts, ad)
    saes = {
        "planted": planted_phone_sae(x, y, MODEL, HOOK),
        "planted_concepts": planted_sae(xc, yc, MODEL, HOOK, sae_id="planted-concepts"),
        "trained": trained,
        "random": random_sae(384, 1536, 32, MODEL, HOOK, seed=0),
        "identity": identity_sae(384, MODEL, HOOK),
        "pca": pca_sae(x, MODEL, HOOK),
    }
    return suite, saes


def _run(setup, task, names, tmp_path, **options):
    from audiosaebench.evaluation import evaluate

    suite, saes = setup
    recs = evaluate([saes[n] for n in names], task, suite=suite, out=tmp_path, progress=False,
                    task_config={task: options} if options else None)
    return {n: r for n, r in zip(names, recs, strict=True)}


def test_phoneme_probing_planted_beats_trained_beats_random(setup, tmp_path):
    r = _run(setup, "phoneme_probing", ["planted", "trained", "random"], tmp_path)
    main = {n: r[n]["metrics"]["values"]["sae_top1_accuracy"] for n in r}
    ci = {n: r[n]["uncertainty"]["values"]["sae_top1_accuracy"] for n in r}
    dense = r["planted"]["metrics"]["values"]["dense_accuracy"]
    assert dense > 0.9  # the ceiling: phones are linearly decodable from layer 2
    assert main["planted"] > 0.8 and dense - main["planted"] < 0.15, (main, dense)
    assert ci["planted"][0] > ci["trained"][1], ci
    assert ci["trained"][0] > ci["random"][1], ci
    assert 0.5 <= main["random"] < 0.75, main  # the floor reference: chance is 0.5
    assert r["planted"]["metrics"]["ceiling"] == dense


def test_fidelity_identity_and_pca_at_ceiling_random_at_floor(setup, tmp_path):
    r = _run(setup, "fidelity", ["identity", "pca", "random", "trained"], tmp_path, splice_max_clips=8)
    ev = {n: r[n]["metrics"]["values"]["explained_variance"] for n in r}
    main = {n: r[n]["metrics"]["values"]["splice_recovered"] for n in r}
    assert main["identity"] == pytest.approx(1.0, abs=1e-4) and main["pca"] == pytest.approx(1.0, abs=1e-4)
    assert r["identity"]["metrics"]["values"]["wer_delta"] == 0.0
    assert main["random"] < 0.2 < main["trained"] < 1.0, main
    assert r["trained"]["uncertainty"]["values"]["splice_recovered"][0] > r["random"]["uncertainty"]["values"]["splice_recovered"][1]
    assert ev["identity"] == pytest.approx(1.0, abs=1e-5)
    assert ev["pca"] == pytest.approx(1.0, abs=1e-5)
    assert ev["random"] < 0.0 < ev["trained"] < 1.0, ev
    lo_t = r["trained"]["uncertainty"]["values"]["explained_variance"][0]
    hi_r = r["random"]["uncertainty"]["values"]["explained_variance"][1]
    assert lo_t > hi_r


def _main_and_ci(r, metric):
    return ({n: r[n]["metrics"]["values"][metric] for n in r}, {n: r[n]["uncertainty"]["values"][metric] for n in r})


def test_coverage_planted_beats_trained_beats_random(setup, tmp_path):
    r = _run(setup, "coverage", ["planted_concepts", "trained", "random"], tmp_path)
    main, ci = _main_and_ci(r, "mean_best_f1")
    vals = r["planted_concepts"]["metrics"]["values"]
    assert main["planted_concepts"] > 0.9 * vals["dense_mean_f1"], (main, vals["dense_mean_f1"])
    assert vals["coverage@0.5"] > 0.9
    assert ci["planted_concepts"][0] > ci["trained"][1], ci
    assert ci["trained"][0] > ci["random"][1], ci
    chance = r["random"]["metrics"]["floor"]
    assert chance == vals["chance_mean_f1"] < main["random"] < 0.5, main
    assert set(r["trained"]["details"]["per_family"]) == {"frames", "keywords", "sounds", "sex"}


def test_disentanglement_planted_beats_trained_beats_random(setup, tmp_path):
    r = _run(setup, "disentanglement", ["planted_concepts", "trained", "random"], tmp_path)
    main, ci = _main_and_ci(r, "selectivity@20")
    oracle = r["random"]["metrics"]["ceiling"]
    assert oracle > 0.3  # removing a probe's own direction must hurt that probe most
    assert main["planted_concepts"] > 0.85 * oracle, (main, oracle)
    assert ci["planted_concepts"][0] > ci["trained"][1], ci
    assert ci["trained"][0] > ci["random"][1], ci
    assert abs(main["random"]) < 0.05, main  # the floor: a random ablation hurts every probe alike
    leak = r["trained"]["metrics"]["values"]
    assert all(leak[k] is not None for k in ("leakage_phones_to_sex", "leakage_sex_to_phones")), leak


def test_phoneme_probing_references_are_cached_and_a_damaged_entry_is_refitted(setup, tmp_path, monkeypatch):
    import audiosaebench_tasks.phoneme_probing.compute as pc
    from audiosaebench import paths

    first = _run(setup, "phoneme_probing", ["random"], tmp_path / "a")["random"]
    n_phones, n_ks = len(first["details"]["phones"]), len(first["config"]["ks"])
    entries = sorted((paths.home() / "probing-cache").glob("*.json"))
    assert entries
    calls = []
    real_probe = pc._probe
    monkeypatch.setattr(pc, "_probe", lambda *a: calls.append(1) or real_probe(*a))
    again = _run(setup, "phoneme_probing", ["random"], tmp_path / "b")["random"]
    assert again["metrics"] == first["metrics"] and again["details"] == first["details"]
    assert len(calls) == n_phones * n_ks  # the SAE's probes only
    for e in entries:
        e.write_text("[]")
    calls.clear()
    refitted = _run(setup, "phoneme_probing", ["random"], tmp_path / "c")["random"]
    assert refitted["metrics"] == first["metrics"]
    assert len(calls) == n_phones * (2 * n_ks + 1)  # SAE, raw-neuron and dense probes


def test_disentanglement_raw_probes_are_cached_and_a_damaged_entry_is_refitted(setup, tmp_path, monkeypatch):
    import audiosaebench_tasks.disentanglement.compute as dc
    from audiosaebench import paths

    first = _run(setup, "disentanglement", ["random"], tmp_path / "a")["random"]["metrics"]["values"]
    entries = sorted((paths.home() / "disentanglement-cache").glob("*.json"))
    assert entries
    fits = []
    real_fit = dc._fit
    monkeypatch.setattr(dc, "_fit", lambda x, *a: fits.append(x.shape) or real_fit(x, *a))
    again = _run(setup, "disentanglement", ["random"], tmp_path / "b")["random"]["metrics"]["values"]
    assert again == first
    raw = [s for s in fits if s[1] == 384 and s[0] > 1000]  # the probes on all raw dimensions of the frames
    assert raw == [], fits
    for e in entries:
        e.write_text('{"raw_sex": "garbage"')
    fits.clear()
    refitted = _run(setup, "disentanglement", ["random"], tmp_path / "c")["random"]["metrics"]["values"]
    assert refitted == first
    assert len([s for s in fits if s[1] == 384 and s[0] > 1000]) == 2, fits


def _permuted(sae, seed: int):
    import torch

    from audiosaebench.sae.loading import weights_sha256
    from audiosaebench.sae.sae import SAE

    perm = torch.randperm(sae.d_sae, generator=torch.Generator().manual_seed(seed))
    p = {k: v.clone() for k, v in sae.params.items()}
    p["W_enc"], p["b_enc"], p["W_dec"] = p["W_enc"][:, perm], p["b_enc"][perm], p["W_dec"][perm]
    return SAE(sae.info, p).with_info(id=f"{sae.info.id}-permuted", sha256=weights_sha256(p, sae.info))


def test_stability_permuted_copy_is_perfect_and_random_pairs_are_at_the_floor(setup, tmp_path):
    from audiosaebench.evaluation import evaluate
    from audiosaebench.sae.reference import random_sae

    suite, saes = setup
    t = saes["trained"]
    perm, other_random = _permuted(t, 1), random_sae(384, 1536, 32, MODEL, HOOK, seed=7)
    same = evaluate([t, perm], "stability", suite=suite, out=tmp_path / "a", progress=False)[0]
    v = same["metrics"]["values"]
    assert v["chi_coverage@0.5"] == 1.0 and v["decoder_hungarian_fraction@0.7"] == pytest.approx(1.0)
    assert v["decoder_mnn_fraction@0.7"] == 1.0 and same["details"]["seed_only"] is True
    assert same["partner_saes"][0]["sha256"] == perm.info.sha256
    rnd = evaluate([saes["random"], other_random], "stability", suite=suite, out=tmp_path / "b", progress=False)[0]
    assert rnd["metrics"]["values"]["chi_coverage@0.5"] < 0.05
    assert rnd["metrics"]["values"]["decoder_mnn_fraction@0.7"] == 0.0
    assert v["chi_coverage@0.5_random"] < 0.05  # the floor reported beside the score
    alone = evaluate([t], "stability", suite=suite, out=tmp_path / "c", progress=False)[0]
    assert alone["metrics"]["values"]["chi_coverage@0.5"] is None
    assert "second SAE" in alone["metrics"]["reasons"]["chi_coverage@0.5"]


def test_alignment_with_a_permuted_copy_is_perfect_and_random_is_at_the_floor(setup, tmp_path):
    from audiosaebench.evaluation import evaluate
    from audiosaebench.sae.reference import random_sae

    suite, saes = setup
    t = saes["trained"]
    r = evaluate([t, _permuted(t, 2)], "cross_model_alignment", suite=suite, out=tmp_path / "a", progress=False)[0]
    v = r["metrics"]["values"]
    assert v["mutual_aligned_fraction@0.5"] == 1.0 and v["linear_cka"] == pytest.approx(1.0)
    assert v["mutual_aligned_fraction@0.5_random"] < 0.1 and r["metrics"]["floor"] == v["mutual_aligned_fraction@0.5_random"]
    rnd = evaluate([saes["random"], random_sae(384, 1536, 32, MODEL, HOOK, seed=9)], "cross_model_alignment",
                   suite=suite, out=tmp_path / "b", progress=False)[0]
    assert rnd["metrics"]["values"]["mutual_aligned_fraction@0.5"] < 0.1
    assert r["uncertainty"]["values"]["mutual_aligned_fraction@0.5"][0] > rnd["uncertainty"]["values"]["mutual_aligned_fraction@0.5"][1]


def test_autointerp_planted_beats_trained_beats_random_and_phone_features_read_as_their_phone(setup, tmp_path):
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.phones import ARPABET
    from audiosaebench.labels import frame_phone_ids
    from audiosaebench.models.loading import load_adapter
    from tests.planted import planted_phone_sae

    suite, saes = setup
    ad = load_adapter(MODEL)
    acts = {r: get_activations(ad, [HOOK], suite.split(r), progress=False)[HOOK]
            for r in ("speech_train", "nonspeech_train", "commands_train")}
    x = np.asarray(acts["speech_train"].rows(0, acts["speech_train"].n_frames))
    y = frame_phone_ids(suite.split("speech_train"), acts["speech_train"], ad)
    # phone probes that also see other audio as negatives, so each feature fires on its phone, not on tones
    others = np.concatenate([np.asarray(acts[r].rows(0, acts[r].n_frames))[::4] for r in ("nonspeech_train",)])
    planted = planted_phone_sae(x, y, MODEL, HOOK, negatives=others)
    r = _run((suite, {**saes, "planted": planted}), "autointerp", ["planted", "trained", "random"], tmp_path)
    main, ci = _main_and_ci(r, "detection_balanced_accuracy")
    assert ci["planted"][0] > ci["trained"][1], ci
    assert ci["trained"][0] > ci["random"][1], ci
    floor = r["trained"]["metrics"]["floor"]
    assert abs(floor - main["random"]) < 0.05, (floor, main)  # the reported floor is a random SAE's value
    rows = {f["feature"]: f for f in r["planted"]["details"]["features"]}  # feature i is ARPABET[i]
    own = [p for i, p in enumerate(ARPABET) if i in rows and rows[i]["level"] == "phone" and p in rows[i]["labels"]]
    assert len(own) >= 30, f"{len(own)} of {len(ARPABET)} phone features explained by their own phone: {own}"


STEERING = {"additive_alphas": []}  # the defaults but 1.1.0's additive variant, which the known answers do not read


@pytest.fixture(scope="module")
def reference(setup, mini_suite, tmp_path_factory):
    """The reference SAE as `train-reference --seeds 0` trains it (the recipe of the committed row)."""
    from audiosaebench.sae import load_sae
    from audiosaebench.training import train_reference

    (path,) = train_reference(MODEL, HOOK, tmp_path_factory.mktemp("reference"), data_dir=mini_suite[0], seeds=(0,))
    return load_sae(path)


def _padding_mean(suite, role: str) -> np.ndarray:
    """The mean hook output over the padding frames of a split's 30 s windows (the state cache's rows)."""
    from audiosaebench.activations.states import hook_states
    from audiosaebench.models.loading import load_adapter

    ad, man = load_adapter(MODEL), suite.split(role)
    total, n = np.zeros(384), 0
    for i in range(0, len(man), 8):
        batch = ad.prepare([man.load(c) for c in man.clips[i : i + 8]])
        for row, v in zip(hook_states(ad, HOOK, batch), batch.valid_frames, strict=True):
            total += row[v:].double().sum(0).numpy()
            n += row.shape[0] - v
    return total / n


def test_steering_planted_direction_near_the_ceiling_trained_above_random(setup, reference, tmp_path):
    """The ceiling is the conditional mean-difference edit; an SAE holding that direction as a feature
    comes close to it, a random SAE stays near 0, and the reference SAE lands above random."""
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.models.loading import load_adapter
    from tests.planted import planted_steering_sae

    suite, saes = setup
    r = _run((suite, {**saes, "reference": reference}), "steering", ["reference", "random"], tmp_path / "a", **STEERING)
    main, ci = _main_and_ci(r, "fpr_reduction_auc")
    ceiling = r["reference"]["metrics"]["ceiling"]
    assert ceiling == r["random"]["metrics"]["ceiling"] > 0.8, ceiling
    assert main["random"] < 0.35, main
    assert ci["reference"][0] > ci["random"][1], ci
    flagged = np.array(r["reference"]["details"]["train_false_detections"])
    ad = load_adapter(MODEL)
    ns = get_activations(ad, [HOOK], suite.split("nonspeech_train"), progress=False)[HOOK]
    sp = get_activations(ad, [HOOK], suite.split("speech_train"), progress=False)[HOOK]
    on = np.isin(ns.frame_clip_index(), flagged)
    x_ns = np.asarray(ns.rows(0, ns.n_frames))
    direction = _padding_mean(suite, "nonspeech_train") - x_ns[on].mean(0, dtype=np.float64)
    x_off = np.concatenate([x_ns[~on], np.asarray(sp.rows(0, sp.n_frames))[::4]])
    planted = planted_steering_sae(x_ns[on], x_off, direction, MODEL, HOOK)
    p = _run((suite, {"planted": planted}), "steering", ["planted"], tmp_path / "b", **STEERING)["planted"]
    assert p["details"]["features"] == [0]
    assert p["metrics"]["values"]["fpr_reduction_auc"] > 0.8 * ceiling, (p["metrics"]["values"], ceiling)


def test_causal_patching_trained_beats_random_and_every_feature_reaches_the_ceiling(setup, tmp_path):
    r = _run(setup, "causal_patching", ["trained", "identity"], tmp_path, max_pairs=12, ks=[20, 100],
             references=["random"])
    t, i = r["trained"]["metrics"]["values"], r["identity"]["metrics"]["values"]
    # k = d_sae of a lossless basis = the raw patch of every valid frame (the ceiling), up to float error
    assert i["recovery_all_features"] == pytest.approx(i["recovery_ceiling"], abs=1e-3)
    assert i["recovery_ceiling"] > 0.95  # what the padding frames (left corrupted) carry is small
    assert t["recovery_all_features"] > 0.9  # the trained SAE's error term matters little here
    # the random SAE is the floor: the trained SAE's top features recover more on the same pairs. At
    # k = 100 the paired interval is above 0 (measured [0.109, 0.244]); at k = 20 this 600-step SAE's
    # margin is positive but its interval still holds 0 on 12 pairs (measured 0.042 [-0.020, 0.098])
    gain = r["trained"]["uncertainty"]["values"]["recovery@100_gain_over_random"]
    assert gain[0] > 0, gain
    assert t["recovery@20_gain_over_random"] > 0
    assert r["trained"]["metrics"]["floor"] == t["recovery@20_random"]


def _close(a, b, abs_tol: float = 1e-6) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return b == pytest.approx(a, rel=1e-4, abs=abs_tol)
    return a == b


# Metrics that another kind of CPU moves by more than rounding: coverage's dense ceiling is the mean
# F1 of 38 lbfgs probes on dense activations, and the CPU's BLAS kernels steer their fits. Measured
# with the same code and single-threaded probes: 0.715247 on the Intel Xeon kind, 0.711121 on the
# AMD EPYC kind. On the kind that made the committed rows they are held to 1e-4 too.
OTHER_CPU_ABS = {("coverage", "dense_mean_f1"): 0.01, ("coverage", "ceiling"): 0.01}


def _same_cpu(a: dict, b: dict) -> bool:
    """The same CPU model name, and the same kernel instruction set where both rows record it."""
    isa = [p.get("cpu_capability") for p in (a, b)]
    return a.get("hardware") == b.get("hardware") and (None in isa or isa[0] == isa[1])


def _abs_tol(task: str, name: str, same_cpu: bool, other_cpu_abs: float = 1e-6) -> float:
    return 1e-6 if same_cpu else max(OTHER_CPU_ABS.get((task, name), 0.0), other_cpu_abs)


ROOT = Path(__file__).resolve().parents[1]
ROW_FIX = "regenerate the committed rows (submissions/README.md) or bump the task's version"


def _scored_like_the_row(setup, tmp_path, row: str, name: str):
    """Score ``setup``'s SAE ``name`` with each task's defaults; yield (task, result, committed result)
    once the task's version, config and data are checked to be the committed row's. The row carries
    every task; those that compare it with partner SAEs (stability, alignment) are re-evaluated with
    their partners by `submission verify` (submissions/rebuild.sh), the rest here."""
    from audiosaebench.registry import task_names

    results = ROOT / "submissions" / row / "results"
    rows = {p.name.removesuffix("-mini.json"): json.loads(p.read_text()) for p in results.glob("*-mini.json")}
    assert sorted(rows) == task_names(), f"the committed row {row} lacks tasks; {ROW_FIX}"
    for task, want in sorted(rows.items()):
        if want.get("partner_saes"):
            continue
        got = _run(setup, task, [name], tmp_path / task)[name]
        for key in ("config_sha256", "data", "task"):
            assert got[key] == want[key], f"{task}: {key} differs from the committed row {row}; {ROW_FIX}"
        yield task, got, want


def _check_committed_row(setup, tmp_path, row: str, name: str, other_cpu_abs: float = 1e-6) -> None:
    """Score ``setup``'s SAE ``name`` with each task's defaults and compare with the committed row
    (relative 1e-4, absolute 1e-6; on another CPU than the row's, absolute ``other_cpu_abs``)."""
    for task, got, want in _scored_like_the_row(setup, tmp_path, row, name):
        assert got["sae"]["sha256"] == want["sae"]["sha256"] and got["model"]["weights_sha256"] == want["model"]["weights_sha256"]
        g, w = got["metrics"]["values"], want["metrics"]["values"]
        assert set(g) == set(w), f"{task}: other metric names than the committed row {row}; {ROW_FIX}"
        same_cpu = _same_cpu(got["provenance"], want["provenance"])
        moved = {k: (w[k], g[k]) for k in w if not _close(w[k], g[k], _abs_tol(task, k, same_cpu, other_cpu_abs))}
        assert not moved, f"{task}: the committed row {row} no longer reproduces (committed, now): {moved}; {ROW_FIX}"
        for ref in ("floor", "ceiling"):
            ok = _close(want["metrics"][ref], got["metrics"][ref], _abs_tol(task, ref, same_cpu, other_cpu_abs))
            assert ok, f"{task}: {ref} of the committed row {row} moved; {ROW_FIX}"


def test_submission_verify_passes_on_the_committed_identity_row_and_fails_on_an_edited_value(setup, mini_suite,
                                                                                           tmp_path):
    """submissions/ holds rows papers cite; a change that moves their numbers must regenerate them
    (submissions/README.md) or bump the task's version. The identity baseline needs no training, so
    `submission verify` re-evaluates a copy of its row here, every task (alignment with the identity
    basis one layer up as its partner), after one value of the copy was edited: every other task
    passes (identical values on the CPU kind that made the row, each main score inside the row's 95%
    interval on another) and the edited one fails."""
    import shutil

    from audiosaebench.sae.reference import identity_sae
    from audiosaebench.sae.writing import write_saelens_v6
    from audiosaebench.verification import verify_submission

    name = "baseline-identity-whisper-tiny-en-l2"
    row = shutil.copytree(ROOT / "submissions" / name, tmp_path / "submissions" / name)
    edited = row / "results" / "disentanglement-mini.json"
    doc = json.loads(edited.read_text())
    main = doc["metrics"]["main_score"]
    doc["metrics"]["values"][main] += 0.2  # outside the row's interval as well
    doc["uncertainty"]["values"][main] = [v + 0.2 for v in doc["uncertainty"]["values"][main]]
    edited.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    sae = write_saelens_v6(identity_sae(384, MODEL, HOOK), tmp_path / "identity-l2")
    partner = write_saelens_v6(identity_sae(384, MODEL, "encoder.layers.3"), tmp_path / "identity-l3")
    record = verify_submission(row, sae, partners=[str(partner)], data_dir=str(mini_suite[0]))
    outcome = {t["task"]: t for t in record["tasks"]}
    assert sorted(outcome) == sorted(p.stem.removesuffix("-mini") for p in (row / "results").glob("*.json"))
    failed = {k: t["detail"] for k, t in outcome.items() if not t["passed"] and k != "disentanglement"}
    assert not failed, f"{failed}; {ROW_FIX}"
    assert not outcome["disentanglement"]["passed"] and not record["verified"]


def test_the_committed_reference_row_is_what_its_retrained_sae_scores(setup, reference, tmp_path):
    """The reference row's weights are not kept in git: `train-reference --seeds 0` rebuilds them bit
    for bit on the CPU kind that trained them, and another kind trains another SAE
    (docs/reproducing.md). So train-reference itself retrains it here. Where that rebuilds the row's
    SAE it is scored and compared with the row like the identity row (another CPU model that rebuilds it bit for bit gets
    1e-3: with torch's, MKL's and OpenBLAS's kernels forced to AVX2 on the machine that made the row,
    scoring the same SAE moved no metric by more than 1.6e-4). Elsewhere the recipe's SAE must land
    inside the row's 95% interval on every main score: the Intel Xeon's SAE (7669df30) and the
    second seed (a7971a40) did, each main score within 0.016 and 0.003 of the row's, while this
    module's 600-step SAE of the same recipe falls outside on splice_recovered and a random SAE on all four."""
    import yaml

    row = "reference-whisper-tiny-en-l2-topk-k32-s0"
    meta = yaml.safe_load((ROOT / "submissions" / row / "submission.yaml").read_text())
    sae = reference
    suite, saes = setup
    retrained = (suite, {**saes, "reference": sae})
    if sae.info.sha256 == meta["sae_sha256"]:
        _check_committed_row(retrained, tmp_path, row, "reference", other_cpu_abs=1e-3)
    else:
        _check_main_scores_in_row_intervals(retrained, tmp_path, row, "reference")


def _check_main_scores_in_row_intervals(setup, tmp_path, row: str, name: str) -> None:
    """Score ``setup``'s SAE ``name`` (the row's recipe, trained to other weights) with each task's
    defaults: same task versions, configs and data as the committed row, and every main score inside
    the row's 95% interval."""
    outside = {}
    for task, got, want in _scored_like_the_row(setup, tmp_path, row, name):
        main = want["metrics"]["main_score"]
        lo, hi = want["uncertainty"]["values"][main]
        if not lo <= got["metrics"]["values"][main] <= hi:
            outside[f"{task}/{main}"] = (round(lo, 4), round(hi, 4), got["metrics"]["values"][main])
    sha = setup[1][name].info.sha256
    assert not outside, (f"this CPU kind trains the reference recipe to {sha[:12]} (the row's is another CPU's), and "
                         f"its main scores fall outside the row's 95% intervals (low, high, now): {outside}; {ROW_FIX}")
