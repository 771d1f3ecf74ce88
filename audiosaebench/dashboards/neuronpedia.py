"""The Neuronpedia-shaped export: ``neuronpedia/batch-<n>.json``, SAEDashboard's batch layout
(sae-dashboard 0.8.0, ``NeuronpediaDashboardBatch.to_dict``; 128 features per file, ``n`` from 0),
validated against ``neuronpedia.schema.json``.

Audio has no tokens, so a frame stands for a token: ``tokens`` are the frames' phone labels where
the clip has a phone alignment, else the frames' times (``"1.24s"``); ``values`` the feature's
activation on those frames; ``qualifying_token_index`` the peak frame. The audio itself is a side
file named in the extra feature field ``audio_excerpts`` (one entry per activation, same order). The
fields SAEDashboard fills from a language model's unembedding (``pos_str``, ``logits_hist_*``) or
from activation correlations with neurons and features (``correlated_*_pearson``,
``correlated_neurons_*``) are empty lists; ``correlated_features_*`` hold the nearest features by
decoder cosine (SAEDashboard's ``*_l1`` fields hold cosines too).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

BATCH_FEATURES = 128
EMPTY = ("correlated_neurons_indices", "correlated_neurons_pearson", "correlated_neurons_l1",
         "correlated_features_pearson", "pos_str", "neg_str", "pos_values", "neg_values",
         "logits_hist_data_bar_values", "logits_hist_data_bar_heights", "decoder_weights_dist", "vector")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("audiosaebench.dashboards").joinpath("neuronpedia.schema.json").read_text())


def model_slug(model_id: str) -> str:
    """Neuronpedia model ids are slugs: the last part of the id, lower case, [a-z0-9._-] only."""
    return re.sub(r"[^a-z0-9._-]+", "-", str(model_id).rstrip("/").split("/")[-1].lower()).strip("-") or "model"


def layer_of(hook: str, n_layers: int) -> int:
    """The hook's block index (``encoder.layers.i`` -> i); the final layer norm counts as block ``n_layers``."""
    m = re.fullmatch(r"encoder\.layers\.(\d+)", hook)
    return int(m.group(1)) if m else int(n_layers)


def tokens(example: dict[str, Any]) -> list[str]:
    labels = example["frame_labels"].get("phone")
    if labels:
        return list(labels)
    t0, step = example["first_frame_s"], example["frame_step_s"]
    return [f"{t0 + i * step:.2f}s" for i in range(len(example["values"]))]


def activation(example: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": tokens(example), "values": example["values"], "bin_min": example["bin_min"],
            "bin_max": example["bin_max"], "bin_contains": example["bin_contains"],
            "qualifying_token_index": example["peak_index"]}


def excerpt(example: dict[str, Any]) -> dict[str, Any]:
    keys = ("audio", "spectrogram", "clip_id", "role", "start_s", "end_s", "peak_s", "peak_label")
    return {**{k: example[k] for k in keys}, "sample_rate": 16_000}


def feature_entry(doc: dict[str, Any], *, n_prompts: int, n_tokens: int, dataset: str) -> dict[str, Any]:
    """One feature of a batch, from its ``features/<index>.json`` document."""
    align = doc["neuron_alignment"]
    entry: dict[str, Any] = {
        "feature_index": doc["feature_index"],
        "neuron_alignment_indices": align["indices"], "neuron_alignment_values": align["values"],
        "neuron_alignment_l1": align["l1"],
        "correlated_features_indices": [n["feature"] for n in doc["nearest_features"]],
        "correlated_features_l1": [n["cosine"] for n in doc["nearest_features"]],
        "frac_nonzero": doc["density"]["all"],
        "freq_hist_data_bar_values": doc["histogram"]["bin_centres"],
        "freq_hist_data_bar_heights": doc["histogram"]["counts"],
        "n_prompts_total": n_prompts, "n_tokens_in_prompt": n_tokens, "dataset": dataset,
        "activations": [activation(e) for e in doc["examples"]],
        "audio_excerpts": [excerpt(e) for e in doc["examples"]],
    }
    entry.update({k: [] for k in EMPTY})
    return entry


def write_batch(folder: Path, n: int, header: dict[str, Any], entries: list[dict[str, Any]]) -> Path:
    path = folder / f"batch-{n}.json"
    folder.mkdir(parents=True, exist_ok=True)
    doc = {**header, "features": entries}
    path.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False), encoding="utf-8")
    return path
