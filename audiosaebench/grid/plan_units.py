"""The units of a plan and their states (see :mod:`audiosaebench.grid.plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audiosaebench.errors import AudioSAEBenchError
from audiosaebench.grid.plan import (
    TRAINING_VERSION,
    Entry,
    Inputs,
    Unit,
    eval_roles,
    manifest,
    mark_failed,
    store_key,
    train_roles,
)
from audiosaebench.grid.spec import GridError, GridSpec


def trainer_version(spec: GridSpec) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"sae-lens=={version('sae-lens')}"
    except PackageNotFoundError:
        raise GridError(f"{spec.path}: training runs need SAELens: pip install -e '.[sweep]'") from None


def _training_state(e: Entry, config_sha256: str) -> tuple[str, str]:
    from audiosaebench import untrusted
    from audiosaebench.sae import load_sae

    meta = e.path / "training.json"
    if not meta.exists():
        return "todo", ""
    try:
        rec = untrusted.read_json(meta)
    except AudioSAEBenchError:
        return "todo", "its training.json cannot be read"
    if not isinstance(rec, dict) or rec.get("config_sha256") != config_sha256:
        return "todo", "the checkpoint there was made from other inputs"
    try:
        e.sae = load_sae(e.path).with_info()
    except AudioSAEBenchError as err:
        return "todo", f"the checkpoint there cannot be loaded ({err})"
    return "done", ""


def training_unit(spec: GridSpec, inp: Inputs, e: Entry) -> Unit:
    r = e.train
    assert r is not None
    data = [{"role": role, "manifest_sha256": manifest(spec, inp, role).sha256, "store_key": store_key(spec, inp, r.hook, role)}
            for role in train_roles(inp.suite)]
    if not data:
        raise GridError(f"{spec.path}: suite {spec.suite} has no train split to train on")
    args = {"home": inp.home, "name": e.label, "checkpoint": str(e.path), "architecture": r.architecture,
            "params": r.params, "recipe": r.recipe, "seed": r.seed, "hook": r.hook, "model": spec.model,
            "model_identity": inp.adapter.identity.to_dict(), "d_in": inp.adapter.hidden_size, "data": data,
            "trainer": trainer_version(spec), "version": TRAINING_VERSION}
    u = Unit(id=f"train-{e.label}", kind="train", args=args, hook=r.hook, wants_gpu=str(r.recipe["device"]).startswith("cuda"))
    u.state, u.note = _training_state(e, u.config_sha256)
    return u


@dataclass
class ResultInputs:
    """What :func:`audiosaebench.evaluation.reusable` reads of an evaluation context."""

    sae: Any
    partners: tuple[Any, ...]
    model: Any
    config: dict[str, Any]
    suite: Any
    limit: int | None


def _evaluation_state(spec: GridSpec, inp: Inputs, e: Entry, partners: list[Entry]) -> tuple[str, str]:
    from audiosaebench.evaluation import reusable

    if e.sae is None:
        return "todo", "after its training"
    if any(p.sae is None for p in partners):
        return "todo", "after its partners' training"
    missing = []
    for t in inp.tasks:
        name = t.metadata.name
        view = ResultInputs(e.sae, tuple(p.sae for p in partners), inp.adapter, inp.configs[name], inp.suite, spec.limit)
        if reusable(spec.results / e.sae.info.id / f"{name}.json", view, t, spec.kind) is None:  # type: ignore[arg-type]
            missing.append(name)
    if not missing:
        return "done", ""
    return "todo", f"{len(missing)} of {len(inp.tasks)} tasks to run"


def evaluation_unit(spec: GridSpec, inp: Inputs, e: Entry, entries: list[Entry]) -> Unit:
    by = {x.label: x for x in entries}
    partners = [by[p] for p in e.partners]
    args = {"home": inp.home, "sae": str(e.path), "partners": [str(p.path) for p in partners],
            "tasks": [t.metadata.name for t in inp.tasks], "suite": spec.suite, "data_dir": spec.data_dir,
            "model": spec.model, "device": spec.device, "dtype": spec.dtype, "batch_size": spec.batch_size,
            "limit": spec.limit, "seed": spec.seed, "task_config": spec.task_options, "kind": spec.kind,
            "out": str(spec.results), "resume": True, "threads": spec.threads}
    needs = [f"train-{x.label}" for x in [e, *partners] if x.train is not None]
    u = Unit(id=f"evaluate-{e.label}", kind="evaluate", args=args, needs=needs, hook=e.hook)
    u.state, u.note = _evaluation_state(spec, inp, e, partners)
    return u


def _in_store(key: str) -> bool:
    from audiosaebench.activations.store import entry_dir

    return (entry_dir(key) / "meta.json").is_file()


def _needed(spec: GridSpec, inp: Inputs, entries: list[Entry], units: list[Unit]) -> tuple[dict, dict, dict]:
    """For each split: the hooks units to run read there, the hooks whose states extraction keeps, and who needs what."""
    by = {f"{kind}-{e.label}": e for e in entries for kind in ("train", "evaluate")}
    need: dict[str, set[str]] = {}
    keep: dict[str, set[str]] = {}
    readers: dict[tuple[str, str], list[Unit]] = {}
    for u in units:
        if not u.run or u.kind not in ("train", "evaluate"):
            continue
        e = by[u.id]
        roles = train_roles(inp.suite) if u.kind == "train" else eval_roles(inp)
        for role in roles:
            need.setdefault(role, set()).add(e.hook)
            readers.setdefault((role, e.hook), []).append(u)
            if u.kind == "evaluate" and any(t.reads_states(role, inp.adapter.family) for t in inp.tasks):
                keep.setdefault(role, set()).add(e.hook)
    return need, keep, readers


def _extraction_args(spec: GridSpec, inp: Inputs, role: str, hooks: list[str], keep: list[str]) -> dict[str, Any]:
    return {"home": inp.home, "model": spec.model, "dtype": spec.dtype, "device": spec.device, "suite": spec.suite,
            "data_dir": spec.data_dir, "role": role, "hooks": hooks, "keep_states": keep,
            "batch_size": spec.batch_size, "limit": spec.limit, "threads": spec.threads,
            "keys": [store_key(spec, inp, h, role) for h in hooks]}


def extraction_units(spec: GridSpec, inp: Inputs, entries: list[Entry], units: list[Unit], enabled: bool,
                     overwrite: str) -> list[Unit]:
    """One unit per split that some unit to run reads, holding the hooks the store lacks there."""
    need, keep, readers = _needed(spec, inp, entries, units)
    out = []
    for role in [r for r in inp.suite.splits if r in need]:
        hooks = [h for h in spec.hooks if h in need[role]]
        missing = [h for h in hooks if not _in_store(store_key(spec, inp, h, role))]
        uid = f"extract-{role}"
        if not missing:
            out.append(Unit(id=uid, kind="extract", args={"role": role, "hooks": hooks}, state="done",
                            note=f"{len(hooks)} hook(s) in the store"))
            continue
        u = Unit(id=uid, kind="extract", args=_extraction_args(spec, inp, role, missing, sorted(keep.get(role, ()))),
                 wants_gpu=spec.device != "cpu", note=f"{', '.join(missing)}")
        mark_failed(spec, u)
        u.run = enabled and (u.state == "todo" or (u.state == "failed" and overwrite != "never"))
        out.append(u)
        for h in missing:
            for reader in readers[(role, h)]:
                reader.needs.append(uid)
    return out


def order_evaluation(units: list[Unit]) -> None:
    """Waves: one evaluation unit first, then the first of each other hook, then the rest (see the plan docs)."""
    lead_of: dict[str, Unit] = {}
    first: Unit | None = None
    for u in units:
        if u.kind != "evaluate" or not u.run:
            continue
        hook = u.hook
        if first is None:
            first, u.wave = u, 0
            lead_of[hook] = u
        elif hook not in lead_of:
            u.wave, u.order = 1, [first.id]
            lead_of[hook] = u
        else:
            u.wave, u.order = 2, [lead_of[hook].id]


def block(units: list[Unit]) -> None:
    """A unit to run whose needed unit neither is done nor runs is blocked (units come in dependency order)."""
    by = {u.id: u for u in units}
    for u in units:
        if not u.run:
            continue
        for n in u.needs:
            d = by[n]
            if not d.run and d.state != "done":
                u.run, u.state, u.note = False, "blocked", f"needs {n} ({d.state})"
                break
