"""fidelity, activation-space part (see README.md in this folder for the formulas)."""

from __future__ import annotations

import numpy as np
import torch

from audiosaebench.codes import iter_codes
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, percentile_interval

MAIN_ROLE = "speech_test"


def _split_stats(sae, acts, chunk_rows: int | None) -> dict:
    clip_of = acts.frame_clip_index()
    n_clips = len(acts.clip_ids)
    d = acts.d
    sse = np.zeros(n_clips)
    sumsq = np.zeros(n_clips)
    sum_x = np.zeros((n_clips, d))
    n = np.zeros(n_clips)
    l0 = np.zeros(n_clips)
    cos = np.zeros(n_clips)
    fires = torch.zeros(sae.d_sae, dtype=torch.float64)
    xhat_sq = 0.0
    x_dot = 0.0
    for ch in iter_codes(sae, acts, chunk_rows):
        idx = clip_of[ch.start : ch.start + ch.x.shape[0]]
        x64, xh64 = ch.x.double(), ch.x_hat.double()
        active = ch.z != 0
        per_frame = {
            "sse": ((x64 - xh64) ** 2).sum(-1),
            "sumsq": (x64**2).sum(-1),
            "l0": active.sum(-1).double(),
            "cos": torch.nn.functional.cosine_similarity(x64, xh64, dim=-1, eps=1e-12),
        }
        for name, arr in (("sse", sse), ("sumsq", sumsq), ("l0", l0), ("cos", cos)):
            np.add.at(arr, idx, per_frame[name].cpu().numpy())
        np.add.at(sum_x, idx, x64.cpu().numpy())
        np.add.at(n, idx, 1)
        fires += active.sum(0).double().cpu()
        xhat_sq += float((xh64**2).sum())
        x_dot += float((x64 * xh64).sum())
    return {"sse": sse, "sumsq": sumsq, "sum_x": sum_x, "n": n, "l0": l0, "cos": cos,
            "fires": fires.numpy(), "xhat_sq": xhat_sq, "x_dot": x_dot, "d": d}


def _ev(sse, sumsq, sum_x, n) -> float | None:
    total = n.sum()
    denom = sumsq.sum() - float((sum_x.sum(0) ** 2).sum()) / total
    return float(1.0 - sse.sum() / denom) if denom > 0 else None


ACTIVATION_METRICS = ("l0", "dead_fraction", "dense_fraction", "explained_variance", "mse", "cosine",
                      "relative_reconstruction_bias")
WHISPER_SPLICE = ("splice_recovered", "loss_recovered", "loss_recovered_mean_ablation", "ce_clean", "ce_sae",
                  "ce_zero_ablation", "ce_mean_ablation", "wer_clean", "wer_sae", "wer_delta")
ENCODER_SPLICE = ("splice_recovered", "representation_recovered")


def _speech_mean(acts) -> torch.Tensor:
    """The mean hook output over the split's valid frames (the mean-ablation value)."""
    total = sum(c.sum(0, dtype=np.float64) for _, c in acts.iter_chunks())
    return torch.from_numpy(np.asarray(total / max(acts.n_frames, 1), dtype=np.float32))


def _add_splice(out: ResultBuilder, ctx: TaskContext, rng: np.random.Generator) -> None:
    """The splice metrics on the speech test split: Whisper's teacher-forced loss recovered and WER, or the
    representation recovered at the last encoder layer of an encoder-only model."""
    from audiosaebench_tasks.fidelity.splice import encoder_splice, whisper_splice

    man = ctx.manifest(MAIN_ROLE)
    whisper = ctx.model.family == "whisper"
    names, source = (WHISPER_SPLICE, "loss_recovered") if whisper else (ENCODER_SPLICE, "representation_recovered")
    if whisper and not all(c.labels.get("text") for c in man):
        out.null(names, f"{MAIN_ROLE} has no transcripts")
        return
    if whisper:
        sp = whisper_splice(ctx, man, ctx.sae.info.hook_point, _speech_mean(ctx.activations(MAIN_ROLE)), ctx.config, rng)
    else:
        sp = encoder_splice(ctx, man, ctx.sae.info.hook_point, ctx.config, rng)
    sp.values["splice_recovered"] = sp.values.get(source)
    if source in sp.intervals:
        sp.intervals["splice_recovered"] = sp.intervals[source]
    for n in names:
        out.add(n, sp.values.get(n), interval=sp.intervals.get(n),
                reason=sp.reason or "undefined (zero ablation does not change the output)")
    out.details.update(sp.details)


