"""fidelity, activation-space part (see README.md in this folder for the formulas)."""

from __future__ import annotations

import numpy as np
import torch

from audiosaebench.codes import iter_codes
from audiosaebench.hashing import finite_or_none
from audiosaebench.task import TaskContext, TaskResult

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


SPLICE_DIRECTIONS = {
    "splice_recovered": True, "loss_recovered": True, "loss_recovered_mean_ablation": True, "ce_clean": False,
    "ce_sae": False, "ce_zero_ablation": False, "ce_mean_ablation": False, "wer_clean": False, "wer_sae": False,
    "wer_delta": False, "representation_recovered": True,
}


def _splice_into(ctx, values, hib, reasons, unc, rng) -> dict:
    """Add the splice metrics to ``values``/``hib``/``reasons``/``unc``; return their details."""
    from audiosaebench_tasks.fidelity.splice import encoder_splice, whisper_splice

    ad = ctx.model
    man = ctx.manifest(MAIN_ROLE)
    hook = ctx.sae.info.hook_point
    if ad.family == "whisper":
        names = [n for n in SPLICE_DIRECTIONS if n != "representation_recovered"]
        if not all(c.labels.get("text") for c in man):
            v, u, r, d = {}, {}, dict.fromkeys(names, f"{MAIN_ROLE} has no transcripts"), {}
        else:
            acts = ctx.activations(MAIN_ROLE)
            mean = torch.from_numpy(np.asarray(sum(c.sum(0, dtype=np.float64) for _, c in acts.iter_chunks()) / max(acts.n_frames, 1), dtype=np.float32))
            v, u, r, d = whisper_splice(ctx, man, hook, mean, ctx.config, rng)
            if r:
                r = dict.fromkeys(names, next(iter(r.values())))
        v["splice_recovered"] = v.get("loss_recovered")
        if "loss_recovered" in u:
            u["splice_recovered"] = u["loss_recovered"]
    else:
        names = ["splice_recovered", "representation_recovered"]
        v, u, r, d = encoder_splice(ctx, man, hook, ctx.config, rng)
        v["splice_recovered"] = v.get("representation_recovered")
        if "representation_recovered" in u:
            u["splice_recovered"] = u["representation_recovered"]
    for n in names:
        values[n] = v.get(n)
        hib[n] = SPLICE_DIRECTIONS[n]
        if values[n] is None:
            reasons[n] = r.get(n) or r.get("loss_recovered") or "undefined (zero ablation does not change the output)"
    unc.update(u)
    return d


def run_fidelity(ctx: TaskContext, roles: tuple[str, ...]) -> TaskResult:
    cfg = ctx.config
    sae = ctx.sae
    chunk = int(cfg["chunk_rows"]) or None
    values: dict[str, float | None] = {}
    hib: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    unc: dict[str, list[float]] = {}
    frames: dict[str, int] = {}
    fires_all = np.zeros(sae.d_sae)
    rng = np.random.default_rng(ctx.seed)
    directions = {"l0": False, "dead_fraction": False, "dense_fraction": False, "explained_variance": True,
                  "mse": False, "cosine": True, "relative_reconstruction_bias": False}
    for role in roles:
        acts = ctx.activations(role)
        s = _split_stats(sae, acts, chunk)
        total = float(s["n"].sum())
        frames[role] = int(total)
        fires_all += s["fires"]
        if total == 0:
            for m in directions:
                values[f"{role}/{m}"] = None
                reasons[f"{role}/{m}"] = f"no valid frames in {role}"
        else:
            vals = {
                "l0": s["l0"].sum() / total,
                "dead_fraction": float((s["fires"] == 0).mean()),
                "dense_fraction": float((s["fires"] / total > cfg["dense_threshold"]).mean()),
                "explained_variance": _ev(s["sse"], s["sumsq"], s["sum_x"], s["n"]),
                "mse": s["sse"].sum() / (total * s["d"]),
                "cosine": s["cos"].sum() / total,
                "relative_reconstruction_bias": s["xhat_sq"] / s["x_dot"] if s["x_dot"] else None,
            }
            for m, v in vals.items():
                values[f"{role}/{m}"] = finite_or_none(v)
                if values[f"{role}/{m}"] is None:
                    reasons[f"{role}/{m}"] = "undefined on this split (zero denominator)"
            # bootstrap over clips (items) for EV and L0
            nc = len(s["n"])
            boots_ev, boots_l0 = [], []
            for _ in range(int(cfg["bootstrap_resamples"])):
                pick = rng.integers(0, nc, nc)
                if s["n"][pick].sum() == 0:
                    continue
                boots_ev.append(_ev(s["sse"][pick], s["sumsq"][pick], s["sum_x"][pick], s["n"][pick]))
                boots_l0.append(s["l0"][pick].sum() / s["n"][pick].sum())
            for m, b in (("explained_variance", boots_ev), ("l0", boots_l0)):
                b = [v for v in b if v is not None and np.isfinite(v)]
                if b:
                    unc[f"{role}/{m}"] = [float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))]
        for m, hb in directions.items():
            hib[f"{role}/{m}"] = hb
    if cfg["splice"]:
        splice_details = _splice_into(ctx, values, hib, reasons, unc, rng)
    else:
        splice_details = {}
        values["splice_recovered"], hib["splice_recovered"] = None, True
        reasons["splice_recovered"] = "splice disabled (splice=false)"
    values["dead_fraction"] = float((fires_all == 0).mean())
    hib["dead_fraction"] = False
    details = {"feature_fire_counts_total": int((fires_all > 0).sum())}
    details.update(splice_details)
    values["explained_variance"] = values[f"{MAIN_ROLE}/explained_variance"]
    hib["explained_variance"] = True
    if values["explained_variance"] is None:
        reasons["explained_variance"] = reasons.get(f"{MAIN_ROLE}/explained_variance", "undefined")
    if f"{MAIN_ROLE}/explained_variance" in unc:
        unc["explained_variance"] = unc[f"{MAIN_ROLE}/explained_variance"]
    return TaskResult(
        values=values,
        higher_is_better=hib,
        floor=0.0,
        ceiling=1.0,
        reasons=reasons,
        uncertainty=unc,
        uncertainty_method="percentile bootstrap over clips, 95%",
        uncertainty_n=int(cfg["bootstrap_resamples"]),
        details=details,
        frames=frames,
    )
