"""stability (see README.md in this folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from audiosaebench.codes import sparse_frame_codes
from audiosaebench.sae.reference import random_sae
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, null_result, percentile_interval
from audiosaebench.toolkit.overlap import max_chi

ROLES = ("speech_test", "nonspeech_test", "commands_test")
COMPARED = ("architecture", "d_in", "d_sae", "k", "normalize_activations", "apply_b_dec_to_input")


def differences(a, b) -> list[str]:
    """How two SAEs differ other than in seed: their configuration, and their training recipes when
    both folders hold a training.json (as `train-reference` writes)."""
    out = [f"{f}: {getattr(a.info, f)!r} vs {getattr(b.info, f)!r}" for f in COMPARED if getattr(a.info, f) != getattr(b.info, f)]
    recipes: list[dict | None] = []
    for s in (a, b):
        p = Path(s.info.source_path or "") / "training.json"
        try:
            rec = json.loads(p.read_text())
            recipes.append({k: v for k, v in rec.get("recipe", {}).items() if k != "seed"} | {"data": rec.get("data")})
        except (OSError, ValueError):
            recipes.append(None)
    ra, rb = recipes
    if ra is not None and rb is not None and ra != rb:
        keys = sorted(k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k))
        out.append("training recipe differs in " + ", ".join(keys))
    return out


def active_matrix(sae, ctx: TaskContext, rows: dict[str, np.ndarray]):
    """Binary CSC [frames, d_sae]: which features fire on the eval frames."""
    from scipy import sparse

    z = sparse.vstack([sparse_frame_codes(sae, ctx.activations(r), rows[r]) for r in rows]).tocsc()
    z.data = np.ones_like(z.data)
    return z


def decoder_match(a, b, hungarian_max: int, block: int = 2048) -> dict[str, float | None]:
    """Mutual nearest neighbours by decoder cosine, and the exact one-to-one matching when small."""
    da, db = a.decoder_directions().float().cpu(), b.decoder_directions().float().cpu()
    best_ab = torch.full((da.shape[0],), -2.0)
    arg_ab = torch.zeros(da.shape[0], dtype=torch.long)
    best_ba = torch.full((db.shape[0],), -2.0)
    arg_ba = torch.zeros(db.shape[0], dtype=torch.long)
    for s in range(0, da.shape[0], block):
        cos = da[s : s + block] @ db.T
        m, i = cos.max(1)
        best_ab[s : s + block], arg_ab[s : s + block] = m, i
        m2, i2 = cos.max(0)
        better = m2 > best_ba
        best_ba[better], arg_ba[better] = m2[better], i2[better] + s
    mutual = arg_ba[arg_ab] == torch.arange(da.shape[0])
    out: dict[str, float | None] = {
        "decoder_mnn_fraction@0.7": float((mutual & (best_ab >= 0.7)).float().mean()),
        "decoder_mean_max_cosine": float(best_ab.mean()),
        "decoder_hungarian_mean_cosine": None,
        "decoder_hungarian_fraction@0.7": None,
    }
    if max(da.shape[0], db.shape[0]) <= hungarian_max:
        from scipy.optimize import linear_sum_assignment

        cos = (da @ db.T).numpy()
        r, c = linear_sum_assignment(cos, maximize=True)
        matched = cos[r, c]
        out["decoder_hungarian_mean_cosine"] = float(matched.sum() / da.shape[0])
        out["decoder_hungarian_fraction@0.7"] = float((matched >= 0.7).sum() / da.shape[0])
    return out


def _frac(hits: np.ndarray) -> float:
    """Fraction of alive features that matched; 0 when no feature is alive (nothing is matched)."""
    return float(hits.mean()) if len(hits) else 0.0


NAMES = ("chi_coverage@0.5", "chi_coverage@0.5_random", "duplicate_fraction@0.5", "decoder_mnn_fraction@0.7",
         "decoder_mean_max_cosine", "decoder_hungarian_mean_cosine", "decoder_hungarian_fraction@0.7")
PAIR_MEANS = ("chi_coverage@0.5", "decoder_mnn_fraction@0.7", "decoder_mean_max_cosine",
              "decoder_hungarian_mean_cosine", "decoder_hungarian_fraction@0.7")


def _eval_rows(ctx: TaskContext, cap: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per test role, the frames compared: all, or ``cap`` drawn with the seed."""
    rows = {}
    for r in ROLES:
        n = ctx.activations(r).n_frames
        rows[r] = np.sort(rng.choice(n, cap, replace=False)) if cap and n > cap else np.arange(n)
    return rows


