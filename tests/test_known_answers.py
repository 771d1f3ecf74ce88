"""Known-answer tests on the mini suite with the real Whisper tiny.en (METRICS.md, last section).

A planted SAE built from the labels must score near the ceiling, identity and PCA exactly at the
fidelity ceiling, a random SAE near the floor, and planted > trained > random with non-overlapping
95% intervals on each main score.
"""

from __future__ import annotations

import numpy as np
import pytest

from audiosaebench.training import Recipe, train_topk
from tests.planted import concept_frames, planted_phone_sae, planted_sae

HOOK = "encoder.layers.2"
MODEL = "openai/whisper-tiny.en"


@pytest.fixture(scope="module")
def setup(tiny_en_dir, mini_suite):
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.baselines import identity_sae, pca_sae, random_sae
    from audiosaebench.data.suites import load_suite
    from audiosaebench.labels import frame_phone_ids
    from audiosaebench.models.loading import load_adapter
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
