"""causal_patching (see README.md in this folder)."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiosaebench.activations.states import continuation_states
from audiosaebench.cache import cached_json, cached_tensors
from audiosaebench.models.base import _hidden, _with_hidden
from audiosaebench.sae.reference import identity_sae, pca_sae, random_sae
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, bootstrap_mean_interval, null_result

log = logging.getLogger(__name__)
MAIN_K = 20
# 5: task 1.1.0 (every usable pair; the floor over several random SAEs; edits declare their extent)
REFERENCE_CACHE_VERSION = 5


@dataclass
class ClipRun:
    """One clip's unpatched run: the hook output on all frames (where the continuation starts), on
    valid frames (what the SAE reads), and the readout scores."""

    index: int
    label: int
    speaker: str
    states: torch.Tensor  # [T, d] all frames (cpu)
    x: torch.Tensor  # [n_valid, d] (cpu)
    scores: np.ndarray  # [n_labels]


@dataclass
class Pair:
    clean: ClipRun
    corr: ClipRun

    @property
    def a(self) -> int:
        return self.clean.label

    @property
    def b(self) -> int:
        return self.corr.label

    def m(self, scores: np.ndarray) -> float:
        return float(scores[self.a] - scores[self.b])

    @property
    def m_clean(self) -> float:
        return self.m(self.clean.scores)

    @property
    def m_corr(self) -> float:
        return self.m(self.corr.scores)


def _order(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()


def _fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad or cut to ``n`` samples (Speech Commands convention: every clip is 1 s)."""
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(wave))] = wave[:n]
    return out


def _candidates(ctx: TaskContext, keywords: list[str], label_key: str, max_pairs: int, seed: int) -> list[tuple[int, Any]]:
    """Clips of the speakers (seeded order) needed for up to ``max_pairs`` pairs."""
    manifest = ctx.manifest("commands_test")
    by_speaker: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for i, c in enumerate(manifest.clips):
        if c.speaker and c.labels.get(label_key) in keywords:
            by_speaker[c.speaker].append((i, c))
    usable = {s: v for s, v in by_speaker.items() if len({c.labels[label_key] for _, c in v}) >= 2}
    out: list[tuple[int, Any]] = []
    for s in sorted(usable, key=lambda s: _order(s, seed)):
        if max_pairs > 0 and len(out) >= 3 * max_pairs:
            break
        out += usable[s]
    return out


def _unpatched_runs(ctx, cont, clips, keywords, label_key, n_samples, n_valid, batch_size, key) -> list[ClipRun]:
    """Every candidate clip's unpatched run; the scores do not depend on the SAE and are cached."""
    ad, manifest = ctx.model, ctx.manifest("commands_test")
    states = []
    for start in range(0, len(clips), batch_size):
        part = clips[start : start + batch_size]
        batch = ad.prepare([_fit_length(manifest.load(c, verify=True), n_samples) for _, c in part])
        states.append(continuation_states(cont, batch))

    def compute() -> dict:
        with torch.no_grad():
            return {"scores": torch.cat([cont(s).float().cpu() for s in states])}

    scores = cached_tensors("causal-cache", {**key, "part": "unpatched"}, compute,
                            lambda d: d.get("scores") is not None and d["scores"].shape == (len(clips), len(keywords)))
    flat = [s for b in states for s in b.cpu()]
    return [ClipRun(i, keywords.index(c.labels[label_key]), c.speaker, st, st[:n_valid].float(), sc)
            for (i, c), st, sc in zip(clips, flat, scores["scores"].numpy(), strict=True)]


