"""fidelity, model part: splice the SAE reconstruction into the model (README.md in this folder)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from audiosaebench.hashing import finite_or_none


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
# mean conditions run the first layer above the hook from its unchanged frames (models.unchanged_tail);
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

    from audiosaebench.cache import atomic_write

    text = json.dumps({"ce": {k: ce[k].tolist() for k in _SHARED}, "ntok": ntok.tolist(), "hyps": hyps})
    atomic_write(path, lambda tmp: tmp.write_text(text))


def whisper_splice(ctx, manifest, hook: str, mean: torch.Tensor, cfg: dict, rng) -> tuple[dict, dict, dict, dict]:
    """Teacher-forced CE and greedy WER under clean / SAE splice / zero / mean ablation.

    Every condition runs only the layers above the hook, from the clean hook output on all frames
    (computed once per batch and kept in the state cache); the condition edits its valid frames.
    The clean, zero- and mean-ablation runs do not depend on the SAE: they are computed once per
    (model, hook, manifest, options) and cached under $AUDIOSAEBENCH_HOME/splice-cache.
    """
    from tokenizers import Tokenizer
    from torch import nn

    from audiosaebench.models.continuation import Continuation
    from audiosaebench.models.frames import SAMPLE_RATE, WHISPER_WINDOW_SAMPLES
    from audiosaebench.models.whisper_decode import WhisperDecoder, corpus_wer, token_limits

    ad, sae = ctx.model, ctx.sae
    tok_file = ad.source_dir / "tokenizer.json" if ad.source_dir is not None else None
    if tok_file is None or not tok_file.exists():
        reason = "no tokenizer.json next to the model"
        return {}, {}, {"loss_recovered": reason}, {}
    # the reference transcript is of the whole clip and cannot be split between 30 s windows: a clip
    # longer than one window is left out of the splice (LibriSpeech test-clean has some up to 35 s)
    fits = [c for c in manifest.clips if c.n_samples <= WHISPER_WINDOW_SAMPLES]
    too_long = len(manifest.clips) - len(fits)
    clips = fits[: int(cfg["splice_max_clips"])] if cfg["splice_max_clips"] else fits
    if not clips:
        return {}, {}, {"loss_recovered": f"no clip of {manifest.name} fits one 30 s Whisper window"}, {
            "splice_clips": 0, "splice_clips_too_long": too_long}
    dec = WhisperDecoder(ad, tok_file)
    tok = Tokenizer.from_file(str(tok_file))
    conds = _conditions(sae, mean)
    cache = _cache_path(ad, hook, manifest, mean, cfg)
    shared = _load_shared(cache)
    if shared is not None and len(shared["ntok"]) == len(clips):
        conds = {"sae": conds["sae"]}
    ce = {k: np.zeros(len(clips)) for k in ("clean", "sae", "zero", "mean")}
    ntok = np.zeros(len(clips))
    hyps: dict[str, list[str]] = {"clean": [], "sae": []}
    refs = [c.labels.get("text", "") for c in clips]
    limits = token_limits([c.n_samples / SAMPLE_RATE for c in clips], float(cfg["tokens_per_second"]),
                          int(cfg["min_token_limit"]), int(cfg["max_new_tokens"]))
    bs = int(cfg["splice_batch_size"])
    model = ad.model
    cont = Continuation(ad, hook, nn.Identity(), start="output")
    reused = sum(fn is not None for fn in conds.values()) > 1  # a warm run edits each batch once
    for i in range(0, len(clips), bs):
        waves = [manifest.load(c) for c in clips[i : i + bs]]
        batch = ad.prepare(waves)
        states = cont.states(batch)  # the clean hook output on all frames (cached on disk)
        texts = [" " + t.strip().lower().capitalize() for t in refs[i : i + bs]]
        seqs = [dec.prompt + tok.encode(t, add_special_tokens=False).ids + [dec.eot] for t in texts]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), dec.eot, dtype=torch.long)
        mask = torch.zeros(len(seqs), width - 1, dtype=torch.bool)
        for j, s in enumerate(seqs):
            ids[j, : len(s)] = torch.tensor(s)
            mask[j, len(dec.prompt) - 1 : len(s) - 1] = True
        ntok[i : i + len(seqs)] = mask.sum(1).numpy()
        for name, fn in conds.items():
            with torch.no_grad():
                with cont.replace_output(fn, batch.valid_frames, reused) if fn is not None else contextlib.nullcontext():
                    enc = cont(states)
                memory = dec.text_decoder.memory(enc)
                logits = model.proj_out(dec.text_decoder(ids[:, :-1].to(ad.device), memory)).float()
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:].to(ad.device), reduction="none")
                ce[name][i : i + len(seqs)] = (nll.cpu() * mask).sum(1).numpy()
                if name in hyps:
                    # the decode attends to the same encoder output: it goes on from the teacher-forced
                    # pass's encoder memory (its count of queries, and keys/values if it projected them)
                    hyps[name] += dec.decode_encoder_states(enc, limits[i : i + bs], memory)
        cont.forget_edits()  # the next batch's conditions edit other states
    if "clean" in conds:
        _save_shared(cache, ce, ntok, hyps["clean"])
    else:
        for k in _SHARED:
            ce[k] = shared["ce"][k]
        hyps["clean"] = list(shared["hyps"])
    values = {
        "loss_recovered": _recovered(ce, ntok, "zero"),
        "loss_recovered_mean_ablation": _recovered(ce, ntok, "mean"),
        "ce_clean": float(ce["clean"].sum() / ntok.sum()),
        "ce_sae": float(ce["sae"].sum() / ntok.sum()),
        "ce_zero_ablation": float(ce["zero"].sum() / ntok.sum()),
        "ce_mean_ablation": float(ce["mean"].sum() / ntok.sum()),
        "wer_clean": corpus_wer(refs, hyps["clean"]),
        "wer_sae": corpus_wer(refs, hyps["sae"]),
    }
    values["wer_delta"] = (values["wer_sae"] - values["wer_clean"]
                           if values["wer_sae"] is not None and values["wer_clean"] is not None else None)
    boots = []
    n = len(clips)
    for _ in range(int(cfg["bootstrap_resamples"])):
        pick = rng.integers(0, n, n)
        boots.append(_recovered(ce, ntok, "zero", pick))
    b = [x for x in boots if x is not None and np.isfinite(x)]
    unc = {"loss_recovered": [float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))]} if b else {}
    details = {"splice_clips": n, "splice_tokens": int(ntok.sum()), "splice_clips_too_long": too_long,
               "examples": [{"ref": r, "clean": h0, "sae": h1} for r, h0, h1 in list(zip(refs, hyps["clean"], hyps["sae"], strict=True))[:5]]}
    return {k: finite_or_none(v) for k, v in values.items()}, unc, {}, details


def encoder_splice(ctx, manifest, hook: str, cfg: dict, rng) -> tuple[dict, dict, dict, dict]:
    ad, sae = ctx.model, ctx.sae
    last = f"encoder.layers.{ad.n_layers - 1}"
    mean = torch.zeros(ad.hidden_size)
    conds = {k: v for k, v in _conditions(sae, mean).items() if k in ("clean", "sae", "zero")}
    clips = list(manifest.clips)[: int(cfg["splice_max_clips"])] if cfg["splice_max_clips"] else list(manifest.clips)
    err = {"sae": np.zeros(len(clips)), "zero": np.zeros(len(clips))}
    waves = [manifest.load(c) for c in clips]
    for group in ad.batch_groups([len(w) for w in waves]):
        for start in range(0, len(group), int(cfg["splice_batch_size"])):
            idx = group[start : start + int(cfg["splice_batch_size"])]
            batch = ad.prepare([waves[j] for j in idx])
            out = {}
            for name, fn in conds.items():
                if fn is None:
                    out[name] = ad.activations(batch, [last])[last]
                else:
                    with ad.replace_output(hook, fn, batch.valid_frames):
                        out[name] = ad.activations(batch, [last])[last]
            for r, j in enumerate(idx):
                vf = batch.valid_frames[r]
                c = out["clean"][r, :vf].double()
                for name in err:
                    err[name][j] = float(((out[name][r, :vf].double() - c) ** 2).sum())
    rr = 1 - err["sae"].sum() / err["zero"].sum() if err["zero"].sum() else None
    boots = []
    n = len(clips)
    for _ in range(int(cfg["bootstrap_resamples"])):
        pick = rng.integers(0, n, n)
        z = err["zero"][pick].sum()
        if z:
            boots.append(1 - err["sae"][pick].sum() / z)
    unc = {"representation_recovered": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]} if boots else {}
    return {"representation_recovered": finite_or_none(rr)}, unc, {}, {"splice_clips": n, "splice_layer": last}