def _role_values(s: dict, dense_threshold: float) -> dict[str, float | None]:
    total = float(s["n"].sum())
    return {
        "l0": s["l0"].sum() / total,
        "dead_fraction": float((s["fires"] == 0).mean()),
        "dense_fraction": float((s["fires"] / total > dense_threshold).mean()),
        "explained_variance": _ev(s["sse"], s["sumsq"], s["sum_x"], s["n"]),
        "mse": s["sse"].sum() / (total * s["d"]),
        "cosine": s["cos"].sum() / total,
        "relative_reconstruction_bias": s["xhat_sq"] / s["x_dot"] if s["x_dot"] else None,
    }


def _role_intervals(s: dict, n_boot: int, rng) -> dict[str, list[float]]:
    """Explained variance and L0 over clips resampled with replacement."""
    nc = len(s["n"])
    boots_ev, boots_l0 = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, nc, nc)
        if s["n"][pick].sum() == 0:
            continue
        boots_ev.append(_ev(s["sse"][pick], s["sumsq"][pick], s["sum_x"][pick], s["n"][pick]))
        boots_l0.append(s["l0"][pick].sum() / s["n"][pick].sum())
    out = {}
    for m, b in (("explained_variance", boots_ev), ("l0", boots_l0)):
        kept = [float(v) for v in b if v is not None and np.isfinite(v)]
        if kept:
            out[m] = percentile_interval(kept)
    return out


def _add_role(out: ResultBuilder, role: str, s: dict, cfg, rng: np.random.Generator) -> None:
    if float(s["n"].sum()) == 0:
        out.null([f"{role}/{m}" for m in ACTIVATION_METRICS], f"no valid frames in {role}")
        return
    intervals = _role_intervals(s, int(cfg["bootstrap_resamples"]), rng)
    for m, v in _role_values(s, float(cfg["dense_threshold"])).items():
        out.add(f"{role}/{m}", v, interval=intervals.get(m), reason="undefined on this split (zero denominator)")


def run_fidelity(ctx: TaskContext, metadata: TaskMetadata, roles: tuple[str, ...]) -> TaskResult:
    cfg, sae = ctx.config, ctx.sae
    out = ResultBuilder(metadata)
    rng = np.random.default_rng(ctx.seed)  # the clips' bootstraps, then the splice's, in this order
    fires_all = np.zeros(sae.d_sae)
    for role in roles:
        s = _split_stats(sae, ctx.activations(role), int(cfg["chunk_rows"]) or None)
        out.frames[role] = int(s["n"].sum())
        fires_all += s["fires"]
        _add_role(out, role, s, cfg, rng)
    if cfg["splice"]:
        _add_splice(out, ctx, rng)
    else:
        out.add("splice_recovered", None, reason="splice disabled (splice=false)")
    out.add("dead_fraction", float((fires_all == 0).mean()))
    out.details["feature_fire_counts_total"] = int((fires_all > 0).sum())
    main = f"{MAIN_ROLE}/explained_variance"
    out.add("explained_variance", out.values[main], interval=out.intervals.get(main),
            reason=out.reasons.get(main, "undefined"))
    return out.build(floor=0.0, ceiling=1.0, method="percentile bootstrap over clips, 95%",
                     n=int(cfg["bootstrap_resamples"]))
