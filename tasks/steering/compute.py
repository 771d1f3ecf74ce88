"""steering (see README.md in this folder)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audiosaebench.activations.states import continuation_states
from audiosaebench.cache import cached_json
from audiosaebench.codes import iter_codes, pooled_clip_codes
from audiosaebench.models.frames import SAMPLE_RATE
from audiosaebench.models.whisper_decode import corpus_wer, normalize_text, token_limits
from audiosaebench.runtime import allocator
from audiosaebench.task import TaskContext, TaskResult
from audiosaebench.toolkit import finite_or_none

log = logging.getLogger(__name__)
# 2: continuation from the hook output (cached states); 3: LM head as W @ h.T; 4: finished rows
# leave the decode batch; 5: the harness's text decoder (audiosaebench.models.whisper_text_decoder);
# 6: steered runs take the first layer above the hook from its unchanged frames (models.unedited_frames_memo)
# 7: speech windows decode up to a limit set by their length (task 1.1.0)
CACHE_VERSION = 7
Edit = Callable[[torch.Tensor], torch.Tensor] | None


class Windows:
    """The 30 s windows of a list of clips, the hook output on all their frames and valid frames (computed once)."""

    def __init__(self, cont, manifest, indices: list[int], batch_size: int):
        ad = cont.adapter
        self.clip_of: list[int] = []
        self.seconds: list[float] = []  # each window's audio
        self.valid: list[int] = []
        self.states: list[torch.Tensor] = []
        waves = []
        for ci, i in enumerate(indices):
            for seg in ad.segments(manifest.load(manifest.clips[i], verify=True)):
                self.clip_of.append(ci)
                self.seconds.append(len(seg) / SAMPLE_RATE)
                waves.append(seg)
        for start in range(0, len(waves), batch_size):
            batch = ad.prepare(waves[start : start + batch_size])
            self.valid += batch.valid_frames
            self.states += list(continuation_states(cont, batch).cpu())
        self.n_clips = len(indices)


def _transcribe(cont, dec, w: Windows, edit: Edit, max_new_tokens: int | list[int], batch_size: int):
    """Per clip: transcript (windows joined) and mean no-speech probability, with ``edit`` applied to the
    hook output's valid frames; ``max_new_tokens``: one limit, or one per window."""
    texts: list[list[str]] = [[] for _ in range(w.n_clips)]
    nsp: list[list[float]] = [[] for _ in range(w.n_clips)]
    for start in range(0, len(w.states), batch_size):
        hin = torch.stack(w.states[start : start + batch_size]).to(cont.device)
        valid = w.valid[start : start + batch_size]
        with torch.no_grad(), cont.replace_output(edit, valid) if edit is not None else contextlib.nullcontext():
            enc = cont(hin)
        limit = max_new_tokens if isinstance(max_new_tokens, int) else max_new_tokens[start : start + batch_size]
        t, p = dec.decode_with_no_speech(enc, limit)
        allocator.checkpoint()  # decoding allocates caches of ever new lengths: see audiosaebench.runtime.allocator
        for j, (text, prob) in enumerate(zip(t, p, strict=True)):
            ci = w.clip_of[start + j]
            texts[ci].append(text)
            if prob is not None:
                nsp[ci].append(prob)
    return [" ".join(t).strip() for t in texts], [float(np.mean(p)) if p else None for p in nsp]


def hallucinated(texts: list[str]) -> np.ndarray:
    """A non-speech clip is a hallucination when its normalised transcript is not empty."""
    return np.array([normalize_text(t) != "" for t in texts])


def _cache(key: dict, compute: Callable[[], dict], fields: tuple[str, ...]) -> dict:
    """SAE-independent decodes (unsteered runs, the mean-difference sweep), cached per model and data."""
    return cached_json("steering-cache", {"v": CACHE_VERSION, **key}, compute,
                       lambda d: isinstance(d, dict) and all(f in d for f in fields))


def _mean_active(sae, acts_list) -> torch.Tensor:
    total = torch.zeros(sae.d_sae, dtype=torch.float64)
    count = torch.zeros(sae.d_sae, dtype=torch.float64)
    for acts in acts_list:
        for ch in iter_codes(sae, acts):
            z = ch.z.float().cpu()
            total += z.sum(0).double()
            count += (z > 0).sum(0).double()
    return (total / count.clamp_min(1)).float()


def _operating_point(wer: list[float | None], alphas: list[float], budget: float) -> int:
    """Index of the largest alpha (``alphas`` ascending) whose WER rises by at most ``budget`` over alpha = 0."""
    ok = [i for i, w in enumerate(wer) if w is not None and wer[0] is not None and w - wer[0] <= budget + 1e-12]
    return max(ok, key=lambda i: alphas[i], default=0)


def _reduction(h0: np.ndarray, ha: np.ndarray) -> float | None:
    return float((h0.mean() - ha.mean()) / h0.mean()) if h0.mean() > 0 else None


