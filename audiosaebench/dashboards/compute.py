"""From the test splits to the files: the statistics of every selected feature, then its examples
and documents, a block of features at a time (so memory stays bounded at d_sae = 65,536)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiosaebench.dashboards import neuronpedia, site
from audiosaebench.dashboards.documents import FeatureStats, example_doc, explanation, r4
from audiosaebench.dashboards.examples import Layout, Span, choose, excerpt_values, span_for
from audiosaebench.dashboards.label_scores import LabelScorer
from audiosaebench.dashboards.neighbours import nearest_by_decoder, neuron_alignment
from audiosaebench.dashboards.passes import first_pass, second_pass
from audiosaebench.dashboards.render import write_excerpts
from audiosaebench.dashboards.splits import SplitData


@dataclass
class State:
    layout: Layout
    top: tuple[np.ndarray, np.ndarray]  # [2 * top, features] best window values and their peak rows
    samples: list[tuple[np.ndarray, np.ndarray]]  # per interval: [2 * per_quantile, features] scores, peak rows
    stats: FeatureStats
    scorer: LabelScorer
    radius: int  # frames either side of a peak: the excerpt, and how far apart two examples' peaks must be


def _frame_step(adapter: Any) -> float:
    c = adapter.frame_centres_s(2)
    return float(c[1] - c[0])


def compute_stats(job: Any, tests: list[SplitData], trains: list[SplitData], label_tests: list[SplitData]) -> State:
    """Passes 1 and 2 over the test splits' codes, decoder neighbours, and the label scorer's items."""
    o, sae, feats = job.options, job.sae, job.features
    step = _frame_step(job.adapter)
    layout = Layout.of(tests, job.adapter, max(1, round(o.window_s / step)))
    best, active = first_pass(sae, layout, feats, 2 * o.top)
    maxima = best.values[0].clamp_min(0)
    second = second_pass(sae, layout, feats, maxima, hist_bins=o.hist_bins, groups=o.quantile_groups,
                         per_group=2 * o.per_quantile, seed=o.seed)
    stats = FeatureStats(feats, active, np.array([s.acts.n_frames for s in tests]), maxima.numpy(), second.histogram(),
                         second.group_counts(), nearest_by_decoder(sae, feats, o.n_nearest), neuron_alignment(sae, feats))
    scorer = LabelScorer(sae, feats, trains, label_tests, max_frames=o.max_label_frames,
                         min_frame_positives=o.min_frame_positives, min_clip_positives=o.min_clip_positives, seed=o.seed)
    samples = [(s.values.numpy(), s.extra.numpy()) for s in second.samples]
    return State(layout, (best.values.numpy(), best.extra.numpy()), samples, stats, scorer,
                 max(1, round(o.excerpt_half_s / step)))


def _picks(job: Any, st: State, cols: range) -> tuple[list[list[tuple[int, Span, float, int]]], list[tuple[Span, int]]]:
    """Per feature of the block: its examples as (group, span, peak time, peak position); and the
    (span, feature) pairs whose activations pass 3 reads."""
    o = job.options
    picks, requests = [], []
    for c in cols:
        chosen = choose((st.top[0][:, c], st.top[1][:, c]), [(s[:, c], p[:, c]) for s, p in st.samples], st.layout,
                        n_top=o.top, per_group=o.per_quantile, radius=st.radius)
        items = []
        for group, row in chosen:
            span, peak_s, at = span_for(st.layout, row, half_s=o.excerpt_half_s, grid_s=o.excerpt_grid_s)
            items.append((group, span, peak_s, at))
            requests.append((span, int(job.features[c])))
        picks.append(items)
    return picks, requests


def _feature_doc(job: Any, st: State, c: int, labels: list[dict[str, Any]], examples: list[dict[str, Any]],
                 intervals: list[dict[str, Any]]) -> dict[str, Any]:
    i = int(job.features[c])
    near_idx, near_cos = st.stats.nearest
    a_idx, a_val, a_l1 = st.stats.alignment
    expl = (job.explanations or {}).get(i)
    return {
        "feature_index": i, "sae_id": job.sae.info.id, "sae_sha256": job.sae.info.sha256,
        "density": st.stats.density(c, [s.role for s in st.layout.splits]), "max_activation": r4(st.stats.maxima[c]),
        "histogram": st.stats.histogram(c), "intervals": intervals, "top_labels": labels,
        "explanation": explanation(labels, expl, bool(st.stats.maxima[c] > 0)),
        "nearest_features": [{"feature": int(f), "cosine": r4(v)} for f, v in zip(near_idx[c], near_cos[c], strict=True)],
        "neuron_alignment": {"indices": [int(x) for x in a_idx[c]], "values": [r4(x) for x in a_val[c]],
                             "l1": [r4(x) for x in a_l1[c]]},
        "examples": examples,
    }


def _block_docs(job: Any, st: State, cols: range, out: Path, files: dict[Span, tuple[str, str]]) -> list[dict[str, Any]]:
    picks, requests = _picks(job, st, cols)
    values = excerpt_values(job.sae, st.layout, requests) if requests else []
    files.update(write_excerpts(out, [sp for sp, _ in requests if sp not in files], st.layout))
    labels = st.scorer.top_labels(slice(cols.start, cols.stop), job.options.n_labels)
    docs, k = [], 0
    for j, c in enumerate(cols):
        intervals = st.stats.intervals(c)
        bins = {iv["group"]: iv for iv in intervals}
        top_bins = {"bin_min": -1, "bin_max": r4(st.stats.maxima[c]), "bin_contains": -1}
        examples = []
        for group, span, peak_s, at in picks[j]:
            examples.append((-1 if group < 0 else len(bins) - group, example_doc(
                st.layout, group, span, peak_s, at, values[k], files[span], top_bins if group < 0 else bins[group])))
            k += 1
        examples.sort(key=lambda e: (e[0], -e[1]["max_value"]))  # top group, then intervals from the highest; values descending
        docs.append(_feature_doc(job, st, c, labels[j], [e for _, e in examples], intervals))
    return docs


def _batch_header(job: Any) -> dict[str, Any]:
    hook = job.adapter.resolve(job.sae.info.hook_point).name
    return {"model_id": neuronpedia.model_slug(job.adapter.identity.model_id), "layer": neuronpedia.layer_of(hook, job.adapter.n_layers),
            "sae_set": neuronpedia.model_slug(job.sae.info.id), "sae_id_suffix": None}


def write_features(job: Any, st: State, out: Path) -> tuple[list[list[Any]], dict[str, int]]:
    """``features/<i>.json``, the excerpt files and the Neuronpedia batches; returns the index rows and counts."""
    roles = [s.role for s in st.layout.splits]
    detection = job.explanations is not None
    n_tokens = 2 * st.radius
    dataset = f"audiosaebench {job.suite.name}: {', '.join(roles)}"
    n_prompts = sum(len(s.manifest) for s in st.layout.splits)
    (out / "features").mkdir(parents=True, exist_ok=True)
    rows, entries, files, n_batch, n_examples = [], [], {}, 0, 0  # type: ignore[var-annotated]
    for lo in range(0, len(job.features), job.options.block_features):
        for doc in _block_docs(job, st, range(lo, min(len(job.features), lo + job.options.block_features)), out, files):
            text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            (out / "features" / f"{doc['feature_index']}.json").write_text(text, encoding="utf-8")
            rows.append(site.index_row(doc, roles, detection))
            n_examples += len(doc["examples"])
            entries.append(neuronpedia.feature_entry(doc, n_prompts=n_prompts, n_tokens=n_tokens, dataset=dataset))
            if len(entries) == neuronpedia.BATCH_FEATURES:
                neuronpedia.write_batch(out / "neuronpedia", n_batch, _batch_header(job), entries)
                n_batch, entries = n_batch + 1, []
    if entries or not n_batch:
        neuronpedia.write_batch(out / "neuronpedia", n_batch, _batch_header(job), entries)
        n_batch += 1
    return rows, {"examples": n_examples, "excerpts": len(files), "batches": n_batch}
