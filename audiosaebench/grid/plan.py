"""The plan of a grid: its units, what each needs, and which are done.

* extraction: one unit per (model, split) holding every hook some unit to run needs there that the
  activation store lacks (one forward pass fills them all: :func:`~audiosaebench.activations.extract.get_activations`);
* training: one unit per trained SAE (:mod:`audiosaebench.grid.training`);
* evaluation: one unit per SAE, all its tasks in one ``evaluate`` call (they share its codes).

A unit is done only from what it made: a store entry under its key; a checkpoint whose
``training.json`` carries the unit's config hash; results that :func:`audiosaebench.evaluation.reusable`
accepts (they validate and were made from exactly these inputs: the resume rule of ``evaluate``).
Unit records (:mod:`audiosaebench.grid.records`) only say what failed.

Evaluation units run in waves so that each SAE-independent cache has one writer: first one SAE
(it fills what depends on the model alone), then the first SAE of each other hook, then the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiosaebench.errors import AudioSAEBenchError
from audiosaebench.grid.spec import GridError, GridSpec, TrainRun
from audiosaebench.hashing import sha256_json

KINDS = ("extract", "train", "evaluate")
STAGES = (*KINDS, "submit")
OVERWRITE = ("never", "failed", "always")
TRAINING_VERSION = 1
# where a unit reads and writes is not what it computes: a grid moved to another home or output folder
# (--out) finds its units done (a checkpoint's training.json hash names what was trained, not where)
UNHASHED_ARGS = ("resume", "home", "checkpoint")


@dataclass
class Unit:
    id: str
    kind: str
    args: dict[str, Any]
    needs: list[str] = field(default_factory=list)  # units whose output this one reads
    order: list[str] = field(default_factory=list)  # units that should run first (shared caches), not needed
    state: str = "todo"  # done | todo | failed | blocked
    note: str = ""
    wave: int = 0
    run: bool = False
    wants_gpu: bool = False
    hook: str = ""

    @property
    def config_sha256(self) -> str:
        return sha256_json({"kind": self.kind, "args": {k: v for k, v in self.args.items() if k not in UNHASHED_ARGS}})

    def job(self, state_dir: Path, run_ids: set[str]) -> dict[str, Any]:
        """What an engine hands a worker: JSON only (paths as strings, never arrays)."""
        return {"id": self.id, "kind": self.kind, "args": self.args, "config_sha256": self.config_sha256,
                "state_dir": str(state_dir), "needs": [n for n in self.needs if n in run_ids],
                "after": [n for n in dict.fromkeys(self.needs + self.order) if n in run_ids],
                "wave": self.wave, "wants_gpu": self.wants_gpu}


@dataclass
class Entry:
    """One SAE the grid evaluates: given (loaded) or trained (loaded once its checkpoint is done)."""

    label: str
    path: Path
    hook: str
    train: TrainRun | None = None
    sae: Any = None
    partners: list[str] = field(default_factory=list)


@dataclass
class Inputs:
    tasks: list[Any]
    configs: dict[str, dict[str, Any]]
    suite: Any
    adapter: Any
    home: str


@dataclass
class Plan:
    spec: GridSpec
    inputs: Inputs
    entries: list[Entry]
    units: list[Unit]
    submissions: list[Any] = field(default_factory=list)
    stages: tuple[str, ...] = STAGES
    overwrite: str = "never"

    def to_run(self) -> list[Unit]:
        """The units a run starts, in an order every engine can follow: extraction, training, then the
        evaluation waves (a unit's needs and leads always come before it)."""
        return sorted((u for u in self.units if u.run), key=lambda u: (KINDS.index(u.kind), u.wave))

    def by_id(self) -> dict[str, Unit]:
        return {u.id: u for u in self.units}


def load_inputs(spec: GridSpec) -> Inputs:
    """Tasks and their configs, the suite, and the model (its identity keys the store and the results)."""
    from audiosaebench import paths
    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.loading import load_adapter
    from audiosaebench.registry import resolve_tasks

    where = str(spec.path)
    try:
        tasks = resolve_tasks(list(spec.tasks) if spec.tasks != "all" else "all")
        unknown = sorted(set(spec.task_options) - {t.metadata.name for t in tasks})
        if unknown:
            raise GridError(f"{where}: task_options names tasks the grid does not run: {', '.join(unknown)}")
        configs = {t.metadata.name: {**t().config(dict(spec.task_options.get(t.metadata.name, {}))), "seed": spec.seed}
                   for t in tasks}
        suite = load_suite(spec.suite, spec.data_dir)
        adapter = load_adapter(spec.model, device="cpu", dtype=spec.dtype)
        for h in spec.hooks:
            adapter.resolve(h)
    except GridError:
        raise
    except AudioSAEBenchError as e:
        raise GridError(f"{where}: {e}") from None
    return Inputs(tasks, configs, suite, adapter, str(paths.home().resolve()))


def _same_model(a: str, b: str) -> bool:
    from audiosaebench.models.loading import resolve_model_dir

    if a == b:
        return True
    try:
        return resolve_model_dir(a)[0].resolve() == resolve_model_dir(b)[0].resolve()
    except AudioSAEBenchError:
        return False


def _given_entry(spec: GridSpec, inp: Inputs, path: Path) -> Entry:
    from audiosaebench.sae import load_sae

    where = str(spec.path)
    try:
        sae = load_sae(path)
    except AudioSAEBenchError as e:
        raise GridError(f"{where}: saes: {e}") from None
    i = sae.info
    if i.model_id and not _same_model(i.model_id, spec.model):
        raise GridError(f"{where}: SAE {i.id} was trained on {i.model_id}, not the grid's model {spec.model}")
    if not i.hook_point:
        raise GridError(f"{where}: SAE {i.id} ({path}) does not say which hook point it reads")
    if i.hook_point not in spec.hooks:
        raise GridError(f"{where}: SAE {i.id} reads {i.hook_point}, which hooks does not list")
    if i.d_in != inp.adapter.hidden_size:
        raise GridError(f"{where}: SAE {i.id} has d_in={i.d_in} but {spec.model} has width {inp.adapter.hidden_size}")
    return Entry(label=i.id, path=path, hook=i.hook_point, sae=sae.with_info(model_id=spec.model))


def run_name(inp: Inputs, run: TrainRun) -> str:
    short = inp.adapter.identity.model_id.rstrip("/").split("/")[-1]
    hook = run.hook.replace("encoder.layers.", "L").replace("encoder.layer_norm", "LN")
    d_sae = run.recipe["expansion"] * inp.adapter.hidden_size
    tag = f"-{run.tag}" if run.tag else ""
    return f"{short}-{hook}-{run.architecture}-{run.sparsity_tag()}-d{d_sae}-s{run.seed}{tag}"


def _entries(spec: GridSpec, inp: Inputs) -> list[Entry]:
    entries = [_given_entry(spec, inp, p) for p in spec.saes]
    entries += [Entry(label=run_name(inp, r), path=spec.checkpoints / run_name(inp, r), hook=r.hook, train=r)
                for r in spec.train]
    seen: dict[str, Entry] = {}
    for e in entries:
        if e.label in seen:
            what = "training runs" if e.train and seen[e.label].train else "SAEs"
            hint = " (give one a tag)" if e.train else ""
            raise GridError(f"{spec.path}: two {what} are both named {e.label}{hint}")
        seen[e.label] = e
    _assign_partners(spec, entries)
    return entries


def _sibling_key(r: TrainRun) -> str:
    return sha256_json({"a": r.architecture, "h": r.hook, "p": r.params, "r": r.recipe, "t": r.tag})


def _assign_partners(spec: GridSpec, entries: list[Entry]) -> None:
    """``seeds``: a trained SAE's partners are its runs that differ only in seed; ``all``: every other SAE."""
    for e in entries:
        if spec.partners == "all":
            e.partners = [o.label for o in entries if o is not e]
        elif spec.partners == "seeds" and e.train is not None:
            key = _sibling_key(e.train)
            e.partners = [o.label for o in entries if o is not e and o.train is not None and _sibling_key(o.train) == key]


def train_roles(suite: Any) -> list[str]:
    from audiosaebench.training import TRAIN_ROLES

    return [r for r in TRAIN_ROLES if r in suite.splits]


def eval_roles(inp: Inputs) -> list[str]:
    return list(dict.fromkeys(r for t in inp.tasks for r in t.metadata.splits if r in inp.suite.splits))


def manifest(spec: GridSpec, inp: Inputs, role: str) -> Any:
    from audiosaebench.evaluation import limited

    return limited(inp.suite.split(role), spec.limit)


def store_key(spec: GridSpec, inp: Inputs, hook: str, role: str) -> str:
    from audiosaebench.activations.extract import store_fields
    from audiosaebench.activations.store import store_key as key_of

    return key_of(store_fields(inp.adapter, hook, manifest(spec, inp, role)))


def mark_failed(spec: GridSpec, u: Unit) -> None:
    """A todo unit whose last attempt under this config failed is ``failed``."""
    from audiosaebench.grid.records import read_record

    rec = read_record(spec.state_dir, u.id)
    if u.state == "todo" and rec and rec["status"] == "failed" and rec.get("config_sha256") == u.config_sha256:
        u.state, u.note = "failed", str(rec.get("error") or "failed")[:300]


def selected(entries: list[Entry], only: tuple[str, ...]) -> set[str]:
    """The names of the SAEs that ``--only`` patterns (shell globs; none: every SAE) pick."""
    from fnmatch import fnmatchcase

    picked = {e.label for e in entries if not only or any(fnmatchcase(e.label, p) for p in only)}
    unmatched = [p for p in only if not any(fnmatchcase(e.label, p) for e in entries)]
    if unmatched:
        raise GridError(f"--only {unmatched[0]!r} names none of the grid's {len(entries)} SAEs "
                        "(`grid plan` lists them, as train-<name> and evaluate-<name>)")
    return picked


def make_plan(spec: GridSpec, *, overwrite: str = "never", stages: tuple[str, ...] = STAGES,
              inputs: Inputs | None = None, only: tuple[str, ...] = ()) -> Plan:
    """Every unit of the grid with its state, and which of them a run would start (``only``: of the
    SAEs whose names match one of these globs; extraction as they need it)."""
    from audiosaebench.grid import plan_units

    if overwrite not in OVERWRITE:
        raise GridError(f"--overwrite must be one of {', '.join(OVERWRITE)}, not {overwrite!r}")
    bad = sorted(set(stages) - set(STAGES))
    if bad:
        raise GridError(f"unknown stage(s) {', '.join(bad)}: choose from {', '.join(STAGES)}")
    inp = inputs or load_inputs(spec)
    entries = _entries(spec, inp)
    picked = selected(entries, only)
    units = [plan_units.training_unit(spec, inp, e) for e in entries if e.train is not None]
    units += [plan_units.evaluation_unit(spec, inp, e, entries) for e in entries]
    for u in units:
        mark_failed(spec, u)
        if u.kind == "evaluate":
            u.args["resume"] = overwrite != "always"
        u.run = u.kind in stages and (u.state == "todo" or (u.state == "failed" and overwrite != "never")
                                      or overwrite == "always")
        if u.run and u.id.split("-", 1)[1] not in picked:
            u.run, u.note = False, "not picked by --only"
    units = plan_units.extraction_units(spec, inp, entries, units, "extract" in stages, overwrite) + units
    plan_units.order_evaluation(units)
    plan_units.block(units)
    subs = []
    if spec.submissions is not None:
        from audiosaebench.grid.submit import submission_items

        subs = submission_items(spec, inp, entries, units, overwrite, "submit" in stages, picked)
    return Plan(spec, inp, entries, units, subs, stages, overwrite)
