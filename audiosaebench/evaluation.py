"""The Python API behind ``audiosaebench evaluate``.

audio (manifests) -> model adapter -> activation store -> SAE codes -> tasks -> result JSON.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audiosaebench import runtime
from audiosaebench.data.audio import RESAMPLER
from audiosaebench.data.manifest import Manifest
from audiosaebench.data.suites import Suite, load_suite
from audiosaebench.errors import AudioSAEBenchError, CheckpointError, ResultError
from audiosaebench.hashing import sha256_json
from audiosaebench.registry import resolve_tasks
from audiosaebench.results.provenance import provenance
from audiosaebench.results.validation import SCHEMA_VERSION, read_result, write_result
from audiosaebench.task import Task, TaskResult

log = logging.getLogger(__name__)

DEFAULT_SEED = 0


@dataclass(kw_only=True)
class EvalContext:
    """What one (SAE, task) run sees (:class:`audiosaebench.task.TaskContext`); activations are
    extracted, or read from the store, on first use."""

    sae: Any
    partners: tuple[Any, ...]
    model: Any
    config: dict[str, Any]
    seed: int
    suite: Suite
    models_by_sae: Mapping[str, Any]  # SAE id -> the adapter of the model it reads (partners included)
    limit: int | None = None
    batch_size: int = 8
    progress: bool = True
    _acts: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    @property
    def suite_name(self) -> str:
        return self.suite.name

    def manifest(self, role: str) -> Manifest:
        return limited(self.suite.split(role), self.limit)

    def model_of(self, sae: Any) -> Any:
        if sae.info.id not in self.models_by_sae:
            raise AudioSAEBenchError(f"SAE {sae.info.id} is not part of this run (evaluate it, or pass it with --partner)")
        return self.models_by_sae[sae.info.id]

    def activations(self, role: str, hook: str | None = None, *, of: Any = None) -> Any:
        """A split's activations at ``hook`` of this SAE's model, or at ``of``'s model and hook."""
        from audiosaebench.activations.extract import get_activations

        if of is not None and hook is not None:
            raise ValueError("give hook= or of=, not both")
        ad = self.model if of is None else self.model_of(of)
        h = ad.resolve(hook).name if hook else ad.resolve((of or self.sae).info.hook_point).name
        key = (role, h, ad.identity.model_id)
        if key not in self._acts:
            self._acts[key] = get_activations(ad, [h], self.manifest(role), batch_size=self.batch_size,
                                              progress=self.progress)[h]
        return self._acts[key]


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


def _data_record(task: type[Task], ctx: EvalContext, out: TaskResult) -> dict[str, Any]:
    splits = []
    for role in task.metadata.splits:
        if role in ctx.suite.splits:
            m = ctx.manifest(role)
            splits.append({"role": role, "dataset": m.dataset, "split": m.split, "manifest_sha256": m.sha256,
                           "n_clips": len(m), "n_frames": int(out.frames.get(role, 0))})
    return {"suite": ctx.suite.name, "submittable": ctx.suite.submittable and ctx.limit is None,
            "resampler": RESAMPLER, "splits": splits,
            **({"manifest_warnings": list(ctx.suite.warnings)} if ctx.suite.warnings else {})}


def build_record(task: type[Task], ctx: EvalContext, out: TaskResult, started: str, t0: float, kind: str,
                 device: str) -> dict[str, Any]:
    """The result document of one task run (validated when written)."""
    md = task.metadata
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "task": {"name": md.name, "version": md.version, "main_score": md.main_score,
                 "higher_is_better": md.higher_is_better},
        "sae": sae_record(ctx.sae),
        "model": ctx.model.identity.to_dict(),
        "data": _data_record(task, ctx, out),
        "config": ctx.config,
        "config_sha256": sha256_json(ctx.config),
        "metrics": {
            "main_score": md.main_score, "values": out.values, "higher_is_better": out.higher_is_better,
            "floor": out.floor, "ceiling": out.ceiling, "floor_reference": md.floor, "ceiling_reference": md.ceiling,
            "reasons": out.reasons,
        },
        "uncertainty": {"method": out.uncertainty_method, "n": out.uncertainty_n, "values": out.uncertainty},
        "details": out.details,
        "provenance": provenance(device, str(ctx.model.dtype).replace("torch.", "")),
        "run": {"started": started, "finished": _now(), "runtime_s": round(time.perf_counter() - t0, 3),
                "limit": ctx.limit},
    }
    if ctx.partners and "several_saes" in md.needs:
        doc["partner_saes"] = [sae_record(s) for s in ctx.partners]
    return doc


