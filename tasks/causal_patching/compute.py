"""causal_patching (see README.md in this folder)."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiosaebench.activations.states import continuation_states
from audiosaebench.cache import cached_json, cached_tensors
from audiosaebench.models.base import _hidden, _with_hidden
from audiosaebench.sae.reference import identity_sae, pca_sae, random_sae
from audiosaebench.task import TaskContext, TaskResult
from audiosaebench.toolkit import finite_or_none

log = logging.getLogger(__name__)
MAIN_K = 20
# 2: continuation from the hook output (cached states); 3: the harness's text decoder; 4: patched runs take
# the first layer above the hook from its unchanged frames (audiosaebench.models.unedited_frames_memo)
REFERENCE_CACHE_VERSION = 4


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
        if len(out) >= 3 * max_pairs:
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
    while len(out) < max_pairs and any(queues):
        for q in queues:
            if q and len(out) < max_pairs:
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
        grads += [g[:n_valid].float().cpu() for g in leaf["x"].grad]
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


def _bases(ctx: TaskContext, cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    sae = ctx.sae
    model_id, hook = sae.info.model_id, sae.info.hook_point
    out: dict[str, Any] = {"sae": sae}
    refs = list(cfg["references"])
    unknown = set(refs) - {"neurons", "pca", "random"}
    if unknown:
        from audiosaebench.errors import TaskError

        raise TaskError(f"causal_patching references must be among neurons, pca, random; got {sorted(unknown)}")
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
        out["random"] = random_sae(sae.d_in, sae.d_sae, k, model_id, hook, seed=seed + 21).to(sae.device)
    return out


def _interval(values: np.ndarray, idx: np.ndarray) -> list[float]:
    bs = values[idx].mean(1)
    return [float(np.percentile(bs, 2.5)), float(np.percentile(bs, 97.5))]


def _null(reason: str, cfg: dict[str, Any]) -> TaskResult:
    names = [f"recovery@{k}" for k in sorted({int(k) for k in cfg["ks"]} | {MAIN_K})]
    return TaskResult(values=dict.fromkeys(names), higher_is_better=dict.fromkeys(names, True),
                      reasons=dict.fromkeys(names, reason))


def run_causal_patching(ctx: TaskContext) -> TaskResult:
    from audiosaebench.interventions import FeaturePatcher
    from audiosaebench.models.continuation import Continuation
    from audiosaebench_tasks.causal_patching.readout import build_readout

    cfg, seed = ctx.config, ctx.seed
    keywords = [str(k) for k in cfg["keywords"]]
    label_key = str(cfg["label_key"])
    ks = sorted({int(k) for k in cfg["ks"]} | {MAIN_K})  # the main score is always computed
    max_pairs, batch_size = int(cfg["max_pairs"]), int(cfg["batch_size"])
    ad, sae = ctx.model, ctx.sae
    n_samples = int(round(float(cfg["clip_seconds"]) * 16_000))
    n_valid = ad.valid_frames(n_samples)

    clips = _candidates(ctx, keywords, label_key, max_pairs, seed)
    if not clips:
        return _null(f"commands_test has no speaker with two different keywords among {keywords} "
                     f"(label {label_key!r})", cfg)
    if ad.family == "whisper" and not (Path(ad.source_dir or "") / "tokenizer.json").exists():
        return _null(f"the Whisper model folder has no tokenizer.json ({ad.source_dir}); the keyword readout needs it", cfg)
    readout, readout_info = build_readout(ctx, keywords, label_key, float(cfg["probe_C"]))
    cont = Continuation(ad, sae.info.hook_point, readout, start="output")
    # what does not depend on the SAE is cached per model, hook, data, readout and options
    run_key = {"v": REFERENCE_CACHE_VERSION, "model": ad.identity.to_dict(), "dtype": str(ad.dtype),
               "hook": cont.hook.name, "manifest": ctx.manifest("commands_test").sha256,
               "clips": [i for i, _ in clips], "readout": readout_info, "n_samples": n_samples,
               "batch_size": batch_size}
    runs = _unpatched_runs(ctx, cont, clips, keywords, label_key, n_samples, n_valid, batch_size, run_key)
    pairs, considered = _pairs(runs, max_pairs, float(cfg["min_effect"]), seed)
    clean_acc = float(np.mean([int(np.argmax(r.scores)) == r.label for r in runs]))
    if not pairs:
        return _null(f"no minimal pair with m_clean - m_corr >= {cfg['min_effect']} among {considered} candidates "
                     f"(the readout's accuracy on the clean clips is {clean_acc:.2f})", cfg)
    m_clean = np.array([p.m_clean for p in pairs])
    m_corr = np.array([p.m_corr for p in pairs])
    denom = m_clean - m_corr

    grads = list(cached_tensors(
        "causal-cache", {**run_key, "part": "gradients", "pairs": [(p.clean.index, p.corr.index) for p in pairs]},
        lambda: {"grads": torch.stack(_output_gradients(cont, pairs, n_valid, batch_size))},
        lambda d: d.get("grads") is not None and d["grads"].shape == (len(pairs), n_valid, ad.hidden_size))["grads"])
    bases = _bases(ctx, cfg, seed)
    ceiling_basis = bases["neurons"] if "neurons" in bases else identity_sae(
        sae.d_in, sae.info.model_id, sae.info.hook_point).to(sae.device)

    per_pair: dict[str, np.ndarray] = {}
    details: dict[str, Any] = {"per_basis": {}}

    def run(basis, features, mode) -> np.ndarray:
        return _patched_scores(FeaturePatcher(cont, basis), pairs, features, mode, n_valid, batch_size)

    def recovery(scores: np.ndarray) -> np.ndarray:
        return (np.array([p.m(s) for p, s in zip(pairs, scores, strict=True)]) - m_corr) / denom

    # SAE-independent parts (the ceiling, the neuron and PCA references, and the random reference,
    # which depends only on the SAE's shape) are cached per model, hook, data, pairs and options
    shared_key = {"v": REFERENCE_CACHE_VERSION, "model": ad.identity.to_dict(), "dtype": str(ad.dtype),
                  "hook": cont.hook.name, "manifests": [ctx.manifest(r).sha256 for r in ("commands_test", "commands_train")],
                  "pairs": [(p.clean.index, p.corr.index) for p in pairs], "seed": seed, "ks": ks, "n_valid": n_valid,
                  "options": {k: cfg[k] for k in ("keywords", "label_key", "clip_seconds", "pca_max_frames", "probe_C")}}

    def cached(name: str, basis, compute):
        key = {**shared_key, "basis": name, "basis_sha256": basis.info.sha256}
        return cached_json("causal-cache", key, compute, lambda d: isinstance(d, dict) and all(
            isinstance(v, list) and len(v) == len(pairs) for v in d.values()))

    every = [list(range(ceiling_basis.d_sae))] * len(pairs)
    per_pair["recovery_ceiling"] = np.array(cached("ceiling", ceiling_basis, lambda: {
        "recovery_ceiling": recovery(run(ceiling_basis, every, "patch")).tolist()})["recovery_ceiling"])
    for name, basis in bases.items():
        info: dict[str, Any] = {"id": basis.info.id, "d_sae": basis.d_sae}
        details["per_basis"][name] = info
        if name != "sae":

            def reference(basis=basis, name=name) -> dict:
                attrs = [feature_attribution(basis, p.clean.x, p.corr.x, g) for p, g in zip(pairs, grads, strict=True)]
                return {f"recovery@{k}_{name}": recovery(run(basis, [top_k(a, min(k, basis.d_sae)) for a in attrs],
                                                               "patch")).tolist() for k in ks}

            per_pair.update({k: np.array(v) for k, v in cached(name, basis, reference).items()})
            continue
        attrs = [feature_attribution(basis, p.clean.x, p.corr.x, g) for p, g in zip(pairs, grads, strict=True)]
        for k in ks:
            feats = [top_k(a, min(k, basis.d_sae)) for a in attrs]
            scores = run(basis, feats, "patch")
            per_pair[f"recovery@{k}"] = recovery(scores)
            per_pair[f"interchange_accuracy@{k}"] = np.array(
                [float(int(np.argmax(s)) == p.a) for p, s in zip(pairs, scores, strict=True)])
            ablated = run(basis, feats, "ablate")
            per_pair[f"necessity@{k}"] = (m_clean - np.array([p.m(s) for p, s in zip(pairs, ablated, strict=True)])) / denom
            info.setdefault("features@k", {})[str(k)] = sorted({f for fs in feats for f in fs})[:200]
        per_pair["recovery_all_features"] = recovery(run(basis, [list(range(basis.d_sae))] * len(pairs), "patch"))

    if "random" in bases:  # paired over the same pairs: tighter than comparing two intervals
        for k in ks:
            per_pair[f"recovery@{k}_gain_over_random"] = per_pair[f"recovery@{k}"] - per_pair[f"recovery@{k}_random"]
    n_boot = int(cfg["bootstrap_resamples"])
    idx = np.random.default_rng(seed).integers(0, len(pairs), (n_boot, len(pairs)))
    values: dict[str, float | None] = {}
    unc: dict[str, list[float]] = {}
    for name, arr in per_pair.items():
        values[name] = finite_or_none(float(arr.mean()))
        unc[name] = _interval(arr, idx)
        if name.startswith("recovery@") and "_" not in name:
            values[name.replace("recovery@", "recovery_median@")] = finite_or_none(float(np.median(arr)))
    values["n_pairs"] = float(len(pairs))
    details.update(readout_info)
    test_clips = ctx.manifest("commands_test").clips
    details.update({
        "pairs": [{"clean": test_clips[p.clean.index].clip_id, "corrupted": test_clips[p.corr.index].clip_id,
                   "a": keywords[p.a], "b": keywords[p.b], "m_clean": round(p.m_clean, 4), "m_corr": round(p.m_corr, 4)}
                  for p in pairs],
        "candidate_pairs_considered": considered,
        "readout_accuracy_clean_clips": round(clean_acc, 4),
        "patched_frames": n_valid,
        "intervention": f"pyvene {_pyvene_version()} component {cont.component}",
    })
    hib = {k: True for k in values}
    hib["n_pairs"] = True
    return TaskResult(
        values=values,
        higher_is_better=hib,
        floor=values.get("recovery@20_random"),
        ceiling=values.get("recovery_ceiling"),
        uncertainty=unc,
        uncertainty_method="percentile bootstrap over minimal pairs, 95%",
        uncertainty_n=n_boot,
        details=details,
        frames={"commands_test": n_valid * len({p.clean.index for p in pairs} | {p.corr.index for p in pairs}),
                "commands_train": ctx.activations("commands_train").n_frames if "pca" in bases else 0},
    )


def _pyvene_version() -> str:
    from importlib.metadata import version

    return version("pyvene")