def _pairs(runs: list[ClipRun], max_pairs: int, min_effect: float, seed: int) -> tuple[list[Pair], int]:
    """Each clip is clean at most once; its corrupted partner is the first same-speaker clip (seeded
    order) with another keyword and m_clean - m_corr >= min_effect. Speakers take turns."""
    by_speaker: dict[str, list[ClipRun]] = defaultdict(list)
    for r in runs:
        by_speaker[r.speaker].append(r)
    queues = []
    considered = 0
    for s in sorted(by_speaker, key=lambda s: _order(s, seed)):
        rs = sorted(by_speaker[s], key=lambda r: _order(str(r.index), seed))
        found = []
        for clean in rs:
            for corr in sorted(rs, key=lambda r: _order(f"{clean.index}/{r.index}", seed)):
                if corr.label == clean.label:
                    continue
                considered += 1
                p = Pair(clean, corr)
                gap = p.m_clean - p.m_corr
                if gap >= min_effect and gap > 1e-6:  # recovery divides by the gap
                    found.append(p)
                    break
        queues.append(found)
    out: list[Pair] = []
    cap = max_pairs if max_pairs > 0 else sum(len(q) for q in queues)
    while len(out) < cap and any(queues):
        for q in queues:
            if q and len(out) < cap:
                out.append(q.pop(0))
    return out, considered


def _output_gradients(cont, pairs: list[Pair], n_valid: int, batch_size: int) -> list[torch.Tensor]:
    """d m / d x at the hook on the corrupted run's valid frames, per pair ([n_valid, d], cpu)."""
    grads: list[torch.Tensor] = []
    dev = cont.device
    for start in range(0, len(pairs), batch_size):
        part = pairs[start : start + batch_size]
        hin = torch.stack([p.corr.states for p in part]).to(dev)
        leaf: dict[str, torch.Tensor] = {}

        def hook_fn(_m, _i, output, leaf=leaf):
            h = _hidden(output).detach().requires_grad_(True)
            leaf["x"] = h
            return _with_hidden(output, h)

        handle = cont.hook_module.register_forward_hook(hook_fn)
        try:
            with torch.enable_grad():
                scores = cont(hin)
                rows = torch.arange(len(part), device=dev)
                a = torch.tensor([p.a for p in part], device=dev)
                b = torch.tensor([p.b for p in part], device=dev)
                (scores[rows, a] - scores[rows, b]).sum().backward()
        finally:
            handle.remove()
        grad = leaf["x"].grad
        assert grad is not None  # the readout depends on every hook frame
        grads += [g[:n_valid].float().cpu() for g in grad]
    return grads