def _same_inputs(doc: dict[str, Any], ctx: EvalContext, task: type[Task], kind: str | None) -> bool:
    """Whether an existing result was made from exactly the inputs of ``ctx`` and ``task`` (and is of ``kind``)."""
    suite, limit = ctx.suite, ctx.limit
    same = (
        (kind is None or doc["kind"] == kind)
        and doc["provenance"]["dtypes"]["model_forward"] == str(ctx.model.dtype).replace("torch.", "")
        and doc["config_sha256"] == sha256_json(ctx.config)
        and doc["sae"]["sha256"] == ctx.sae.info.sha256
        and doc["task"]["version"] == task.metadata.version
        and doc["data"]["suite"] == suite.name
        and doc["run"]["limit"] == limit
        and doc["model"] == ctx.model.identity.to_dict()
        and {sp["role"]: sp["manifest_sha256"] for sp in doc["data"]["splits"]}
        == {r: limited(suite.split(r), limit).sha256 for r in task.metadata.splits if r in suite.splits}
    )
    if same and "several_saes" in task.metadata.needs:  # a multi-SAE result depends on the other SAEs too
        same = sorted(p["sha256"] for p in doc.get("partner_saes", [])) == sorted(o.info.sha256 for o in ctx.partners)
    return same


def reusable(path: Path, ctx: EvalContext, task: type[Task], kind: str | None = None) -> dict[str, Any] | None:
    """The result at ``path`` if it exists, validates and was made from exactly these inputs (model forward
    dtype included; of ``kind`` where given); else None."""
    if not path.exists():
        return None
    try:
        doc = read_result(path)
    except ResultError as e:
        log.warning("existing result %s is invalid (%s); running the task again", path, e)
        return None
    return doc if _same_inputs(doc, ctx, task, kind) else None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AudioSAEBenchError(f"--device {device} requested but CUDA is not available")
    return device


@dataclass(frozen=True, kw_only=True)
class Run:
    """What ``evaluate`` prepared: the SAEs (evaluated first, then partners), their models and the suite."""

    saes: list[Any]
    n_evaluated: int
    models_by_sae: dict[str, Any]
    suite: Suite
    device: str


def _load_saes(saes: Sequence[Any], partners: Sequence[Any], hook: str | None, model: str | None) -> tuple[list[Any], int]:
    from audiosaebench.partners import resolve_partners
    from audiosaebench.sae import SAE, load_sae

    loaded: list[SAE] = [s if isinstance(s, SAE) else load_sae(s, hook_point=hook, model_id=model) for s in saes]
    if not loaded:
        raise AudioSAEBenchError("no SAE given (--sae PATH)")
    paths_given = [p for p in partners if not isinstance(p, SAE)]
    extra = [p for p in partners if isinstance(p, SAE)] + (resolve_partners(paths_given, loaded) if paths_given else [])
    everything = loaded + extra
    ids = [s.info.id for s in everything]
    if len(set(ids)) != len(ids):
        raise AudioSAEBenchError(f"two SAEs share the id {next(i for i in ids if ids.count(i) > 1)!r}")
    for s in everything:
        if not s.info.model_id:
            raise CheckpointError(f"SAE {s.info.id} does not say which model it was trained on; pass --model")
        if not s.info.hook_point:
            raise CheckpointError(f"SAE {s.info.id} does not say which hook point it reads; pass --hook")
    return everything, len(loaded)


