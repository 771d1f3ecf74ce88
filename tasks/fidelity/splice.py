"""fidelity, model part: splice the SAE reconstruction into the model (README.md in this folder)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from audiosaebench.activations.states import continuation_states
from audiosaebench.toolkit import finite_or_none, percentile_interval


def _conditions(sae, mean: torch.Tensor) -> dict[str, Callable[[torch.Tensor], torch.Tensor] | None]:
    from audiosaebench.codes import chunk_rows_for

    rows = chunk_rows_for(sae)

    def splice(h: torch.Tensor) -> torch.Tensor:
        # chunked over frames: never a [batch x 1500 x d_sae] code tensor
        flat = h.reshape(-1, h.shape[-1]).to(torch.float32)
        out = torch.empty_like(flat)
        for i in range(0, flat.shape[0], rows):
            out[i : i + rows] = sae(flat[i : i + rows])
        return out.reshape(h.shape).to(h.dtype)

    return {
        "clean": None,
        "sae": splice,
        "zero": lambda h: torch.zeros_like(h),
        "mean": lambda h: mean.to(h.device, h.dtype).expand_as(h),
    }


def _ratio(num, den) -> float | None:
    return float(num / den) if den else None


def _recovered(ce: dict[str, np.ndarray], ntok: np.ndarray, ablation: str, pick=None) -> float | None:
    s = (lambda a: a.sum()) if pick is None else (lambda a: a[pick].sum())
    n = s(ntok)
    c, m, a = s(ce["clean"]) / n, s(ce["sae"]) / n, s(ce[ablation]) / n
    return _ratio(a - m, a - c)


# 2: conditions run from the cached hook output; 3: LM head as W @ h.T; 4: finished rows leave the
# decode batch; 5: the harness's text decoder (audiosaebench.models.whisper_text_decoder); 6: the zero and
# mean conditions run the first layer above the hook from its unchanged frames (models.unedited_frames_memo);
# 7: each clip decodes up to a limit set by its length (task 1.1.0)
SPLICE_CACHE_VERSION = 7
_SHARED = ("clean", "zero", "mean")  # conditions that do not depend on the SAE


def _cache_path(ad, hook: str, manifest, mean: torch.Tensor, cfg: dict):
    from audiosaebench import paths
    from audiosaebench.hashing import sha256_bytes, sha256_json

    key = sha256_json({
        "v": SPLICE_CACHE_VERSION, "model": ad.identity.to_dict(), "dtype": str(ad.dtype), "hook": hook,
        "manifest": manifest.sha256, "max_clips": cfg["splice_max_clips"],
        "tokens": [cfg["tokens_per_second"], cfg["min_token_limit"], cfg["max_new_tokens"]],
        "mean": sha256_bytes(mean.numpy().tobytes()),
    })
    return paths.home() / "splice-cache" / f"{key}.json"


def _load_shared(path) -> dict | None:
    import json

    try:
        d = json.loads(path.read_text())
        return {"ce": {k: np.array(v) for k, v in d["ce"].items()}, "ntok": np.array(d["ntok"]), "hyps": d["hyps"]}
    except (OSError, ValueError, KeyError):
        return None


def _save_shared(path, ce: dict, ntok: np.ndarray, hyps: list[str]) -> None:
    import json

    from audiosaebench import atomic

    atomic.write_text(path, json.dumps({"ce": {k: ce[k].tolist() for k in _SHARED}, "ntok": ntok.tolist(), "hyps": hyps}))


@dataclass
class Splice:
    """The splice's metric values and intervals, or the reason none could be computed, and details."""

    values: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Runs:
    """Per clip: teacher-forced cross-entropy under each condition, token counts, greedy transcripts."""

    ce: dict[str, np.ndarray]
    ntok: np.ndarray
    hyps: dict[str, list[str]]


