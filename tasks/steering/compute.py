"""steering (see README.md in this folder)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiosaebench.activations.states import continuation_states
from audiosaebench.cache import cached_json
from audiosaebench.codes import pooled_clip_codes
from audiosaebench.models.frames import SAMPLE_RATE
from audiosaebench.models.whisper_decode import edit_distance, normalize_text, token_limits
from audiosaebench.runtime import allocator
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, null_result, percentile_interval

log = logging.getLogger(__name__)
# 8: task 2.0.0 (per-window decodes; feature suppression; conditional mean difference)
CACHE_VERSION = 8
MAIN = "fpr_reduction_auc"
NULL_NAMES = (MAIN, "fpr_reduction")
# Per window: the change of its valid rows ([n_valid, d]), or None where the edit changes nothing.
Edit = Callable[[int, str], torch.Tensor | None]


class Windows:
    """The 30 s windows of a list of clips: the hook output on all their frames and valid frames."""

    def __init__(self, cont: Any, manifest: Any, indices: list[int], batch_size: int):
        ad = cont.adapter
        self.clip_of: list[int] = []
        self.seconds: list[float] = []
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

    def __len__(self) -> int:
        return len(self.states)

    def valid_rows(self, w: int) -> torch.Tensor:
        return self.states[w][: self.valid[w]]



def per_clip(clip_of: Sequence[int], texts: Sequence[str], nsp: Sequence[float | None]) -> tuple[list[str], list[float | None]]:
    """Window transcripts joined per clip, and each clip's mean no-speech probability."""
    n = max(clip_of, default=-1) + 1
    t: list[list[str]] = [[] for _ in range(n)]
    p: list[list[float]] = [[] for _ in range(n)]
    for i, ci in enumerate(clip_of):
        t[ci].append(texts[i])
        if nsp[i] is not None:
            p[ci].append(float(nsp[i]))  # type: ignore[arg-type]
    return [" ".join(x).strip() for x in t], [float(np.mean(x)) if x else None for x in p]


@dataclass
class Setup:
    """What every setting of one run shares: the model from the hook up, the decoder, the window sets
    (``nstr``: non-speech train; ``ns``: non-speech test; ``sp``: the speech test sample) and their
    unsteered decodes per window."""

    cont: Any
    dec: Any
    refs: list[str]
    batch_size: int
    key: dict[str, Any]
    build: Callable[[str], Windows]
    nonspeech_tokens: int
    speech_rule: tuple[float, int, int]  # tokens per second of audio, least, most
    threshold: float  # a no-speech probability below it is a false speech detection
    zero: dict[str, dict[str, list]] = field(default_factory=dict)
    _windows: dict[str, Windows] = field(default_factory=dict)

    def windows(self, name: str) -> Windows:
        if name not in self._windows:
            self._windows[name] = self.build(name)
        return self._windows[name]

    def limit(self, name: str, i: int) -> int:
        """The token limit of window ``i`` of set ``name``: a few tokens for non-speech (enough to see
        whether a word comes), a limit set by its length for speech."""
        if name != "sp":
            return self.nonspeech_tokens
        return token_limits([self.windows(name).seconds[i]], *self.speech_rule)[0]


def transcribed(texts: Sequence[str]) -> np.ndarray:
    """Whether each clip's normalised greedy transcript holds a word."""
    return np.array([normalize_text(t) != "" for t in texts])


def false_detection(nsp: Sequence[float | None], threshold: float) -> np.ndarray:
    """AudioSAE's false speech detection on a non-speech clip: no-speech probability below the threshold
    (a vocabulary without the no-speech token never detects)."""
    return np.array([p is not None and p < threshold for p in nsp])