def _load_models(saes: list[Any], model: str | None, device: str, dtype: str) -> dict[str, Any]:
    """The adapter of each SAE's model (one per model), checked against the SAE's hook and width."""
    from audiosaebench.models.loading import load_adapter

    adapters: dict[str, Any] = {}
    by_sae = {}
    for s in saes:
        ref = model or s.info.model_id
        if ref not in adapters:
            adapters[ref] = load_adapter(ref, device=device, dtype=dtype)
        ad = adapters[ref]
        hp = ad.resolve(s.info.hook_point)
        if s.info.d_in != ad.hidden_size:
            raise CheckpointError(
                f"SAE {s.info.id} has d_in={s.info.d_in} but {hp.name} of {ad.identity.model_id} has width {ad.hidden_size}"
            )
        by_sae[s.info.id] = ad
    return by_sae


def prepare_run(saes: Sequence[Any], partners: Sequence[Any], *, suite: str | Suite, data_dir: str | Path | None,
                model: str | None, hook: str | None, device: str, dtype: str) -> Run:
    """Load and check every SAE, its model and the suite: every input error is raised before any work."""
    loaded, n = _load_saes(saes, partners, hook, model)
    the_suite = suite if isinstance(suite, Suite) else load_suite(suite, data_dir)
    dev = resolve_device(device)
    by_sae = _load_models(loaded, model, dev, dtype)
    return Run(saes=[s.to(dev) for s in loaded], n_evaluated=n, models_by_sae=by_sae, suite=the_suite, device=dev)


def run_task(task_cls: type[Task], ctx: EvalContext, path: Path, *, kind: str, device: str, resume: bool) -> dict[str, Any]:
    """One task on one SAE: the result at ``path`` if ``resume`` finds it made from these inputs, else run
    and written there."""
    if resume:
        prev = reusable(path, ctx, task_cls, kind)
        if prev is not None:
            log.info("resume: %s exists with the same config; skipped", path)
            return prev
    started, t0 = _now(), time.perf_counter()
    log.info("running %s on %s", task_cls.metadata.name, ctx.sae.info.id)
    with runtime.task_run():
        result = task_cls().run(ctx)
    doc = build_record(task_cls, ctx, result, started, t0, kind, device)
    write_result(doc, path)
    return doc


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
    if limit is not None and limit < 1:
        raise AudioSAEBenchError("--limit must be a positive number of clips per split")
    task_classes = resolve_tasks(tasks)
    configs = {t.metadata.name: {**t().config(dict((task_config or {}).get(t.metadata.name, {}))), "seed": seed}
               for t in task_classes}
    run = prepare_run(saes, partners, suite=suite, data_dir=data_dir, model=model, hook=hook, device=device, dtype=dtype)
    _prefetch(run, task_classes, limit, batch_size, progress)
    records = []
    with runtime.session():  # the tasks of this run share SAE codes
        for s in run.saes[: run.n_evaluated]:
            for task_cls in task_classes:
                ctx = EvalContext(sae=s, partners=tuple(o for o in run.saes if o is not s),
                                  model=run.models_by_sae[s.info.id], config=configs[task_cls.metadata.name], seed=seed,
                                  suite=run.suite, models_by_sae=run.models_by_sae, limit=limit, batch_size=batch_size,
                                  progress=progress)
                path = Path(out) / s.info.id / f"{task_cls.metadata.name}.json"
                records.append(run_task(task_cls, ctx, path, kind=kind, device=run.device, resume=resume))
    return records


def _prefetch(run: Run, task_classes: list[type[Task]], limit: int | None, batch_size: int, progress: bool) -> None:
    """Extract every (model, role) once for all hooks the SAEs need (one forward pass each)."""
    from audiosaebench.activations.extract import get_activations

    roles = [r for t in task_classes for r in t.metadata.splits if r in run.suite.splits]
    by_model: dict[int, tuple[Any, list[str]]] = {}
    for s in run.saes:
        ad = run.models_by_sae[s.info.id]
        by_model.setdefault(id(ad), (ad, []))[1].append(s.info.hook_point)
    for ad, hooks in by_model.values():
        for role in dict.fromkeys(roles):
            keep = hooks if any(t.reads_states(role, ad.family) for t in task_classes) else ()
            get_activations(ad, hooks, limited(run.suite.split(role), limit), batch_size=batch_size, progress=progress,
                            keep_states=keep)