def _teacher_forced(dec, tok, refs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (prompt + reference + end of text, padded) and the mask of the predicted positions."""
    texts = [" " + t.strip().lower().capitalize() for t in refs]
    seqs = [dec.prompt + tok.encode(t, add_special_tokens=False).ids + [dec.eot] for t in texts]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), dec.eot, dtype=torch.long)
    mask = torch.zeros(len(seqs), width - 1, dtype=torch.bool)
    for j, s in enumerate(seqs):
        ids[j, : len(s)] = torch.tensor(s)
        mask[j, len(dec.prompt) - 1 : len(s) - 1] = True
    return ids, mask


def _run_conditions(ad, cont, dec, tok, clips, manifest, conds, refs, limits, bs: int) -> _Runs:
    """Every condition on every batch, from the clean hook output on all frames (cached on disk). The
    greedy decode goes on from the teacher-forced pass's encoder memory (the same encoder output)."""
    runs = _Runs({k: np.zeros(len(clips)) for k in ("clean", "sae", "zero", "mean")}, np.zeros(len(clips)),
                 {"clean": [], "sae": []})
    keep = sum(fn is not None for fn in conds.values()) > 1  # a warm run edits each batch once
    for i in range(0, len(clips), bs):
        batch = ad.prepare([manifest.load(c) for c in clips[i : i + bs]])
        states = continuation_states(cont, batch)
        ids, mask = _teacher_forced(dec, tok, refs[i : i + bs])
        runs.ntok[i : i + len(ids)] = mask.sum(1).numpy()
        for name, fn in conds.items():
            with torch.no_grad():
                with cont.replace_output(fn, batch.valid_frames, keep) if fn is not None else contextlib.nullcontext():
                    enc = cont(states)
                memory = dec.text_decoder.memory(enc)
                logits = ad.model.proj_out(dec.text_decoder(ids[:, :-1].to(ad.device), memory)).float()
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:].to(ad.device), reduction="none")
                runs.ce[name][i : i + len(ids)] = (nll.cpu() * mask).sum(1).numpy()
                if name in runs.hyps:
                    runs.hyps[name] += dec.decode_encoder_states(enc, limits[i : i + bs], memory)
        cont.forget_edits()  # the next batch's conditions edit other states
    return runs


def _whisper_values(runs: _Runs, refs: list[str], n_boot: int, rng) -> tuple[dict, dict]:
    from audiosaebench.models.whisper_decode import corpus_wer

    ce, ntok = runs.ce, runs.ntok
    values = {
        "loss_recovered": _recovered(ce, ntok, "zero"),
        "loss_recovered_mean_ablation": _recovered(ce, ntok, "mean"),
        **{f"ce_{k}": float(ce[c].sum() / ntok.sum()) for k, c in
           (("clean", "clean"), ("sae", "sae"), ("zero_ablation", "zero"), ("mean_ablation", "mean"))},
        "wer_clean": corpus_wer(refs, runs.hyps["clean"]),
        "wer_sae": corpus_wer(refs, runs.hyps["sae"]),
    }
    values["wer_delta"] = (values["wer_sae"] - values["wer_clean"]
                           if values["wer_sae"] is not None and values["wer_clean"] is not None else None)
    n = len(ntok)
    boots = [_recovered(ce, ntok, "zero", rng.integers(0, n, n)) for _ in range(n_boot)]
    b = [x for x in boots if x is not None and np.isfinite(x)]
    return {k: finite_or_none(v) for k, v in values.items()}, ({"loss_recovered": percentile_interval(b)} if b else {})


def _splice_clips(manifest, cfg: dict) -> tuple[list, int]:
    """The clips that fit one 30 s window (at most ``splice_max_clips``), and how many do not: the
    reference transcript is of the whole clip and cannot be split between windows."""
    from audiosaebench.models.frames import WHISPER_WINDOW_SAMPLES

    fits = [c for c in manifest.clips if c.n_samples <= WHISPER_WINDOW_SAMPLES]
    return (fits[: int(cfg["splice_max_clips"])] if cfg["splice_max_clips"] else fits), len(manifest.clips) - len(fits)


