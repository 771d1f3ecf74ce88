"""The output metric's readout: Whisper's decoder, or a cached linear keyword probe (encoder-only)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiosaebench import atomic, paths
from audiosaebench.errors import TaskError
from audiosaebench.hashing import sha256_json

log = logging.getLogger(__name__)
PROBE_VERSION = "2"  # 2: fitted with numpy/scipy BLAS on one thread


def surface_forms(word: str) -> list[str]:
    """How a keyword may start a Whisper transcript: " Yes", " yes", "Yes" (log-sum-exp'd)."""
    return list(dict.fromkeys([" " + word.capitalize(), " " + word, word.capitalize()]))


def whisper_readout(adapter: Any, keywords: list[str]):
    from audiosaebench.models.continuation import WhisperKeywordReadout
    from audiosaebench.models.whisper_decode import WhisperDecoder

    if adapter.source_dir is None:
        raise TaskError("causal_patching needs the Whisper model folder (tokenizer.json) for its readout")
    dec = WhisperDecoder(adapter, Path(adapter.source_dir) / "tokenizer.json")
    forms = [[dec.tok.encode(f, add_special_tokens=False).ids for f in surface_forms(w)] for w in keywords]
    return WhisperKeywordReadout(adapter.model, dec.prompt, forms), {
        "readout": "whisper teacher-forced keyword log-probability",
        "prompt_tokens": list(dec.prompt),
        "surface_forms": {w: surface_forms(w) for w in keywords},
    }


def probe_hook(adapter: Any) -> str:
    """The last hidden state: the final norm for stable-layer-norm models, else the last layer."""
    if getattr(adapter.config, "do_stable_layer_norm", False):
        return "encoder.layer_norm"
    return f"encoder.layers.{adapter.n_layers - 1}"


def probe_readout(ctx: Any, keywords: list[str], label_key: str, C: float):
    """A multinomial logistic probe on the frame-mean last hidden state, trained on commands_train
    once per (model weights, manifest, keywords, C) and cached as safetensors (never pickled)."""
    from safetensors.numpy import load_file, save_file
    from sklearn.linear_model import LogisticRegression

    from audiosaebench.models.continuation import ProbeReadout

    ad = ctx.model
    manifest = ctx.manifest("commands_train")
    hook = probe_hook(ad)
    key = sha256_json({"v": PROBE_VERSION, "model": ad.identity.weights_sha256, "adapter": ad.family,
                       "hook": hook, "manifest": manifest.sha256, "keywords": keywords, "label": label_key, "C": C})
    path = paths.home() / "probes" / f"{key}.safetensors"
    info: dict[str, Any] = {"readout": "linear keyword probe on the frame-mean last hidden state", "probe_hook": hook,
            "probe_cache_key": key}
    weights = None
    if path.exists():
        try:
            d = load_file(str(path))
            weights = d["weight"], d["bias"], float(d["train_accuracy"][0])
            if weights[0].shape != (len(keywords), ad.hidden_size):
                raise ValueError("shape")
        except Exception:  # noqa: BLE001 - a corrupt cache entry is rebuilt, never trusted
            log.warning("probe cache %s is unreadable; retraining", path)
            weights = None
    if weights is None:
        pooled = ctx.activations("commands_train", hook=hook).pooled("mean")
        labels = [c.labels.get(label_key) for c in manifest.clips]
        keep = [i for i, y in enumerate(labels) if y in keywords]
        y = np.array([keywords.index(labels[i]) for i in keep])
        if len(set(y.tolist())) < 2:
            raise TaskError(f"commands_train has fewer than two of the keywords {keywords} to train the probe")
        clf = LogisticRegression(C=C, max_iter=5000).fit(pooled[keep], y)
        w = np.zeros((len(keywords), ad.hidden_size), dtype=np.float32)
        b = np.full(len(keywords), -1e4, dtype=np.float32)  # a keyword absent from train is never predicted
        if len(clf.classes_) == 2:  # sklearn's binary form: one row
            w[clf.classes_[1]], b[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
            b[clf.classes_[0]] = 0.0
        else:
            w[clf.classes_], b[clf.classes_] = clf.coef_, clf.intercept_
        acc = float(clf.score(pooled[keep], y))
        weights = w, b, acc
        atomic.write_file(path, lambda tmp: save_file(
            {"weight": w, "bias": b, "train_accuracy": np.array([acc], dtype=np.float32)}, str(tmp)))
    info["probe_train_accuracy"] = round(weights[2], 4)
    return ProbeReadout(torch.from_numpy(weights[0]), torch.from_numpy(weights[1])).to(ad.device), info


def build_readout(ctx: Any, keywords: list[str], label_key: str, C: float):
    if ctx.model.family == "whisper":
        return whisper_readout(ctx.model, keywords)
    return probe_readout(ctx, keywords, label_key, C)