def _decode(s: Setup, name: str, edit: Edit | None) -> tuple[list[str], list[float | None]]:
    """Per window of set ``name``: the greedy transcript and no-speech probability under ``edit``.
    Windows the edit leaves unchanged keep their unsteered decode (the model would run exactly the
    unsteered computation), so only the others run."""
    w = s.windows(name)
    deltas = [None if edit is None else edit(i, name) for i in range(len(w))]
    run = [i for i in range(len(w)) if edit is None or deltas[i] is not None]
    texts = list(s.zero[name]["texts"]) if edit is not None else [""] * len(w)
    nsp = list(s.zero[name]["nsp"]) if edit is not None else [None] * len(w)
    for start in range(0, len(run), s.batch_size):
        part = run[start : start + s.batch_size]
        hin = torch.stack([w.states[i] for i in part]).to(s.cont.device)
        valid = [w.valid[i] for i in part]
        change = None if edit is None else torch.cat([deltas[i] for i in part]).to(s.cont.device)  # type: ignore[misc]
        block = s.cont.replace_output(lambda h, c=change: h + c.to(h.dtype), valid) if change is not None \
            else contextlib.nullcontext()
        with torch.no_grad(), block:
            enc = s.cont(hin)
        t, p = s.dec.decode_with_no_speech(enc, [s.limit(name, i) for i in part])
        allocator.checkpoint()  # decoding allocates caches of ever new lengths: see audiosaebench.runtime.allocator
        for i, ti, pi in zip(part, t, p, strict=True):
            texts[i], nsp[i] = ti, pi
    return texts, nsp


@dataclass
class Curve:
    """One intervention's sweep: per alpha the hallucination flag of every non-speech test clip, the
    word edits and reference words of every speech clip, and the mean no-speech probability."""

    alphas: list[float]
    hallucinated: list[list[bool]]  # false speech detections (no-speech probability below the threshold)
    transcribed: list[list[bool]]  # non-speech clips transcribed into words (1.1.0's criterion)
    errors: list[list[int]]
    words: list[int]
    no_speech_prob: list[float | None]
    rerun: list[int]  # windows decoded per alpha (the rest were left unchanged)

    def fpr(self, i: int, pick: np.ndarray | None = None) -> float:
        h = np.array(self.hallucinated[i])
        return float(h[pick].mean() if pick is not None else h.mean())

    def fpr_transcript(self, i: int) -> float:
        return float(np.mean(self.transcribed[i]))

    def wer(self, i: int, pick: np.ndarray | None = None) -> float | None:
        e, n = np.array(self.errors[i]), np.array(self.words)
        if pick is not None:
            e, n = e[pick], n[pick]
        return float(e.sum() / n.sum()) if n.sum() else None

    def to_dict(self) -> dict[str, Any]:
        return {"alphas": self.alphas, "hallucinated": self.hallucinated, "transcribed": self.transcribed,
                "errors": self.errors, "words": self.words,
                "no_speech_prob": self.no_speech_prob, "rerun": self.rerun}


def _sweep(s: Setup, alphas: list[float], make_edit: Callable[[float], Edit], label: str) -> Curve:
    refs = [normalize_text(r).split() for r in s.refs]
    curve = Curve(alphas, [], [], [], [len(r) for r in refs], [], [])
    for a in alphas:
        if a == 0:
            ns_t, ns_p, sp_t = s.zero["ns"]["texts"], s.zero["ns"]["nsp"], s.zero["sp"]["texts"]
            rerun = 0
        else:
            log.info("steering %s alpha=%s", label, a)
            edit = make_edit(a)
            ns_t, ns_p = _decode(s, "ns", edit)
            sp_t, _ = _decode(s, "sp", edit)
            rerun = sum(edit(i, n) is not None for n in ("ns", "sp") for i in range(len(s.zero[n]["texts"])))
        clips_ns, nsp = per_clip(s.zero["ns"]["clip_of"], ns_t, ns_p)
        clips_sp, _ = per_clip(s.zero["sp"]["clip_of"], sp_t, [None] * len(sp_t))
        curve.hallucinated.append(false_detection(nsp, s.threshold).tolist())
        curve.transcribed.append(transcribed(clips_ns).tolist())
        curve.errors.append([edit_distance(r, normalize_text(h).split()) for r, h in zip(refs, clips_sp, strict=True)])
        vals = [p for p in nsp if p is not None]
        curve.no_speech_prob.append(float(np.mean(vals)) if vals else None)
        curve.rerun.append(rerun)
    return curve