def whisper_splice(ctx, manifest, hook: str, mean: torch.Tensor, cfg: dict, rng) -> Splice:
    """Teacher-forced CE and greedy WER under clean / SAE splice / zero / mean ablation.

    Every condition runs only the layers above the hook, from the clean hook output on all frames
    (computed once per batch and kept in the state cache); the condition edits its valid frames.
    The clean, zero- and mean-ablation runs do not depend on the SAE: they are computed once per
    (model, hook, manifest, options) and cached under $AUDIOSAEBENCH_HOME/splice-cache.
    """
    from tokenizers import Tokenizer
    from torch import nn

    from audiosaebench.models.continuation import Continuation
    from audiosaebench.models.frames import SAMPLE_RATE
    from audiosaebench.models.whisper_decode import WhisperDecoder, token_limits

    ad, sae = ctx.model, ctx.sae
    tok_file = ad.source_dir / "tokenizer.json" if ad.source_dir is not None else None
    if tok_file is None or not tok_file.exists():
        return Splice(reason="no tokenizer.json next to the model")
    clips, too_long = _splice_clips(manifest, cfg)
    if not clips:
        return Splice(reason=f"no clip of {manifest.name} fits one 30 s Whisper window",
                      details={"splice_clips": 0, "splice_clips_too_long": too_long})
    dec = WhisperDecoder(ad, tok_file)
    conds = _conditions(sae, mean)
    cache = _cache_path(ad, hook, manifest, mean, cfg)
    shared = _load_shared(cache)
    if shared is not None and len(shared["ntok"]) == len(clips):
        conds = {"sae": conds["sae"]}
    refs = [c.labels.get("text", "") for c in clips]
    limits = token_limits([c.n_samples / SAMPLE_RATE for c in clips], float(cfg["tokens_per_second"]),
                          int(cfg["min_token_limit"]), int(cfg["max_new_tokens"]))
    cont = Continuation(ad, hook, nn.Identity(), start="output")
    runs = _run_conditions(ad, cont, dec, Tokenizer.from_file(str(tok_file)), clips, manifest, conds, refs, limits,
                           int(cfg["splice_batch_size"]))
    if "clean" in conds:
        _save_shared(cache, runs.ce, runs.ntok, runs.hyps["clean"])
    else:
        assert shared is not None  # the shared conditions were left out because they were cached
        for k in _SHARED:
            runs.ce[k] = shared["ce"][k]
        runs.hyps["clean"] = list(shared["hyps"])
    values, intervals = _whisper_values(runs, refs, int(cfg["bootstrap_resamples"]), rng)
    details = {"splice_clips": len(clips), "splice_tokens": int(runs.ntok.sum()), "splice_clips_too_long": too_long,
               "examples": [{"ref": r, "clean": h0, "sae": h1} for r, h0, h1 in
                            list(zip(refs, runs.hyps["clean"], runs.hyps["sae"], strict=True))[:5]]}
    return Splice(values, intervals, None, details)


def _encoder_errors(ad, sae, hook: str, clips, manifest, last: str, bs: int) -> dict[str, np.ndarray]:
    """Per clip: squared error at the last layer under the SAE splice and under zero ablation."""
    conds = {k: v for k, v in _conditions(sae, torch.zeros(ad.hidden_size)).items() if k in ("clean", "sae", "zero")}
    err = {"sae": np.zeros(len(clips)), "zero": np.zeros(len(clips))}
    waves = [manifest.load(c) for c in clips]
    for group in ad.batch_groups([len(w) for w in waves]):
        for start in range(0, len(group), bs):
            idx = group[start : start + bs]
            batch = ad.prepare([waves[j] for j in idx])
            out = {}
            for name, fn in conds.items():
                with ad.replace_output(hook, fn, batch.valid_frames) if fn is not None else contextlib.nullcontext():
                    out[name] = ad.activations(batch, [last])[last]
            for r, j in enumerate(idx):
                vf = batch.valid_frames[r]
                c = out["clean"][r, :vf].double()
                for name in err:
                    err[name][j] = float(((out[name][r, :vf].double() - c) ** 2).sum())
    return err


def encoder_splice(ctx, manifest, hook: str, cfg: dict, rng) -> Splice:
    """Representation recovered at the last encoder layer (encoder-only models)."""
    ad, sae = ctx.model, ctx.sae
    last = f"encoder.layers.{ad.n_layers - 1}"
    clips = list(manifest.clips)[: int(cfg["splice_max_clips"])] if cfg["splice_max_clips"] else list(manifest.clips)
    err = _encoder_errors(ad, sae, hook, clips, manifest, last, int(cfg["splice_batch_size"]))
    rr = 1 - err["sae"].sum() / err["zero"].sum() if err["zero"].sum() else None
    boots = []
    n = len(clips)
    for _ in range(int(cfg["bootstrap_resamples"])):
        pick = rng.integers(0, n, n)
        z = err["zero"][pick].sum()
        if z:
            boots.append(1 - err["sae"][pick].sum() / z)
    intervals = {"representation_recovered": percentile_interval(boots)} if boots else {}
    return Splice({"representation_recovered": finite_or_none(rr)}, intervals, None,
                  {"splice_clips": n, "splice_layer": last})