def _sweep(label: str, alphas: list[float], make_edit, run_ns, run_sp, refs: list[str], zero: dict) -> dict:
    out: dict[str, Any] = {"fpr": [], "wer": [], "hallucinated": [], "no_speech_prob": []}
    for a in alphas:
        if a == 0:
            ns, nsp, sp = zero["ns_texts"], zero["ns_nsp"], zero["sp_texts"]
        else:
            log.info("steering %s alpha=%s", label, a)
            edit = make_edit(a)
            ns, nsp = run_ns(edit)
            sp, _ = run_sp(edit)
        h = hallucinated(ns)
        out["hallucinated"].append(h.tolist())
        out["fpr"].append(float(h.mean()))
        out["wer"].append(corpus_wer(refs, sp))
        vals = [p for p in nsp if p is not None]
        out["no_speech_prob"].append(float(np.mean(vals)) if vals else None)
    return out


def run_steering(ctx: TaskContext) -> TaskResult:
    from sklearn.linear_model import LogisticRegression

    from audiosaebench.models.continuation import Continuation
    from audiosaebench.models.whisper_decode import WhisperDecoder

    cfg, seed, sae, ad = ctx.config, ctx.seed, ctx.sae, ctx.model
    alphas = [float(a) for a in cfg["alphas"]]
    if 0.0 not in alphas:
        alphas = [0.0, *alphas]
    alphas = sorted(set(alphas))
    if ad.family != "whisper":
        return _null(f"steering measures Whisper's non-speech hallucinations; {ad.family} has no decoder")
    bs = int(cfg["batch_size"])
    tokenizer = Path(ad.source_dir or "") / "tokenizer.json"
    if not tokenizer.exists():
        return _null(f"the model folder has no tokenizer.json ({tokenizer}), so transcripts cannot be decoded")
    dec = WhisperDecoder(ad, tokenizer)
    cont = Continuation(ad, sae.info.hook_point, nn.Identity(), start="output")
    m_nstr, m_sptr = ctx.manifest("nonspeech_train"), ctx.manifest("speech_train")
    m_ns, m_sp = ctx.manifest("nonspeech_test"), ctx.manifest("speech_test")
    if not all(c.labels.get("text") for c in m_sp.clips):
        return _null("speech_test has no transcripts")
    rng = np.random.default_rng(seed)
    n_sp = min(len(m_sp), int(cfg["max_speech_clips"]))
    sp_idx = sorted(rng.choice(len(m_sp), n_sp, replace=False).tolist())
    refs = [m_sp.clips[i].labels["text"] for i in sp_idx]
    ns_tokens = int(cfg["nonspeech_max_new_tokens"])
    sp_rule = (float(cfg["tokens_per_second"]), int(cfg["min_token_limit"]), int(cfg["max_new_tokens"]))
    key = {"model": ad.identity.to_dict(), "dtype": str(ad.dtype), "hook": cont.hook.name,
           "manifests": [m.sha256 for m in (m_nstr, m_sptr, m_ns, m_sp)], "speech": sp_idx,
           "tokens": [ns_tokens, *sp_rule]}
    lazy: dict[str, Windows] = {}

    def windows(name: str) -> Windows:
        if name not in lazy:
            m, idx = {"nstr": (m_nstr, list(range(len(m_nstr)))), "ns": (m_ns, list(range(len(m_ns)))),
                      "sp": (m_sp, sp_idx)}[name]
            lazy[name] = Windows(cont, m, idx, bs)
        return lazy[name]

    def run_ns(edit):
        return _transcribe(cont, dec, windows("ns"), edit, ns_tokens, bs)

    def run_sp(edit):
        w = windows("sp")
        return _transcribe(cont, dec, w, edit, token_limits(w.seconds, *sp_rule), bs)

    def unsteered() -> dict:
        tr_texts, tr_nsp = _transcribe(cont, dec, windows("nstr"), None, ns_tokens, bs)
        ns_texts, ns_nsp = run_ns(None)
        sp_texts, _ = run_sp(None)
        return {"train_texts": tr_texts, "train_nsp": tr_nsp, "ns_texts": ns_texts, "ns_nsp": ns_nsp, "sp_texts": sp_texts}

    zero = _cache({**key, "part": "unsteered"}, unsteered, ("train_texts", "ns_texts", "ns_nsp", "sp_texts"))
    halluc_train = hallucinated(zero["train_texts"])
    if halluc_train.sum() < 2:
        return _null(f"Whisper hallucinates on {int(halluc_train.sum())} of {len(halluc_train)} nonspeech_train clips; "
                     "at least 2 are needed to fit the selection probe")

    # the steering directions: SAE features from a probe on train codes, and the raw mean difference
    z_ns = pooled_clip_codes(sae, ctx.activations("nonspeech_train"), "max")[np.flatnonzero(halluc_train)]
    z_sp = pooled_clip_codes(sae, ctx.activations("speech_train"), "max")
    from scipy import sparse

    x = sparse.vstack([z_sp, z_ns]).tocsr()
    y = np.r_[np.zeros(z_sp.shape[0]), np.ones(z_ns.shape[0])]
    clf = LogisticRegression(C=float(cfg["probe_C"]), class_weight="balanced", max_iter=5000).fit(x, y)
    beta = clf.coef_[0]
    n_feat = min(int(cfg["n_features"]), int((beta != 0).sum()))
    top = np.argsort(-np.abs(beta), kind="stable")[:n_feat]
    sign = -np.sign(beta[top])
    mean_active = _mean_active(sae, [ctx.activations("speech_train"), ctx.activations("nonspeech_train")])[top]
    feats = torch.as_tensor(top, dtype=torch.long, device=sae.device)
    base_shift = torch.as_tensor(sign, dtype=torch.float32) * mean_active

    def sae_edit(alpha: float):
        values = (alpha * base_shift).to(sae.device)
        return lambda h: h + sae.shift_contribution(h, feats, values).to(h.dtype)

    acts_sp, acts_ns = ctx.activations("speech_train"), ctx.activations("nonspeech_train")
    frames_ns = np.concatenate([np.arange(acts_ns.offsets[i], acts_ns.offsets[i + 1]) for i in np.flatnonzero(halluc_train)])
    mean_sp = sum(c.sum(0, dtype=np.float64) for _, c in acts_sp.iter_chunks()) / acts_sp.n_frames
    v = torch.as_tensor(mean_sp - acts_ns.take(frames_ns).mean(0, dtype=np.float64), dtype=torch.float32)

    def md_edit(alpha: float):
        shift = (alpha * v).to(cont.device)
        return lambda h: h + shift.to(h.dtype)

    budget = float(cfg["wer_budget"])
    sae_curve = _sweep("sae", alphas, sae_edit, run_ns, run_sp, refs, zero)
    md_curve = _cache({**key, "part": "mean_difference", "alphas": alphas, "train_hallucinated": halluc_train.tolist()},
                      lambda: _sweep("mean_difference", alphas, md_edit, run_ns, run_sp, refs, zero),
                      ("fpr", "wer", "hallucinated", "no_speech_prob"))

    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    unc: dict[str, list[float]] = {}
    n_boot = int(cfg["bootstrap_resamples"])
    details: dict[str, Any] = {"alphas": alphas, "speech_clips": len(sp_idx), "nonspeech_clips": len(m_ns),
                               "train_hallucinated": int(halluc_train.sum()), "train_nonspeech": len(halluc_train),
                               "features": top.tolist(), "feature_signs": sign.tolist(),
                               "mean_active_values": [round(float(a), 5) for a in mean_active],
                               "mean_difference_norm": round(float(v.norm()), 4)}
    idx = rng.integers(0, len(m_ns), (n_boot, len(m_ns)))
    for label, curve in (("", sae_curve), ("_mean_difference", md_curve)):
        best = _operating_point(curve["wer"], alphas, budget)
        h0, ha = np.array(curve["hallucinated"][0]), np.array(curve["hallucinated"][best])
        name = f"fpr_reduction{label}"
        values[name] = _reduction(h0, ha)
        if values[name] is None:
            reasons[name] = "Whisper hallucinates on none of the nonspeech_test clips at alpha = 0"
        else:
            bs_vals = [r for r in (_reduction(h0[i], ha[i]) for i in idx) if r is not None]
            unc[name] = [float(np.percentile(bs_vals, 2.5)), float(np.percentile(bs_vals, 97.5))]
        values[f"alpha_star{label}"] = alphas[best]
        for a, f, w, p in zip(alphas, curve["fpr"], curve["wer"], curve["no_speech_prob"], strict=True):
            values[f"fpr@{a:g}{label}"] = f
            values[f"wer@{a:g}{label}"] = w
            if p is not None:
                values[f"no_speech_prob@{a:g}{label}"] = p
        details[f"curve{label}"] = {"fpr": curve["fpr"], "wer": curve["wer"]}
    details["unsteered_nonspeech_transcripts"] = zero["ns_texts"]
    hib = {k: not (k.startswith("fpr@") or k.startswith("wer@")) for k in values}
    return TaskResult(
        values={k: finite_or_none(v) for k, v in values.items()},
        higher_is_better=hib,
        floor=0.0,
        ceiling=1.0,
        reasons=reasons,
        uncertainty=unc,
        uncertainty_method="percentile bootstrap over nonspeech_test clips at the chosen alpha, 95%",
        uncertainty_n=n_boot,
        details=details,
        frames={r: ctx.activations(r).n_frames for r in ("speech_train", "nonspeech_train")},
    )


def _null(reason: str) -> TaskResult:
    return TaskResult(values={"fpr_reduction": None}, higher_is_better={"fpr_reduction": True},
                      reasons={"fpr_reduction": reason})