def frontier(reduction: Sequence[float], increase: Sequence[float | None], budget: float) -> float:
    """(1 / budget) x the area under R(x) = the largest FPR reduction of any alpha whose WER rises by at
    most x, for x in [0, budget] (R >= 0: alpha = 0 rises by nothing and reduces nothing)."""
    pts = sorted((max(0.0, float(d)), float(r)) for r, d in zip(reduction, increase, strict=True)
                 if d is not None and d <= budget + 1e-12)
    area, best, last = 0.0, 0.0, 0.0
    for d, r in pts:
        area += best * (d - last)
        best, last = max(best, r), d
    return (area + best * (budget - last)) / budget if budget > 0 else best


def at_budget(reduction: Sequence[float], increase: Sequence[float | None], budget: float) -> tuple[float, int]:
    """The largest FPR reduction of any alpha within the WER budget, and that alpha's index."""
    ok = [(r, -i) for i, (r, d) in enumerate(zip(reduction, increase, strict=True)) if d is not None and d <= budget + 1e-12]
    r, i = max(ok, default=(0.0, 0))
    return r, -i


def tradeoff(c: Curve, auc_budget: float, budget: float, ns_pick: np.ndarray | None = None,
             sp_pick: np.ndarray | None = None) -> tuple[float | None, float | None, int]:
    """(area under the reduction-vs-WER-rise frontier up to ``auc_budget``, the reduction at ``budget``,
    its alpha's index) on the given resample of clips; None where the unsteered FPR is 0."""
    fpr0, wer0 = c.fpr(0, ns_pick), c.wer(0, sp_pick)
    if fpr0 == 0 or wer0 is None:
        return None, None, 0
    red = [(fpr0 - c.fpr(i, ns_pick)) / fpr0 for i in range(len(c.alphas))]
    inc = [None if (w := c.wer(i, sp_pick)) is None else w - wer0 for i in range(len(c.alphas))]
    r, i = at_budget(red, inc, budget)
    return frontier(red, inc, auc_budget), r, i


def _setup(ctx: TaskContext, cfg: Any) -> Setup | str:
    """The decoder, the continuation from the hook, the window sets and their cached unsteered decodes;
    or why the task cannot run."""
    from torch import nn

    from audiosaebench.models.continuation import Continuation
    from audiosaebench.models.whisper_decode import WhisperDecoder

    ad, sae = ctx.model, ctx.sae
    if ad.family != "whisper":
        return f"steering measures Whisper's non-speech hallucinations; {ad.family} has no decoder"
    tokenizer = Path(ad.source_dir or "") / "tokenizer.json"
    if not tokenizer.exists():
        return f"the model folder has no tokenizer.json ({tokenizer}), so transcripts cannot be decoded"
    m = {"nstr": ctx.manifest("nonspeech_train"), "ns": ctx.manifest("nonspeech_test"), "sp": ctx.manifest("speech_test")}
    if not all(c.labels.get("text") for c in m["sp"].clips):
        return "speech_test has no transcripts"
    rng = np.random.default_rng(ctx.seed)
    sp_idx = sorted(rng.choice(len(m["sp"]), min(len(m["sp"]), int(cfg["max_speech_clips"])), replace=False).tolist())
    idx = {"nstr": list(range(len(m["nstr"]))), "ns": list(range(len(m["ns"]))), "sp": sp_idx}
    cont = Continuation(ad, str(sae.info.hook_point), nn.Identity(), start="output")
    bs = int(cfg["batch_size"])
    rule = (float(cfg["tokens_per_second"]), int(cfg["min_token_limit"]), int(cfg["max_new_tokens"]))
    key = {"v": CACHE_VERSION, "model": ad.identity.to_dict(), "dtype": str(ad.dtype), "hook": cont.hook.name,
           "manifests": [ctx.manifest(r).sha256 for r in ("nonspeech_train", "speech_train", "nonspeech_test",
                                                          "speech_test")],
           "speech": sp_idx, "tokens": [int(cfg["nonspeech_max_new_tokens"]), *rule]}
    s = Setup(cont, WhisperDecoder(ad, tokenizer), [m["sp"].clips[i].labels["text"] for i in sp_idx], bs, key,
              lambda name: Windows(cont, m[name], idx[name], bs), int(cfg["nonspeech_max_new_tokens"]), rule,
              float(cfg["no_speech_threshold"]))

    def unsteered() -> dict:
        out = {}
        for name in ("nstr", "ns", "sp"):
            texts, nsp = _decode(s, name, None)
            out[name] = {"texts": texts, "nsp": nsp, "clip_of": s.windows(name).clip_of}
        return out

    s.zero = cached_json("steering-cache", {**key, "part": "unsteered"}, unsteered,
                         lambda d: isinstance(d, dict) and all(isinstance(d.get(n), dict) for n in ("nstr", "ns", "sp")))
    return s


