"""Builders for test inputs: tiny models and checkpoints of every supported format.

The SAE math used to check loaders is written again independently in tests/test_sae_formats.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

WHISPER_KW = dict(
    vocab_size=120, d_model=16, encoder_layers=3, decoder_layers=1, encoder_attention_heads=2,
    decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
    max_source_positions=1500, max_target_positions=64, pad_token_id=0, bos_token_id=1,
    eos_token_id=2, decoder_start_token_id=1,
)
SSL_KW = dict(
    hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
    conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
)


def tiny_model_dirs(root: Path) -> dict[str, Path]:
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
        WhisperConfig,
        WhisperForConditionalGeneration,
    )

    torch.manual_seed(0)
    out = {}
    specs = {
        "whisper": (WhisperConfig(**WHISPER_KW), WhisperForConditionalGeneration),
        "hubert": (HubertConfig(**SSL_KW), HubertModel),
        "wav2vec2": (Wav2Vec2Config(**SSL_KW), Wav2Vec2Model),
        "wav2vec2-layer": (Wav2Vec2Config(**SSL_KW, feat_extract_norm="layer", do_stable_layer_norm=True), Wav2Vec2Model),
        "wavlm": (WavLMConfig(**SSL_KW), WavLMModel),
        "wavlm-layer": (WavLMConfig(**SSL_KW, feat_extract_norm="layer", do_stable_layer_norm=True), WavLMModel),
    }
    for name, (cfg, cls) in specs.items():
        d = root / name
        cls(cfg).save_pretrained(d)
        out[name] = d
    return out


def sharp_whisper(d_model: int, heads: int, *, encoder_layers: int, decoder_layers: int, frames: int):
    """A random-weight WhisperForConditionalGeneration (eval mode) whose weights are large enough that
    attention is far from uniform, so a wrong key or merge path cannot still match by averaging."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig(vocab_size=120, d_model=d_model, encoder_layers=encoder_layers, decoder_layers=decoder_layers,
                        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=2 * d_model,
                        decoder_ffn_dim=2 * d_model, num_mel_bins=80, max_source_positions=frames,
                        max_target_positions=40, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    torch.manual_seed(0)
    m = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


