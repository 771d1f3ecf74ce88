"""The Python API behind ``audiosaebench evaluate``.

audio (manifests) -> model adapter -> activation store -> SAE codes -> tasks -> result JSON.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audiosaebench.data.audio import RESAMPLER
from audiosaebench.data.manifest import Manifest
from audiosaebench.data.suites import Suite, load_suite
from audiosaebench.errors import AudioSAEBenchError, CheckpointError, ResultError
from audiosaebench.hashing import sha256_json
from audiosaebench.heap import reusing_freed_blocks
from audiosaebench.registry import resolve_tasks
from audiosaebench.results.provenance import provenance
from audiosaebench.results.validation import SCHEMA_VERSION, read_result, write_result
from audiosaebench.task import Task, TaskResult

log = logging.getLogger(__name__)

DEFAULT_SEED = 0


@dataclass
class EvalContext:
    """What one (SAE, task) run sees. Activations are extracted (or read from cache) on demand."""

    sae: Any
    saes: list[Any]
    config: dict[str, Any]
    seed: int
    suite: Suite
    adapter: Any
    hook: str
    limit: int | None
    batch_size: int
    progress: bool
    adapters: dict[str, Any] = field(default_factory=dict)  # every model the given SAEs read, by model id
    _acts: dict[str, Any] = field(default_factory=dict)

    def manifest(self, role: str) -> Manifest:
        return limited(self.suite.split(role), self.limit)

    def activations(self, role: str, hook: str | None = None, model: str | None = None) -> Any:
        """Activations of a split at a hook (default: this SAE's) of a model (default: this SAE's)."""
        from audiosaebench.activations.extract import get_activations

        ad = self.model_adapter(model)
        h = ad.resolve(hook).name if hook else self.hook
        key = (role, h, ad.identity.model_id)
        if key not in self._acts:
            self._acts[key] = get_activations(ad, [h], self.manifest(role), batch_size=self.batch_size,
                                              progress=self.progress)[h]
        return self._acts[key]

    def model_adapter(self, model: str | None = None) -> Any:
        if model is None or model == self.sae.info.model_id:
            return self.adapter
        if model not in self.adapters:
            raise AudioSAEBenchError(f"model {model} is not loaded in this run (evaluate an SAE on it too)")
        return self.adapters[model]

    @property
    def model(self) -> Any:
        return self.adapter


def limited(m: Manifest, limit: int | None) -> Manifest:
    if limit is None or limit >= len(m):
        return m
    return Manifest(m.dataset, m.split, f"{m.version}+limit{limit}", m.clips[:limit], m.root)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sae_record(sae: Any) -> dict[str, Any]:
    i = sae.info
    return {
        "id": i.id,
        "sha256": i.sha256,
        "format": i.source_format,
        "architecture": i.architecture,
        "d_in": i.d_in,
        "d_sae": i.d_sae,
        "k": i.k,
        "hook_point": i.hook_point,
        "model_id": i.model_id,
        "normalize_activations": i.normalize_activations,
        "notes": list(i.notes),
    }


def build_record(
    task: type[Task],
    ctx: EvalContext,
    out: TaskResult,
    config: dict[str, Any],
    started: str,
    t0: float,
    kind: str,
    device: str,
) -> dict[str, Any]:
    md = task.metadata
    splits = []
    for role in md.splits:
        if role in ctx.suite.splits:
            m = ctx.manifest(role)
            splits.append({"role": role, "dataset": m.dataset, "split": m.split, "manifest_sha256": m.sha256,
                           "n_clips": len(m), "n_frames": int(out.frames.get(role, 0))})
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "task": {"name": md.name, "version": md.version, "main_score": md.main_score,
                 "higher_is_better": md.higher_is_better},
        "sae": sae_record(ctx.sae),
        "model": ctx.adapter.identity.to_dict(),
        "data": {"suite": ctx.suite.name, "submittable": ctx.suite.submittable and ctx.limit is None,
                 "resampler": RESAMPLER, "splits": splits,
                 **({"manifest_warnings": list(ctx.suite.warnings)} if ctx.suite.warnings else {})},
        "config": config,
        "config_sha256": sha256_json(config),
        "metrics": {
            "main_score": md.main_score,
            "values": out.values,
            "higher_is_better": out.higher_is_better,
            "floor": out.floor,
            "ceiling": out.ceiling,
            "floor_reference": md.floor,
            "ceiling_reference": md.ceiling,
            "reasons": out.reasons,
        },
        "uncertainty": {"method": out.uncertainty_method, "n": out.uncertainty_n, "values": out.uncertainty},
        "details": out.details,
        "provenance": provenance(device, str(ctx.adapter.dtype).replace("torch.", "")),
        "run": {"started": started, "finished": _now(), "runtime_s": round(time.perf_counter() - t0, 3),
                "limit": ctx.limit},
    }
    if len(ctx.saes) > 1 and "several_saes" in md.needs:
        doc["partner_saes"] = [sae_record(s) for s in ctx.saes if s is not ctx.sae]
    return doc


def _reusable(path: Path, config_sha: str, sae: Any, task: type[Task], suite: Suite, limit: int | None,
              adapter: Any, others: list[Any] | None = None) -> dict | None:
    """The existing result, if it was made from exactly these inputs (else None: run again)."""
    if not path.exists():
        return None
    try:
        doc = read_result(path)
    except ResultError as e:
        log.warning("existing result %s is invalid (%s); running the task again", path, e)
        return None
    same = (
        doc["config_sha256"] == config_sha
        and doc["sae"]["sha256"] == sae.info.sha256
        and doc["task"]["version"] == task.metadata.version
        and doc["data"]["suite"] == suite.name
        and doc["run"]["limit"] == limit
        and doc["model"] == adapter.identity.to_dict()
        and {sp["role"]: sp["manifest_sha256"] for sp in doc["data"]["splits"]}
        == {r: limited(suite.split(r), limit).sha256 for r in task.metadata.splits if r in suite.splits}
    )
    if same and "several_saes" in task.metadata.needs:  # a multi-SAE result depends on the other SAEs too
        same = sorted(p["sha256"] for p in doc.get("partner_saes", [])) == sorted(o.info.sha256 for o in others or [])
    return doc if same else None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AudioSAEBenchError(f"--device {device} requested but CUDA is not available")
    return device


def evaluate(
    saes: Sequence[Any],
    tasks: str | list[str] = "all",
    *,
    suite: str | Suite = "mini",
    data_dir: str | Path | None = None,
    out: str | Path = "results",
    model: str | None = None,
    hook: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    batch_size: int = 8,
    resume: bool = False,
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
    task_config: dict[str, dict[str, Any]] | None = None,
    kind: str = "submission",
    progress: bool = True,
    partners: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    """Evaluate one or more SAEs on tasks; write ``<out>/<sae id>/<task>.json``; return the records.

    ``partners`` (SAE objects, or paths resolved by :func:`audiosaebench.partners.resolve_partners`)
    are seen by multi-SAE tasks beside the evaluated SAEs but are not evaluated themselves."""
    from audiosaebench.codes import MEMO
    from audiosaebench.models.loading import load_adapter
    from audiosaebench.sae import SAE, load_sae

    if limit is not None and limit < 1:
        raise AudioSAEBenchError("--limit must be a positive number of clips per split")
    task_classes = resolve_tasks(tasks)
    loaded: list[SAE] = [s if isinstance(s, SAE) else load_sae(s, hook_point=hook, model_id=model) for s in saes]
    if not loaded:
        raise AudioSAEBenchError("no SAE given (--sae PATH)")
    from audiosaebench.partners import resolve_partners

    paths_given = [p for p in partners if not isinstance(p, SAE)]
    extra = [p for p in partners if isinstance(p, SAE)] + (resolve_partners(paths_given, loaded) if paths_given else [])
    evaluated = len(loaded)
    loaded = loaded + extra
    ids = [s.info.id for s in loaded]
    if len(set(ids)) != len(ids):
        raise AudioSAEBenchError(f"two SAEs share the id {next(i for i in ids if ids.count(i) > 1)!r}")
    for s in loaded:
        if not s.info.model_id:
            raise CheckpointError(f"SAE {s.info.id} does not say which model it was trained on; pass --model")
        if not s.info.hook_point:
            raise CheckpointError(f"SAE {s.info.id} does not say which hook point it reads; pass --hook")
    the_suite = suite if isinstance(suite, Suite) else load_suite(suite, data_dir)
    dev = resolve_device(device)
    adapters: dict[str, Any] = {}
    for s in loaded:
        ref = model or s.info.model_id
        if ref not in adapters:
            adapters[ref] = load_adapter(ref, device=dev, dtype=dtype)
        ad = adapters[ref]
        hp = ad.resolve(s.info.hook_point)
        if s.info.d_in != ad.hidden_size:
            raise CheckpointError(
                f"SAE {s.info.id} has d_in={s.info.d_in} but {hp.name} of {ad.identity.model_id} has width {ad.hidden_size}"
            )
    loaded = [s.to(dev) for s in loaded]
    _prefetch(loaded, adapters, model, task_classes, the_suite, limit, batch_size, progress)

    records = []
    out = Path(out)
    with numpy_blas_single_threaded(), MEMO.session():  # the tasks of this run share SAE codes
        for s in loaded[:evaluated]:
            ad = adapters[model or s.info.model_id]
            for task_cls in task_classes:
                task = task_cls()
                overrides = dict((task_config or {}).get(task_cls.metadata.name, {}))
                config = {**task.config(overrides), "seed": seed}
                path = out / s.info.id / f"{task_cls.metadata.name}.json"
                if resume:
                    prev = _reusable(path, sha256_json(config), s, task_cls, the_suite, limit, ad,
                                     [o for o in loaded if o is not s])
                    if prev is not None:
                        log.info("resume: %s exists with the same config; skipped", path)
                        records.append(prev)
                        continue
                ctx = EvalContext(s, loaded, config, seed, the_suite, ad, s.info.hook_point, limit, batch_size, progress,
                                  {o.info.model_id: adapters[model or o.info.model_id] for o in loaded})
                started, t0 = _now(), time.perf_counter()
                log.info("running %s on %s", task_cls.metadata.name, s.info.id)
                with reusing_freed_blocks():  # its model forwards reuse freed blocks: audiosaebench.heap
                    result = task.run(ctx)
                doc = build_record(task_cls, ctx, result, config, started, t0, kind, dev)
                write_result(doc, path)
                records.append(doc)
    return records


def numpy_blas_single_threaded():
    """A context in which numpy's and scipy's BLAS use one thread (torch's thread pool is untouched).

    Tasks fit hundreds of small probes (sklearn's lbfgs on a few thousand frames x d): one thread is
    faster there (0.04 s against 0.12 s per fit on two threads, 2-core CPU; coverage's 62-probe
    ceiling 28 s -> 12 s), and a probe's result no longer depends on the machine's core count (a
    reduction split across threads rounds differently, which moved two of 38 dense F1s by 0.001).
    Only the BLAS shipped inside the numpy and scipy wheels is limited: a system or MKL BLAS that
    torch may share is left alone."""
    import scipy.linalg  # noqa: F401 - loads scipy's BLAS now, so that it is found and limited too
    from threadpoolctl import ThreadpoolController

    ctl = ThreadpoolController()
    # the wheels keep their BLAS in numpy.libs / scipy.libs (Linux, Windows) or numpy/.dylibs (macOS)
    ours = [lib.filepath for lib in ctl.lib_controllers if lib.user_api == "blas"
            and any(part.startswith(("numpy", "scipy")) for part in Path(lib.filepath).parts[-3:-1])]
    return ctl.select(filepath=ours).limit(limits=1)


def _prefetch(loaded, adapters, model, task_classes, suite, limit, batch_size, progress) -> None:
    """Extract every (model, role) once for all hooks the SAEs need (one forward pass each)."""
    from audiosaebench.activations.extract import get_activations

    roles = [r for t in task_classes for r in t.metadata.splits if r in suite.splits]
    by_model: dict[str, list[str]] = {}
    for s in loaded:
        by_model.setdefault(model or s.info.model_id, []).append(s.info.hook_point)
    for ref, hooks in by_model.items():
        ad = adapters[ref]
        for role in dict.fromkeys(roles):
            keep = hooks if any(t.reads_states(role, ad.family) for t in task_classes) else ()
            get_activations(ad, hooks, limited(suite.split(role), limit), batch_size=batch_size, progress=progress,
                            keep_states=keep)