def feature_attribution(sae, x_clean: torch.Tensor, x_corr: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """sum over frames of (z_clean - z_corr) * d m / d z, with d m / d z = <d m / d x, d x / d z> at the
    corrupted run (x = decode(z) + error, so d x / d z_j is feature j's contribution per unit)."""
    dev = sae.device
    z_clean = sae.encode(x_clean.to(dev))
    z_corr, state = sae.encode_with_state(x_corr.to(dev))
    z = z_corr.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        every = torch.arange(sae.d_sae, device=dev)
        (sae.contribution(z, every, state) * grad.to(dev)).sum().backward()
    return ((z_clean - z_corr) * z.grad).sum(0).float().cpu()


def top_k(attribution: torch.Tensor, k: int) -> list[int]:
    """The k features with the largest (signed) attribution; ties broken by feature index."""
    order = np.lexsort((np.arange(len(attribution)), -attribution.numpy()))
    return [int(i) for i in order[:k]]


def _patched_scores(patcher, pairs: list[Pair], features: list[list[int]], mode: str, n_valid: int,
                    batch_size: int) -> np.ndarray:
    dev = patcher.continuation.device
    out = []
    positions_all = list(range(n_valid))
    for start in range(0, len(pairs), batch_size):
        part = pairs[start : start + batch_size]
        base = torch.stack([(p.corr if mode == "patch" else p.clean).states for p in part]).to(dev)
        source = torch.stack([p.clean.x for p in part]).to(dev, base.dtype)
        scores = patcher(base, [positions_all] * len(part), features[start : start + batch_size], source, mode)
        out.append(scores.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


REFERENCES = ("neurons", "pca", "random")


def _bases(ctx: TaskContext, cfg: Any, seed: int) -> dict[str, Any]:
    """The SAE and the references it is read against at the same k: the neuron basis, PCA directions of
    commands_train and ``n_random`` random TopK SAEs of the SAE's shape (``random_0`` ...)."""
    sae = ctx.sae
    model_id, hook = str(sae.info.model_id), str(sae.info.hook_point)
    out: dict[str, Any] = {"sae": sae}
    refs = list(cfg["references"])
    unknown = set(refs) - set(REFERENCES)
    if unknown:
        from audiosaebench.errors import TaskError

        raise TaskError(f"causal_patching references must be among {', '.join(REFERENCES)}; got {sorted(unknown)}")
    if "neurons" in refs:
        out["neurons"] = identity_sae(sae.d_in, model_id, hook).to(sae.device)
    if "pca" in refs:
        acts = ctx.activations("commands_train")
        rng = np.random.default_rng(seed)
        n = min(acts.n_frames, int(cfg["pca_max_frames"]))
        rows = np.sort(rng.choice(acts.n_frames, n, replace=False))
        out["pca"] = pca_sae(acts.take(rows), model_id, hook).to(sae.device)
    if "random" in refs:
        k = max(1, min(sae.info.k or 32, sae.d_sae))
        for r in range(int(cfg["n_random"])):
            out[f"random_{r}"] = random_sae(sae.d_in, sae.d_sae, k, model_id, hook, seed=seed + 21 + r).to(sae.device)
    return out


def _ks(cfg: Any) -> list[int]:
    return sorted({int(k) for k in cfg["ks"]} | {MAIN_K})  # the main score is always computed


@dataclass
class Prepared:
    """The pairs every basis is scored on, their unpatched runs and output gradients, and the run's cache key."""

    cont: Any
    pairs: list[Pair]
    grads: list[torch.Tensor]
    n_valid: int
    run_key: dict[str, Any]
    details: dict[str, Any]

    @property
    def m_corr(self) -> np.ndarray:
        return np.array([p.m_corr for p in self.pairs])

    @property
    def denom(self) -> np.ndarray:
        return np.array([p.m_clean - p.m_corr for p in self.pairs])

    def recovery(self, scores: np.ndarray) -> np.ndarray:
        return (np.array([p.m(s) for p, s in zip(self.pairs, scores, strict=True)]) - self.m_corr) / self.denom


def _prepare(ctx: TaskContext, cfg: Any) -> Prepared | str:
    """Candidate clips, the readout, unpatched runs (cached), minimal pairs and gradients (cached); or why
    there is nothing to patch."""
    from audiosaebench.models.continuation import Continuation
    from audiosaebench_tasks.causal_patching.readout import build_readout

    seed, keywords, label_key = ctx.seed, [str(k) for k in cfg["keywords"]], str(cfg["label_key"])
    max_pairs, batch_size = int(cfg["max_pairs"]), int(cfg["batch_size"])
    ad, sae = ctx.model, ctx.sae
    n_samples = int(round(float(cfg["clip_seconds"]) * 16_000))
    n_valid = ad.valid_frames(n_samples)
    clips = _candidates(ctx, keywords, label_key, max_pairs, seed)
    if not clips:
        return f"commands_test has no speaker with two different keywords among {keywords} (label {label_key!r})"
    if ad.family == "whisper" and not (Path(ad.source_dir or "") / "tokenizer.json").exists():
        return f"the Whisper model folder has no tokenizer.json ({ad.source_dir}); the keyword readout needs it"
    readout, readout_info = build_readout(ctx, keywords, label_key, float(cfg["probe_C"]))
    cont = Continuation(ad, str(sae.info.hook_point), readout, start="output")
    run_key = {"v": REFERENCE_CACHE_VERSION, "model": ad.identity.to_dict(), "dtype": str(ad.dtype),
               "hook": cont.hook.name, "manifest": ctx.manifest("commands_test").sha256,
               "clips": [i for i, _ in clips], "readout": readout_info, "n_samples": n_samples, "batch_size": batch_size}
    runs = _unpatched_runs(ctx, cont, clips, keywords, label_key, n_samples, n_valid, batch_size, run_key)
    pairs, considered = _pairs(runs, max_pairs, float(cfg["min_effect"]), seed)
    clean_acc = float(np.mean([int(np.argmax(r.scores)) == r.label for r in runs]))
    if not pairs:
        return (f"no minimal pair with m_clean - m_corr >= {cfg['min_effect']} among {considered} candidates "
                f"(the readout's accuracy on the clean clips is {clean_acc:.2f})")
    grads = list(cached_tensors(
        "causal-cache", {**run_key, "part": "gradients", "pairs": [(p.clean.index, p.corr.index) for p in pairs]},
        lambda: {"grads": torch.stack(_output_gradients(cont, pairs, n_valid, batch_size))},
        lambda d: d.get("grads") is not None and d["grads"].shape == (len(pairs), n_valid, ad.hidden_size))["grads"])
    test_clips = ctx.manifest("commands_test").clips
    details = {**readout_info,
               "pairs": [{"clean": test_clips[p.clean.index].clip_id, "corrupted": test_clips[p.corr.index].clip_id,
                          "a": keywords[p.a], "b": keywords[p.b], "m_clean": round(p.m_clean, 4),
                          "m_corr": round(p.m_corr, 4)} for p in pairs],
               "candidate_pairs_considered": considered, "readout_accuracy_clean_clips": round(clean_acc, 4),
               "patched_frames": n_valid, "intervention": f"pyvene {_pyvene_version()} component {cont.component}"}
    return Prepared(cont, pairs, grads, n_valid, run_key, details)


def _patched(pp: Prepared, basis: Any, features: list[list[int]], mode: str, batch_size: int) -> np.ndarray:
    from audiosaebench.interventions import FeaturePatcher

    return _patched_scores(FeaturePatcher(pp.cont, basis), pp.pairs, features, mode, pp.n_valid, batch_size)


def _attributions(pp: Prepared, basis: Any) -> list[torch.Tensor]:
    return [feature_attribution(basis, p.clean.x, p.corr.x, g) for p, g in zip(pp.pairs, pp.grads, strict=True)]


def _top(attrs: list[torch.Tensor], basis: Any, k: int) -> list[list[int]]:
    return [top_k(a, min(k, basis.d_sae)) for a in attrs]


def _references(ctx: TaskContext, pp: Prepared, bases: dict[str, Any], cfg: Any, ks: list[int]) -> dict[str, np.ndarray]:
    """Per pair: the ceiling and each reference's recovery@k. They do not depend on the evaluated SAE (the
    random SAEs only on its shape): cached per model, hook, data, pairs and options."""
    bs = int(cfg["batch_size"])
    shared = {"v": REFERENCE_CACHE_VERSION, "model": ctx.model.identity.to_dict(), "dtype": str(ctx.model.dtype),
              "hook": pp.cont.hook.name, "manifests": [ctx.manifest(r).sha256 for r in ("commands_test", "commands_train")],
              "pairs": [(p.clean.index, p.corr.index) for p in pp.pairs], "seed": ctx.seed, "ks": ks, "n_valid": pp.n_valid,
              "options": {k: cfg[k] for k in ("keywords", "label_key", "clip_seconds", "pca_max_frames", "probe_C")}}

    def cached(name: str, basis: Any, compute: Callable[[], dict]) -> dict:
        return cached_json("causal-cache", {**shared, "basis": name, "basis_sha256": basis.info.sha256}, compute,
                           lambda d: isinstance(d, dict) and all(isinstance(v, list) and len(v) == len(pp.pairs)
                                                                 for v in d.values()))

    ceiling = bases["neurons"] if "neurons" in bases else identity_sae(
        ctx.sae.d_in, str(ctx.sae.info.model_id), str(ctx.sae.info.hook_point)).to(ctx.sae.device)
    every = [list(range(ceiling.d_sae))] * len(pp.pairs)
    out = {"recovery_ceiling": np.array(cached("ceiling", ceiling, lambda: {
        "recovery_ceiling": pp.recovery(_patched(pp, ceiling, every, "patch", bs)).tolist()})["recovery_ceiling"])}
    for name, basis in bases.items():
        if name == "sae":
            continue

        def compute(basis: Any = basis) -> dict:
            attrs = _attributions(pp, basis)
            return {f"recovery@{k}": pp.recovery(_patched(pp, basis, _top(attrs, basis, k), "patch", bs)).tolist()
                    for k in ks}

        got = cached(name.split("_")[0] if name.startswith("random") else name, basis, compute)
        out.update({f"{key}_{name}": np.array(v) for key, v in got.items()})
    return out


def _score_sae(pp: Prepared, sae: Any, ks: list[int], bs: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per pair, the SAE's recovery, interchange accuracy and necessity at each k, and with every feature."""
    per_pair: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"id": sae.info.id, "d_sae": sae.d_sae, "features@k": {}}
    m_clean = np.array([p.m_clean for p in pp.pairs])
    attrs = _attributions(pp, sae)
    for k in ks:
        feats = _top(attrs, sae, k)
        scores = _patched(pp, sae, feats, "patch", bs)
        per_pair[f"recovery@{k}"] = pp.recovery(scores)
        per_pair[f"interchange_accuracy@{k}"] = np.array(
            [float(int(np.argmax(s)) == p.a) for p, s in zip(pp.pairs, scores, strict=True)])
        ablated = _patched(pp, sae, feats, "ablate", bs)
        per_pair[f"necessity@{k}"] = (m_clean - np.array([p.m(s) for p, s in zip(pp.pairs, ablated, strict=True)])) / pp.denom
        info["features@k"][str(k)] = sorted({f for fs in feats for f in fs})[:200]
    per_pair["recovery_all_features"] = pp.recovery(_patched(pp, sae, [list(range(sae.d_sae))] * len(pp.pairs), "patch", bs))
    return per_pair, info


def _random_floor(per_pair: dict[str, np.ndarray], refs: dict[str, np.ndarray], ks: list[int]) -> dict[str, Any]:
    """The floor: per pair, the mean recovery@k over the random SAEs; the SAE's gain over it, paired."""
    spread = {}
    for k in ks:
        draws = np.stack([v for name, v in refs.items() if name.startswith(f"recovery@{k}_random_")])
        per_pair[f"recovery@{k}_random"] = draws.mean(0)
        per_pair[f"recovery@{k}_gain_over_random"] = per_pair[f"recovery@{k}"] - draws.mean(0)
        spread[str(k)] = [round(float(d.mean()), 4) for d in draws]
    return spread


def run_causal_patching(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg, ks = ctx.config, _ks(ctx.config)
    pp = _prepare(ctx, cfg)
    if isinstance(pp, str):
        return null_result(metadata, [f"recovery@{k}" for k in ks], pp)
    bases = _bases(ctx, cfg, ctx.seed)
    refs = _references(ctx, pp, bases, cfg, ks)
    per_pair, info = _score_sae(pp, ctx.sae, ks, int(cfg["batch_size"]))
    per_pair.update({k: v for k, v in refs.items() if not k.split("_")[-1].isdigit()})
    spread = _random_floor(per_pair, refs, ks) if int(cfg["n_random"]) and "random" in cfg["references"] else {}
    n_boot = int(cfg["bootstrap_resamples"])
    idx = np.random.default_rng(ctx.seed).integers(0, len(pp.pairs), (n_boot, len(pp.pairs)))
    out = ResultBuilder(metadata)
    for name, arr in per_pair.items():
        out.add(name, float(arr.mean()), interval=bootstrap_mean_interval(arr, idx), reason="not finite")
        if name.startswith("recovery@") and "_" not in name:
            out.add(name.replace("recovery@", "recovery_median@"), float(np.median(arr)), reason="not finite")
    out.add("n_pairs", float(len(pp.pairs)))
    out.details.update({**pp.details, "per_basis": {"sae": info, **{n: {"id": b.info.id, "d_sae": b.d_sae}
                                                                    for n, b in bases.items() if n != "sae"}},
                        "random_recovery_by_draw": spread})
    used = {p.clean.index for p in pp.pairs} | {p.corr.index for p in pp.pairs}
    out.frames.update({"commands_test": pp.n_valid * len(used),
                       "commands_train": ctx.activations("commands_train").n_frames if "pca" in bases else 0})
    return out.build(floor=out.values.get(f"recovery@{MAIN_K}_random"), ceiling=out.values.get("recovery_ceiling"),
                     method="percentile bootstrap over minimal pairs, 95%", n=n_boot)


def _pyvene_version() -> str:
    from importlib.metadata import version

    return version("pyvene")