def _coverage(za, zb, theta: float) -> tuple[float, np.ndarray, np.ndarray]:
    """chi coverage both ways, and each direction's per-feature hits (alive features only)."""
    alive_a = np.asarray(za.sum(0)).ravel() > 0
    alive_b = np.asarray(zb.sum(0)).ravel() > 0
    hit_ab = max_chi(za, zb)[alive_a] > theta
    hit_ba = max_chi(zb, za)[alive_b] > theta
    return _frac(hit_ab) / 2 + _frac(hit_ba) / 2, hit_ab.astype(float), hit_ba.astype(float)


def _compare(a, za, partners, ctx: TaskContext, rows, cfg) -> tuple[list[dict], list[tuple[np.ndarray, np.ndarray]]]:
    """Per partner: chi coverage, decoder matching and how the two differ; and the per-feature hits."""
    theta = float(cfg["theta"])
    per_pair, items = [], []
    for b in partners:
        cov, hab, hba = _coverage(za, active_matrix(b, ctx, rows), theta)
        per_pair.append({"partner": b.info.id, "partner_sha256": b.info.sha256, "chi_coverage@0.5": float(cov),
                         "differences": differences(a, b), **decoder_match(a, b, int(cfg["hungarian_max"]))})
        items.append((hab, hba))
    return per_pair, items


def _random_floor(a, za, ctx: TaskContext, rows, theta: float, seed: int) -> float:
    """The same comparison against a random SAE of the same shape (TopK with the same L0 budget)."""
    k = a.info.k or max(1, int(round(za.sum() / max(1, za.shape[0]))))
    rnd = random_sae(a.d_in, a.d_sae, min(int(k), a.d_sae), a.info.model_id, a.info.hook_point, seed=seed + 1).to(a.device)
    return _coverage(za, active_matrix(rnd, ctx, rows), theta)[0]


def _bootstrap(items, n_boot: int, rng: np.random.Generator) -> list[float]:
    """chi coverage over alive features resampled within each direction of each pair."""
    boots = []
    for _ in range(n_boot):
        covs = []
        for hab, hba in items:
            pa = hab[rng.integers(0, len(hab), len(hab))].mean() if len(hab) else 0.0
            pb = hba[rng.integers(0, len(hba), len(hba))].mean() if len(hba) else 0.0
            covs.append(pa / 2 + pb / 2)
        boots.append(np.mean(covs))
    return percentile_interval(boots)


def run_stability(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg, seed, a = ctx.config, ctx.seed, ctx.sae
    partners = [s for s in ctx.partners if s.info.model_id == a.info.model_id and s.info.hook_point == a.info.hook_point]
    if not partners:
        return null_result(metadata, NAMES, "stability needs a second SAE on the same model and hook that differs "
                           "only in seed (pass --sae twice)")
    rng = np.random.default_rng(seed)
    rows = _eval_rows(ctx, int(cfg["max_frames"]), rng)
    za = active_matrix(a, ctx, rows)
    alive_a = np.asarray(za.sum(0)).ravel() > 0
    dup = max_chi(za, za, exclude_self=True)
    per_pair, items = _compare(a, za, partners, ctx, rows, cfg)
    floor = _random_floor(a, za, ctx, rows, float(cfg["theta"]), seed)
    out = ResultBuilder(metadata)
    out.add("chi_coverage@0.5_random", floor)
    out.add("duplicate_fraction@0.5", float((dup[alive_a] > float(cfg["theta"])).mean()) if alive_a.any() else None,
            reason="no feature fires on the eval frames")
    stds: dict[str, float] = {}
    for name in PAIR_MEANS:
        vals = [p[name] for p in per_pair if p[name] is not None]
        out.add(name, float(np.mean(vals)) if vals else None,
                reason=f"d_sae above hungarian_max={cfg['hungarian_max']}: exact matching skipped")
        if vals:
            stds[name] = float(np.std(vals))
    n_boot = int(cfg["bootstrap_resamples"])
    out.interval("chi_coverage@0.5", _bootstrap(items, n_boot, rng))
    differ = [f"{p['partner']}: {d}" for p in per_pair for d in p["differences"]]
    out.details.update({"pairs": per_pair, "std_over_pairs": stds, "n_pairs": len(per_pair), "seed_only": not differ,
                        "differences": differ, "eval_frames": int(za.shape[0]), "alive_features": int(alive_a.sum())})
    out.frames.update({r: int(len(rows[r])) for r in rows})
    return out.build(floor=out.values["chi_coverage@0.5_random"], ceiling=1.0,
                     method="percentile bootstrap over alive features (both directions), 95%", n=n_boot)