def train_hallucinated(s: Setup) -> np.ndarray:
    """Which non-speech train clips the unsteered model falsely detects speech in."""
    z = s.zero["nstr"]
    return false_detection(per_clip(z["clip_of"], z["texts"], z["nsp"])[1], s.threshold)


def select_features(ctx: TaskContext, halluc_train: np.ndarray, n_features: int, C: float) -> tuple[np.ndarray, np.ndarray]:
    """The hallucination-promoting features, as AudioSAE selects them: a balanced logistic regression on
    non-speech train clips, codes max-pooled over valid frames, separates the clips with a false speech
    detection (1) from the others (0); the ``n_features`` features with the largest positive
    coefficients, largest first."""
    from sklearn.linear_model import LogisticRegression

    z = pooled_clip_codes(ctx.sae, ctx.activations("nonspeech_train"), "max").tocsr()
    beta = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit(z, halluc_train.astype(int)).coef_[0]
    order = np.lexsort((np.arange(len(beta)), -beta))
    top = order[: min(n_features, int((beta > 0).sum()))]
    return top, beta[top]


def suppression(ctx: TaskContext, s: Setup, feats: np.ndarray) -> Callable[[float], Edit]:
    """``z'_j = (1 - alpha) z_j`` for the selected features, decoded (error term kept):
    ``x' = x - alpha * sum_j z_j d_j``; zero wherever those features are off."""
    sae = ctx.sae
    f = torch.as_tensor(feats, dtype=torch.long, device=sae.device)
    parts: dict[tuple[str, int], torch.Tensor | None] = {}

    def part(i: int, name: str) -> torch.Tensor | None:
        if (name, i) not in parts:
            with torch.no_grad():
                z, state = sae.encode_with_state(s.windows(name).valid_rows(i).to(sae.device, sae.dtype))
                c = sae.contribution(z, f, state).float().cpu() if len(f) else None
            parts[(name, i)] = c if c is not None and bool(c.any()) else None
        return parts[(name, i)]

    def make(alpha: float) -> Edit:
        return lambda i, name: None if (c := part(i, name)) is None else -alpha * c

    return make


def additive(ctx: TaskContext, s: Setup, feats: np.ndarray) -> Callable[[float], Edit]:
    """1.1.0's form, reported as a variant: ``z'_j = z_j - alpha a_j`` on every valid frame (``a_j`` the
    feature's mean active value on the train splits), decoded: ``x' = x - alpha sum_j a_j d_j``."""
    from audiosaebench.codes import iter_codes

    sae = ctx.sae
    total = torch.zeros(sae.d_sae, dtype=torch.float64)
    count = torch.zeros(sae.d_sae, dtype=torch.float64)
    for role in ("speech_train", "nonspeech_train"):
        for ch in iter_codes(sae, ctx.activations(role)):
            z = ch.z.float().cpu()
            total += z.sum(0).double()
            count += (z > 0).sum(0).double()
    f = torch.as_tensor(feats, dtype=torch.long, device=sae.device)
    mean_active = (total / count.clamp_min(1)).float()[f.cpu()]

    def make(alpha: float) -> Edit:
        def edit(i: int, name: str) -> torch.Tensor | None:
            rows = s.windows(name).valid_rows(i).to(sae.device, sae.dtype)
            return sae.shift_contribution(rows, f, (-alpha * mean_active).to(sae.device)).float().cpu() if len(f) else None
        return edit

    return make


