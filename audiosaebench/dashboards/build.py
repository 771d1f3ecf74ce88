"""The Python API behind ``audiosaebench dashboards``: check every input, then compute and write.

Flow: the test splits' activations (from the activation store; extracted only where it lacks them)
-> pass 1 over the SAE's codes (density, best windows) -> pass 2 (histograms, interval samples) ->
per block of features: excerpts, pass 3 (activations on the excerpts' frames), label scores ->
``features/<i>.json``, ``neuronpedia/batch-<n>.json``, audio and spectrogram files -> the pages and
``dashboard.json``. Everything is written into a temporary folder next to ``out`` and renamed into
place at the end, so a bad input or a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiosaebench import atomic, runtime
from audiosaebench.dashboards import neuronpedia, site
from audiosaebench.dashboards.inputs import (
    DashboardError,
    check_options,
    check_out,
    parse_features,
    read_autointerp,
)
from audiosaebench.dashboards.links import FORMAT, MANIFEST
from audiosaebench.dashboards.splits import SplitData
from audiosaebench.data.roles import TEST_ROLES

log = logging.getLogger(__name__)
SPLIT_KINDS = ("speech", "nonspeech", "commands")


@dataclass(frozen=True)
class Options:
    """What the dashboards show; the defaults follow SAEDashboard's (20 top examples, 5 intervals x 5)."""

    top: int = 20
    quantile_groups: int = 5
    per_quantile: int = 5
    window_s: float = 0.5  # examples are chosen among windows of this length
    excerpt_half_s: float = 0.5  # audio either side of the peak
    excerpt_grid_s: float = 0.1  # excerpt centres rounded to this, so features share excerpt files
    hist_bins: int = 40
    n_labels: int = 5
    n_nearest: int = 5
    label_splits: tuple[str, ...] = SPLIT_KINDS  # split kinds whose train / test splits score labels
    max_label_frames: int = 100_000  # frames per split for label scores (seeded sample beyond)
    min_frame_positives: int = 20  # as the coverage task
    min_clip_positives: int = 2
    seed: int = 0
    block_features: int = 2048  # features per pass 3 (a multiple of neuronpedia.BATCH_FEATURES)


@dataclass
class Job:
    """Everything checked before any work: the SAE, its model, the suite, the features and the folder."""

    sae: Any
    adapter: Any
    suite: Any
    features: np.ndarray
    out: Path
    overwrite: bool
    options: Options
    explanations: dict[int, dict[str, Any]] | None
    limit: int | None
    batch_size: int
    progress: bool
    timings: dict[str, float] = field(default_factory=dict)


def prepare(sae: Any, out: str | Path, *, suite: Any = "mini", data_dir: str | Path | None = None,
            features: str = "all", model: str | None = None, hook: str | None = None, device: str = "auto",
            dtype: str = "float32", batch_size: int = 8, limit: int | None = None, overwrite: bool = False,
            autointerp: str | Path | None = None, options: Options | None = None, progress: bool = True) -> Job:
    """Check every input (raising a one-line error) before anything is computed or written."""
    from audiosaebench.evaluation import prepare_run

    opts = options or Options()
    check_options(opts.top, opts.quantile_groups, opts.per_quantile)
    bad = [k for k in opts.label_splits if k not in SPLIT_KINDS]
    if bad:
        raise DashboardError(f"--label-splits: unknown split kind {bad[0]!r} (give some of {', '.join(SPLIT_KINDS)})")
    if opts.block_features % neuronpedia.BATCH_FEATURES:
        raise DashboardError(f"block_features must be a multiple of {neuronpedia.BATCH_FEATURES}")
    if limit is not None and limit < 1:
        raise DashboardError("--limit must be a positive number of clips per split")
    target = check_out(out, overwrite)
    run = prepare_run([sae], [], suite=suite, data_dir=data_dir, model=model, hook=hook, device=device, dtype=dtype)
    the_sae = run.saes[0]
    feats = parse_features(features, the_sae.d_sae)
    missing = [r for r in TEST_ROLES if r not in run.suite.splits]
    if missing:
        raise DashboardError(f"suite {run.suite.name!r} has no {missing[0]} split")
    expl = read_autointerp(autointerp, the_sae.info.sha256) if autointerp else None
    return Job(the_sae, run.models_by_sae[the_sae.info.id], run.suite, feats, target, overwrite, opts, expl, limit,
               batch_size, progress)


def _split(job: Job, role: str) -> SplitData:
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.evaluation import limited
    from audiosaebench.frame_labels import split_labels

    man = limited(job.suite.split(role), job.limit)
    hook = job.adapter.resolve(job.sae.info.hook_point).name
    acts = get_activations(job.adapter, [hook], man, batch_size=job.batch_size, progress=job.progress)[hook]
    return SplitData(role, man, acts, split_labels(role, man, acts, job.adapter))


def build_dashboards(sae: Any, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Dashboards of ``sae``'s selected features over the suite's test splits, written to ``out``
    (keyword arguments: those of :func:`prepare`). Returns a summary (counts and phase timings)."""
    job = prepare(sae, out, **kwargs)
    with runtime.session():  # BLAS on one thread; the passes share the SAE's codes through the code memo
        return _run(job)


def _timed(job: Job, name: str, t0: float) -> float:
    now = time.perf_counter()
    job.timings[name] = round(now - t0, 3)
    return now


def _run(job: Job) -> dict[str, Any]:
    from audiosaebench.dashboards.compute import compute_stats, write_features

    t = time.perf_counter()
    tests = [_split(job, r) for r in TEST_ROLES]
    trains = [_split(job, f"{k}_train") for k in job.options.label_splits if f"{k}_train" in job.suite.splits]
    label_tests = [s for s in tests if s.role.split("_")[0] in job.options.label_splits]
    t = _timed(job, "activations", t)
    state = compute_stats(job, tests, trains, label_tests)
    t = _timed(job, "passes_and_labels", t)
    with atomic.new_folder(job.out, replace=job.overwrite) as tmp:
        rows, counts = write_features(job, state, tmp)
        t = _timed(job, "features_and_files", t)
        cols = site.columns([s.role for s in tests], job.explanations is not None)
        site.write_pages(tmp, _meta(job, tests, trains), cols, rows)
        (tmp / MANIFEST).write_text(json.dumps(_manifest(job, tests, trains), indent=1, sort_keys=True) + "\n",
                                    encoding="utf-8")
    _timed(job, "pages", t)
    return {"out": str(job.out), "features": len(job.features), **counts, "timings": dict(job.timings)}


def _meta(job: Job, tests: list[SplitData], trains: list[SplitData]) -> dict[str, Any]:
    i = job.sae.info
    return {"sae_id": i.id, "sae_sha256": i.sha256, "model_id": job.adapter.identity.model_id,
            "hook": job.adapter.resolve(i.hook_point).name, "suite": job.suite.name, "d_sae": i.d_sae,
            "test_splits": [s.role for s in tests], "label_train_splits": [s.role for s in trains]}


def _manifest(job: Job, tests: list[SplitData], trains: list[SplitData]) -> dict[str, Any]:
    splits = {s.role: {"manifest_sha256": s.manifest.sha256, "clips": len(s.manifest), "frames": s.acts.n_frames}
              for s in [*tests, *trains]}
    return {"format": FORMAT, **_meta(job, tests, trains), "features": len(job.features), "splits": splits,
            "limit": job.limit, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(job.options).items()},
            "explanations": "autointerp" if job.explanations is not None else "best label"}