def random_params(arch: str, d_in: int, d_sae: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    p = {"W_enc": r(d_in, d_sae) * 0.3, "W_dec": r(d_sae, d_in) * 0.3, "b_dec": r(d_in) * 0.1}
    if arch == "gated":
        p.update(b_gate=r(d_sae) * 0.1, b_mag=r(d_sae) * 0.1, r_mag=r(d_sae) * 0.1)
    else:
        p["b_enc"] = r(d_sae) * 0.1
    if arch == "jumprelu":
        p["threshold"] = r(d_sae).abs() * 0.2
    return p


def write_saelens_v6(path: Path, arch: str, params: dict[str, torch.Tensor], *, k: int | None = None,
                     normalize: str = "none", model: str = "tiny-whisper", hook: str = "encoder.layers.1",
                     extra: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    d_in, d_sae = params["W_enc"].shape
    cfg = {
        "architecture": arch, "d_in": int(d_in), "d_sae": int(d_sae), "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": normalize, "reshape_activations": "none",
        "metadata": {"model_name": model, "hook_name": hook, "sae_lens_version": "6.54.12"},
    }
    if k is not None:
        cfg["k"] = k
    cfg.update(extra or {})
    save_file({n: t.contiguous() for n, t in params.items()}, str(path / "sae_weights.safetensors"))
    (path / "cfg.json").write_text(json.dumps(cfg))
    return path


def write_saelens_pre6(path: Path, params: dict[str, torch.Tensor], *, activation: str = "relu", k: int | None = None,
                       normalize: bool = False, hook: str = "blocks.1.hook_resid_post", extra_tensors: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    d_in, d_sae = params["W_enc"].shape
    cfg = {
        "model_name": "tiny-whisper", "hook_point": hook, "hook_point_layer": 1, "d_in": int(d_in),
        "d_sae": int(d_sae), "activation_fn_str": activation, "apply_b_dec_to_input": True,
        "normalize_activations": normalize, "finetuning_scaling_factor": bool(extra_tensors),
        "sae_lens_version": "4.4.0",
    }
    if k is not None:
        cfg["activation_fn_kwargs"] = {"k": k}
    tensors = {**params, **(extra_tensors or {})}
    save_file({n: t.contiguous() for n, t in tensors.items()}, str(path / "sae_weights.safetensors"))
    (path / "cfg.json").write_text(json.dumps(cfg))
    return path


def write_dictionary_learning(path: Path, params: dict[str, torch.Tensor], *, k: int | None = None,
                              threshold: float | None = None, trainer: dict | None = None) -> Path:
    """dictionary_learning AutoEncoderTopK / BatchTopKSAE layout: ae.pt + config.json."""
    path.mkdir(parents=True, exist_ok=True)
    d_in, d_sae = params["W_enc"].shape
    sd = {
        "encoder.weight": params["W_enc"].T.contiguous(), "encoder.bias": params["b_enc"],
        "decoder.weight": params["W_dec"].T.contiguous(), "b_dec": params["b_dec"],
    }
    if k is not None:
        sd["k"] = torch.tensor(k)
    if threshold is not None:
        sd["threshold"] = torch.tensor(threshold)
    torch.save(sd, path / "ae.pt")
    cfg = {"trainer": {"dict_class": "AutoEncoderTopK", "activation_dim": int(d_in), "dict_size": int(d_sae),
                       "k": k, "lm_name": "tiny-whisper", **(trainer or {})}}
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def result_doc(task: str = "fidelity", version: str | None = None, *, sae_sha: str = "a" * 64, value: float | None = 0.5,
               main: str | None = None, model: str = "openai/whisper-tiny.en", hook: str = "encoder.layers.2",
               d_sae: int = 1536, arch: str = "topk", kind: str = "submission", suite: str = "mini",
               manifest: str = "b" * 64, l0: float | None = None, limit: int | None = None) -> dict:
    """A schema-valid result document (as `evaluate` writes) without running anything."""
    from audiosaebench.hashing import sha256_json
    from audiosaebench.registry import get_task

    meta = get_task(task).metadata
    main = main or meta.main_score
    values = {main: value}
    if l0 is not None:
        values["speech_test/l0"] = l0
    config = {"seed": 0}
    return {
        "schema_version": "1.0", "kind": kind,
        "task": {"name": task, "version": version or meta.version, "main_score": main, "higher_is_better": True},
        "sae": {"id": "sae-" + sae_sha[:8], "sha256": sae_sha, "format": "saelens-v6", "architecture": arch, "d_in": 384,
                "d_sae": d_sae, "k": 32 if arch == "topk" else None, "hook_point": hook, "model_id": model},
        "model": {"id": model, "revision": None, "weights_sha256": "c" * 64, "source": "test"},
        "data": {"suite": suite, "submittable": limit is None, "resampler": "test",
                 "splits": [{"role": "speech_test", "dataset": "mini-speech", "split": "test-mini",
                             "manifest_sha256": manifest, "n_clips": 4, "n_frames": 100}]},
        "config": config, "config_sha256": sha256_json(config),
        "metrics": {"main_score": main, "values": values, "higher_is_better": {n: meta.direction(n) is not False for n in values},
                    "floor": 0.0, "ceiling": 1.0, "reasons": {} if value is not None else {main: "undefined here"}},
        "uncertainty": {"method": "test", "n": 10, "values": {main: [value - 0.1, value + 0.1]} if value is not None else {}},
        "details": {},
        "provenance": {"audiosaebench_version": "0.1.0", "git_sha": None, "python": "3.11", "torch": "2", "transformers": "5",
                       "device": "cpu", "dtypes": {"model_forward": "float32", "sae": "float32"}},
        "run": {"started": "2026-11-23T00:00:00Z", "finished": "2026-11-23T00:01:00Z", "runtime_s": 60.0, "limit": limit},
    }


def write_submission(root: Path, sub_id: str, results: list[dict], **meta_overrides) -> Path:
    """A valid submissions/<id>/ folder holding the given results."""
    import yaml

    first = results[0]
    meta = {
        "schema_version": "1.0", "id": sub_id, "kind": "baseline" if first["kind"] == "baseline" else "submission",
        "name": f"SAE {sub_id}", "authors": ["A. Author"], "contact": "a@example.org",
        "model": {"id": first["sae"]["model_id"], "revision": None}, "hook_point": first["sae"]["hook_point"],
        "architecture": first["sae"]["architecture"], "d_sae": first["sae"]["d_sae"], "sae_sha256": first["sae"]["sha256"],
        "training_data": "mini suite train splits", "checkpoint": {"location": "https://example.org/sae", "revision": None,
                                                                   "sha256": None},
        "license": "MIT", "paper": None, "bibtex": None,
    }
    meta.update(meta_overrides)
    folder = root / sub_id
    (folder / "results").mkdir(parents=True)
    (folder / "submission.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    for doc in results:
        (folder / "results" / f"{doc['task']['name']}-{doc['data']['suite']}.json").write_text(json.dumps(doc))
    return folder