def _frames(acts: Any, clips: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """The valid frames of the given clips of an activation set, at most ``cap`` of them (seeded)."""
    off = acts.offsets
    rows = np.concatenate([np.arange(off[i], off[i + 1]) for i in clips]) if len(clips) else np.zeros(0, np.int64)
    if cap and len(rows) > cap:
        rows = np.sort(rng.choice(rows, cap, replace=False))
    return acts.take(rows)


def mean_difference(ctx: TaskContext, s: Setup, halluc_train: np.ndarray, cfg: Any) -> dict[str, Any]:
    """The dense reference, fitted on the train splits (SAE-independent, cached): the direction
    ``v = mean(target frames) - mean(frames of non-speech clips with a false detection)`` (target, by
    ``mean_difference_target``: the padding frames Whisper sees after a clip ends, the other non-speech
    clips' frames, or speech frames) and a frame probe ``g(x) = sigmoid(w.x + b)`` (logistic
    regression, non-speech frames 1, speech frames 0) that says where a conditional edit applies."""
    from sklearn.linear_model import LogisticRegression

    def fit() -> dict[str, Any]:
        rng = np.random.default_rng(ctx.seed)
        cap, ns_acts = int(cfg["probe_max_frames"]), ctx.activations("nonspeech_train")
        sp = _frames(ctx.activations("speech_train"), np.arange(len(ctx.manifest("speech_train"))), cap, rng)
        ns = _frames(ns_acts, np.arange(len(halluc_train)), cap, rng)
        h = _frames(ns_acts, np.flatnonzero(halluc_train), cap, rng)
        target = cfg["mean_difference_target"]
        if target == "padding":
            w = s.windows("nstr")
            t = np.concatenate([w.states[i][w.valid[i]:].numpy() for i in range(len(w))]).mean(0, dtype=np.float64)
        elif target == "non_detected":
            t = _frames(ns_acts, np.flatnonzero(~halluc_train), cap, rng).mean(0, dtype=np.float64)
        else:
            t = sp.mean(0, dtype=np.float64)
        probe = LogisticRegression(C=float(cfg["probe_C"]), class_weight="balanced", max_iter=5000)
        probe.fit(np.concatenate([sp, ns]), np.r_[np.zeros(len(sp)), np.ones(len(ns))])
        return {"v": (t - h.mean(0, dtype=np.float64)).tolist(), "w": probe.coef_[0].tolist(),
                "b": float(probe.intercept_[0])}

    key = {**s.key, "part": "mean_difference_fit", "train_hallucinated": halluc_train.tolist(), "seed": ctx.seed,
           "options": {k: cfg[k] for k in ("mean_difference_target", "probe_C", "probe_max_frames")}}
    return cached_json("steering-cache", key, fit, lambda d: isinstance(d, dict) and {"v", "w", "b"} <= set(d))


def dense_edit(fit: dict[str, Any], s: Setup, conditional: bool) -> Callable[[float], Edit]:
    """``x' = x + alpha g(x) v`` (conditional: only frames the probe reads as non-speech move) or
    ``x' = x + alpha v`` on every valid frame (global)."""
    v = torch.tensor(fit["v"], dtype=torch.float32)
    w, b = torch.tensor(fit["w"], dtype=torch.float32), float(fit["b"])

    def make(alpha: float) -> Edit:
        def edit(i: int, name: str) -> torch.Tensor:
            rows = s.windows(name).valid_rows(i).float()
            g = torch.sigmoid(rows @ w + b)[:, None] if conditional else torch.ones(len(rows), 1)
            return alpha * g * v[None, :]
        return edit

    return make


def cached_curve(s: Setup, key: dict[str, Any], alphas: list[float], make: Callable[[], Callable[[float], Edit]],
                 label: str) -> Curve:
    """An SAE-independent sweep, computed once per model, data and options."""
    got = cached_json("steering-cache", {**s.key, **key, "alphas": alphas},
                      lambda: _sweep(s, alphas, make(), label).to_dict(),
                      lambda d: isinstance(d, dict) and d.get("alphas") == alphas)
    return Curve(**got)


def _add_curve(out: ResultBuilder, label: str, c: Curve, cfg: Any, picks: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """One intervention's numbers: its trade-off area and reduction at the budget (with intervals over
    resampled clips), the alpha that reached it, and the whole curve."""
    auc_b, budget = float(cfg["auc_wer_budget"]), float(cfg["wer_budget"])
    auc, red, i = tradeoff(c, auc_b, budget)
    reason = "Whisper detects speech in none of the nonspeech_test clips at alpha = 0"
    boots = [tradeoff(c, auc_b, budget, ns, sp)[:2] for ns, sp in picks]
    for name, value, j in ((f"fpr_reduction_auc{label}", auc, 0), (f"fpr_reduction{label}", red, 1)):
        vals = [v for b in boots if (v := b[j]) is not None]
        out.add(name, value, interval=percentile_interval(vals) if vals and value is not None else None, reason=reason)
    out.add(f"alpha_star{label}", c.alphas[i] if red is not None else None, reason=reason)
    for k, a in enumerate(c.alphas):
        out.add(f"fpr@{a:g}{label}", c.fpr(k))
        out.add(f"wer@{a:g}{label}", c.wer(k), reason="the sampled speech clips have no reference words")
        out.add(f"no_speech_prob@{a:g}{label}", c.no_speech_prob[k], reason="the vocabulary has no no-speech token")
        out.add(f"fpr_transcript@{a:g}{label}", c.fpr_transcript(k))
    out.details[f"curve{label}"] = {"alphas": c.alphas, "fpr": [c.fpr(k) for k in range(len(c.alphas))],
                                    "wer": [c.wer(k) for k in range(len(c.alphas))], "windows_rerun": c.rerun}


def run_steering(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg = ctx.config
    s = _setup(ctx, cfg)
    if isinstance(s, str):
        return null_result(metadata, NULL_NAMES, s, floor=0.0)
    halluc = train_hallucinated(s)
    if min(halluc.sum(), (~halluc).sum()) < 2:
        return null_result(metadata, NULL_NAMES, f"Whisper falsely detects speech in {int(halluc.sum())} of "
                           f"{len(halluc)} nonspeech_train clips; at least 2 of each kind are needed to select "
                           "features", floor=0.0)
    alphas = sorted({0.0, *map(float, cfg["alphas"])})
    feats, beta = select_features(ctx, halluc, int(cfg["n_features"]), float(cfg["probe_C"]))
    fit = mean_difference(ctx, s, halluc, cfg)
    fit_key = {"fit": fit, "train_hallucinated": halluc.tolist()}
    curves = {
        "": _sweep(s, alphas, suppression(ctx, s, feats), "suppression"),
        "_additive": _sweep(s, sorted({0.0, *map(float, cfg["additive_alphas"])}), additive(ctx, s, feats), "additive"),
        "_mean_difference": cached_curve(s, {"part": "md_conditional", **fit_key}, alphas,
                                         lambda: dense_edit(fit, s, True), "conditional mean difference"),
        "_mean_difference_global": cached_curve(s, {"part": "md_global", **fit_key}, alphas,
                                                lambda: dense_edit(fit, s, False), "global mean difference"),
    }
    rng = np.random.default_rng(ctx.seed)
    n_ns, n_sp = len(curves[""].hallucinated[0]), len(curves[""].words)
    picks = [(rng.integers(0, n_ns, n_ns), rng.integers(0, n_sp, n_sp)) for _ in range(int(cfg["bootstrap_resamples"]))]
    out = ResultBuilder(metadata)
    for label, c in curves.items():
        _add_curve(out, label, c, cfg, picks)
    out.details.update({"features": feats.tolist(), "feature_coefficients": [round(float(b), 5) for b in beta],
                        "speech_clips": n_sp, "nonspeech_clips": n_ns, "train_hallucinated": int(halluc.sum()),
                        "train_nonspeech": len(halluc), "mean_difference_norm": round(float(np.linalg.norm(fit["v"])), 4),
                        "no_speech_threshold": s.threshold,
                        "train_false_detections": np.flatnonzero(halluc).tolist(),
                        "unsteered_nonspeech_transcripts": per_clip(s.zero["ns"]["clip_of"], s.zero["ns"]["texts"],
                                                                    s.zero["ns"]["nsp"])[0]})
    out.frames.update({r: ctx.activations(r).n_frames for r in ("speech_train", "nonspeech_train")})
    return out.build(floor=0.0, ceiling=out.values.get("fpr_reduction_auc_mean_difference"),
                     method="percentile bootstrap over nonspeech_test and speech_test clips, resampled apart, 95%",
                     n=int(cfg["bootstrap_resamples"]))
