"""cross_model_alignment (see README.md in this folder)."""

from __future__ import annotations

import numpy as np

from audiosaebench.codes import sparse_frame_codes
from audiosaebench.sae.reference import random_sae
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, null_result, percentile_interval
from audiosaebench.toolkit.overlap import max_chi

ROLES = ("speech_test", "nonspeech_test", "commands_test")
NAMES = ("mutual_aligned_fraction@0.5", "aligned_fraction@0.5", "aligned_fraction@0.5_reverse", "chi_aligned_fraction@0.5",
         "mutual_aligned_fraction@0.5_random", "linear_cka")


def align_frames(acts_a, ad_a, acts_b, ad_b) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (a, b) of the same clips matched by frame-centre time: every frame of the coarser
    grid with the nearest frame of the finer one. Identical grids give the identity."""
    if acts_a.clip_ids != acts_b.clip_ids:
        raise ValueError("the two activation sets list different clips")
    oa, ob = acts_a.offsets, acts_b.offsets
    ra, rb = [], []
    for i in range(len(oa) - 1):
        na, nb = int(oa[i + 1] - oa[i]), int(ob[i + 1] - ob[i])
        if na == 0 or nb == 0:
            continue
        ca, cb = ad_a.frame_centres_s(na), ad_b.frame_centres_s(nb)
        coarse_is_a = na <= nb
        coarse, fine = (ca, cb) if coarse_is_a else (cb, ca)
        j = np.clip(np.searchsorted(fine, coarse), 1, len(fine) - 1) if len(fine) > 1 else np.zeros(len(coarse), int)
        if len(fine) > 1:
            j = np.where(np.abs(fine[j - 1] - coarse) <= np.abs(fine[j] - coarse), j - 1, j)
        near = np.arange(len(coarse))
        ia, ib = (near, j) if coarse_is_a else (j, near)
        ra.append(oa[i] + ia)
        rb.append(ob[i] + ib)
    return np.concatenate(ra).astype(np.int64), np.concatenate(rb).astype(np.int64)


def _k(sae) -> int:
    """The random reference's TopK budget: the SAE's own k, else 32, never above its width."""
    return max(1, min(sae.info.k or 32, sae.d_sae))


def _codes(sae, acts, rows: np.ndarray):
    """z at ``rows`` (any order, repeats allowed) as CSC."""
    uniq, inv = np.unique(rows, return_inverse=True)
    return sparse_frame_codes(sae, acts, uniq)[inv].tocsc()


def max_correlation(za, zb, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """For each feature of A: the best Pearson correlation with any feature of B over the frames, and
    which feature (constant features correlate 0)."""
    n = za.shape[0]
    ma, mb = np.asarray(za.mean(0)).ravel(), np.asarray(zb.mean(0)).ravel()
    sa = np.sqrt(np.maximum(np.asarray(za.multiply(za).mean(0)).ravel() - ma**2, 0))
    sb = np.sqrt(np.maximum(np.asarray(zb.multiply(zb).mean(0)).ravel() - mb**2, 0))
    best, arg = np.zeros(za.shape[1]), np.zeros(za.shape[1], dtype=np.int64)
    for s in range(0, za.shape[1], block):
        e = min(s + block, za.shape[1])
        cov = (za[:, s:e].T @ zb).toarray() / n - ma[s:e, None] * mb[None, :]
        den = sa[s:e, None] * sb[None, :]
        r = np.where(den > 0, cov / np.where(den > 0, den, 1), 0.0)
        arg[s:e] = r.argmax(1)
        best[s:e] = r[np.arange(e - s), arg[s:e]]
    return best, arg


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(0)
    y = y - y.mean(0)
    num = np.linalg.norm(x.T @ y) ** 2
    return float(num / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _alignment(za, zb, theta: float) -> dict:
    alive_a = np.asarray((za != 0).sum(0)).ravel() > 0
    alive_b = np.asarray((zb != 0).sum(0)).ravel() > 0
    r_ab, arg_ab = max_correlation(za, zb)
    r_ba, arg_ba = max_correlation(zb, za)
    mutual = (arg_ba[arg_ab] == np.arange(za.shape[1])) & (r_ab >= theta)
    ba, bb = za.copy(), zb.copy()
    ba.data, bb.data = np.ones_like(ba.data), np.ones_like(bb.data)
    chi = max_chi(ba.tocsc(), bb.tocsc())
    frac = lambda m, alive: float(m[alive].mean()) if alive.any() else None  # noqa: E731
    return {"mutual": mutual, "alive_a": alive_a,
            "mutual_aligned_fraction@0.5": frac(mutual, alive_a),
            "aligned_fraction@0.5": frac(r_ab >= theta, alive_a),
            "aligned_fraction@0.5_reverse": frac(r_ba >= theta, alive_b),
            "chi_aligned_fraction@0.5": frac(chi > theta, alive_a)}


def _pair_codes(ctx: TaskContext, a, b, cap: int, rng: np.random.Generator, seed: int) -> dict:
    """Codes of A, B and of random SAEs of their shapes on the time-aligned test frames, and the raw
    activations behind them (at most ``cap`` frame pairs per role, drawn with the seed)."""
    from scipy import sparse

    ad_a, ad_b = ctx.model, ctx.model_of(b)
    ra_sae = random_sae(a.d_in, a.d_sae, _k(a), a.info.model_id, a.info.hook_point, seed=seed + 11).to(a.device)
    rb_sae = random_sae(b.d_in, b.d_sae, _k(b), b.info.model_id, b.info.hook_point, seed=seed + 12).to(b.device)
    parts: dict[str, list] = {k: [] for k in ("za", "zb", "zra", "zrb", "xa", "xb")}
    for role in ROLES:
        acts_a, acts_b = ctx.activations(role), ctx.activations(role, of=b)
        rows_a, rows_b = align_frames(acts_a, ad_a, acts_b, ad_b)
        if cap and len(rows_a) > cap:
            pick = np.sort(rng.choice(len(rows_a), cap, replace=False))
            rows_a, rows_b = rows_a[pick], rows_b[pick]
        for key, sae, acts, rows in (("za", a, acts_a, rows_a), ("zb", b, acts_b, rows_b),
                                     ("zra", ra_sae, acts_a, rows_a), ("zrb", rb_sae, acts_b, rows_b)):
            parts[key].append(_codes(sae, acts, rows))
        parts["xa"].append(acts_a.take(rows_a))
        parts["xb"].append(acts_b.take(rows_b))
    out = {k: sparse.vstack(parts[k]).tocsc() for k in ("za", "zb", "zra", "zrb")}
    return {**out, "xa": np.concatenate(parts["xa"]), "xb": np.concatenate(parts["xb"])}


def _align_pair(ctx: TaskContext, a, b, cfg, rng: np.random.Generator, seed: int) -> tuple[dict, np.ndarray]:
    """One partner's row of ``details.pairs`` and A's per-feature mutual matches (alive features)."""
    theta, cap = float(cfg["theta"]), int(cfg["max_frames"])
    c = _pair_codes(ctx, a, b, cap, rng, seed)
    res = _alignment(c["za"], c["zb"], theta)
    rnd = _alignment(c["zra"], c["zrb"], theta)
    xa, xb = c["xa"], c["xb"]
    sub = np.sort(rng.choice(len(xa), min(len(xa), cap or len(xa)), replace=False))
    row = {"partner": b.info.id, "partner_model": b.info.model_id, "partner_hook": b.info.hook_point,
           "frames": int(c["za"].shape[0]), "linear_cka": linear_cka(xa[sub].astype(np.float64), xb[sub].astype(np.float64)),
           "mutual_aligned_fraction@0.5_random": rnd["mutual_aligned_fraction@0.5"],
           **{k: v for k, v in res.items() if k not in ("mutual", "alive_a")}}
    return row, res["mutual"][res["alive_a"]].astype(float)


def run_alignment(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg, seed, a = ctx.config, ctx.seed, ctx.sae
    if not ctx.partners:
        return null_result(metadata, NAMES, "cross_model_alignment needs a partner SAE (pass --sae for it too), "
                           "e.g. on another model or layer")
    rng = np.random.default_rng(seed)
    per_pair, boot_items = [], []
    for b in ctx.partners:
        row, mutual = _align_pair(ctx, a, b, cfg, rng, seed)
        per_pair.append(row)
        boot_items.append(mutual)
    out = ResultBuilder(metadata)
    for n in NAMES:
        vals = [p[n] for p in per_pair if p[n] is not None]
        out.add(n, float(np.mean(vals)) if vals else None, reason="no feature fires on the aligned frames")
    items = [it for it in boot_items if len(it)]
    n_boot = int(cfg["bootstrap_resamples"])
    if items:
        bs = [np.mean([it[rng.integers(0, len(it), len(it))].mean() for it in items]) for _ in range(n_boot)]
        out.interval("mutual_aligned_fraction@0.5", percentile_interval(bs))
    out.details["pairs"] = per_pair
    out.frames.update({r: ctx.activations(r).n_frames for r in ROLES})
    return out.build(floor=out.values["mutual_aligned_fraction@0.5_random"], ceiling=1.0,
                     method="percentile bootstrap over A's alive features, 95%", n=n_boot)
