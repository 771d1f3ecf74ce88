"""GRID.yaml: what a grid evaluates (and trains), read through :mod:`audiosaebench.untrusted` and checked
key by key before anything runs. Every problem is one line naming the file (docs/scale-out.md lists
the keys).

Paths in the file are relative to the current working directory, like every other path the CLI takes.
``saes`` entries are checkpoint folders, globs (``runs/*/sae-*``), or release folders that hold one
SAE per sub-folder (dictionary_learning / AudioSAE ``layer_N/``, a SAELens release with a folder per
hook): a release expands to every checkpoint in it.
"""

from __future__ import annotations

import difflib
import glob
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiosaebench.errors import AudioSAEBenchError

MAX_GRID_BYTES = 1 << 20
TOP_KEYS = {
    "model": "model id or local folder every SAE of the grid reads",
    "hooks": "hook points the grid extracts and trains on; every SAE must read one of them",
    "suite": "mini (default), full, toy, or a registered suite",
    "data_dir": "where the suite's data lies (default: the user cache)",
    "tasks": "'all' (default) or a list of task names",
    "saes": "checkpoint folders, globs or release folders to evaluate",
    "train": "training runs (defaults + runs); their checkpoints are evaluated too",
    "out": "output folder: results/, checkpoints/, grid/ (unit records)",
    "checkpoints": "where trained checkpoints go (default <out>/checkpoints)",
    "results": "where results go (default <out>/results)",
    "submissions": "write a submission folder per evaluated SAE (dir, kind, templates)",
    "partners": "which SAEs multi-SAE tasks compare against: seeds (default), all or none",
    "device": "auto (default), cpu, cuda",
    "dtype": "model forward dtype: float32 (default), float16, bfloat16",
    "batch_size": "clips per model forward (default 8)",
    "limit": "first N clips per split (not submittable)",
    "seed": "task seed (default 0)",
    "task_options": "{task: {option: value}}, as --task-option",
    "threads": "torch threads per unit (default: the CPUs the engine gives a unit)",
    "kind": "result kind of the evaluated SAEs: submission (default) or baseline",
}
REQUIRED = ("model", "hooks", "out")
PARTNER_POLICIES = ("seeds", "all", "none")
ARCH_PARAMS: dict[str, dict[str, Any]] = {  # SAELens training-config fields a run may set, and their defaults
    "topk": {"k": None, "aux_loss_coefficient": 1.0},
    "batchtopk": {"k": None, "topk_threshold_lr": 0.01, "aux_loss_coefficient": 1.0},
    "jumprelu": {"l0_coefficient": 1.0, "target_l0": None, "jumprelu_sparsity_loss_mode": "step",
                 "jumprelu_init_threshold": 0.01, "jumprelu_bandwidth": 0.05, "l0_warm_up_steps": 0,
                 "pre_act_loss_coefficient": None},
    "standard": {"l1_coefficient": None, "l1_warm_up_steps": 0, "lp_norm": 1.0},
}
RECIPE = {"expansion": 4, "steps": 1500, "batch_size": 1024, "lr": 4e-4, "lr_end": None,
          "lr_scheduler_name": "constant", "lr_warm_up_steps": 0, "dead_feature_window": 200,
          "decoder_init_norm": 0.1, "b_dec_init": "mean", "threads": 1, "device": "cpu"}
REQUIRED_PARAMS = {"topk": ("k",), "batchtopk": ("k",), "jumprelu": (), "standard": ("l1_coefficient",)}
RUN_ONLY = ("architecture", "seed", "hooks", "tag")
TEXT_FIELDS = ("jumprelu_sparsity_loss_mode", "lr_scheduler_name", "b_dec_init", "device", "tag")
SUBMISSION_KEYS = {"dir", "kind", "id", "name", "description", "authors", "contact", "license", "training_data",
                   "checkpoint"}
_GLOB = re.compile(r"[*?\[]")
_TAG = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


class GridError(AudioSAEBenchError):
    """GRID.yaml is malformed or names something that does not exist."""


@dataclass(frozen=True)
class TrainRun:
    """One SAE the grid trains: an architecture's SAELens fields, the recipe, a hook and a seed."""

    architecture: str
    hook: str
    seed: int
    params: dict[str, Any]
    recipe: dict[str, Any]
    tag: str | None = None

    def sparsity_tag(self) -> str:
        p = self.params
        if self.architecture in ("topk", "batchtopk"):
            return f"k{_num(p['k'])}"
        if self.architecture == "jumprelu":
            return f"l0{_num(p['target_l0'])}" if p.get("target_l0") is not None else f"l0c{_num(p['l0_coefficient'])}"
        return f"l1c{_num(p['l1_coefficient'])}"


def _num(v: Any) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


@dataclass(frozen=True)
class GridSpec:
    path: Path
    model: str
    hooks: tuple[str, ...]
    suite: str
    out: Path
    checkpoints: Path
    results: Path
    tasks: tuple[str, ...] | str = "all"
    saes: tuple[Path, ...] = ()
    train: tuple[TrainRun, ...] = ()
    data_dir: str | None = None
    submissions: dict[str, Any] | None = None
    partners: str = "seeds"
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 8
    limit: int | None = None
    seed: int = 0
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int | None = None
    kind: str = "submission"

    @property
    def state_dir(self) -> Path:
        return self.out / "grid"


def _fail(where: str, msg: str) -> GridError:
    return GridError(f"{where}: {msg}")


def _unknown_keys(where: str, doc: dict[str, Any], known: Any, what: str) -> None:
    for key in doc:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known))})"
            raise _fail(where, f"unknown {what} {key!r}{hint}")


def _typed(where: str, key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(where, f"{key} must be {what}, not {value!r}")
    if not isinstance(value, kind):
        raise _fail(where, f"{key} must be {what}, not {type(value).__name__} {value!r}"[:300])
    return value


def _str_list(where: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(where, f"{key} must be a list of non-empty strings")
    return [v.strip() for v in value]


def _positive(where: str, key: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    v = _typed(where, key, value, int, "a positive integer")
    if v < 1:
        raise _fail(where, f"{key} must be a positive integer, not {v}")
    return v


def _hooks(where: str, value: Any) -> tuple[str, ...]:
    from audiosaebench.models.hooks import canonical_hook

    names = []
    for h in _str_list(where, "hooks", value):
        try:
            names.append(canonical_hook(h).name)
        except AudioSAEBenchError as e:
            raise _fail(where, f"hooks: {e}") from None
    if not names:
        raise _fail(where, "hooks must list at least one hook point")
    return tuple(dict.fromkeys(names))


def _tasks(where: str, value: Any) -> tuple[str, ...] | str:
    from audiosaebench.registry import resolve_tasks

    if value in (None, "all", ["all"]):
        return "all"
    names = _str_list(where, "tasks", value)
    try:
        return tuple(t.metadata.name for t in resolve_tasks(names))
    except AudioSAEBenchError as e:
        raise _fail(where, f"tasks: {e}") from None


def _task_options(where: str, value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise _fail(where, "task_options must map task names to {option: value} mappings")
    return {str(k): dict(v) for k, v in value.items()}


def is_checkpoint(p: Path) -> bool:
    from audiosaebench.sae.loading import DL_WEIGHTS, SAELENS_CFG, SAELENS_WEIGHTS

    return p.is_file() or any((p / n).exists() for n in (SAELENS_CFG, SAELENS_WEIGHTS, DL_WEIGHTS))


def _layer_order(p: Path) -> tuple[int, str]:
    m = re.search(r"(\d+)$", p.name)
    return (int(m.group(1)) if m else -1, p.name)


def expand_checkpoint(p: Path) -> list[Path]:
    """A checkpoint, or every checkpoint directly inside a release folder (layer_N/ in layer order)."""
    if not p.is_dir() or is_checkpoint(p):
        return [p]
    inner = sorted((c for c in p.iterdir() if c.is_dir() and not c.name.startswith(".") and is_checkpoint(c)),
                   key=_layer_order)
    return inner or [p]  # not a release: load_sae says what is wrong with it


def _saes(where: str, value: Any) -> tuple[Path, ...]:
    if value is None:
        return ()
    out: list[Path] = []
    for entry in _str_list(where, "saes", value):
        pattern = str(Path(entry).expanduser())
        if _GLOB.search(pattern):
            matches = [Path(m) for m in sorted(glob.glob(pattern))]
            if not matches:
                raise _fail(where, f"saes: {entry!r} matches no checkpoint")
        else:
            if not Path(pattern).exists():
                raise _fail(where, f"saes: checkpoint not found: {entry}")
            matches = [Path(pattern)]
        for m in matches:
            out.extend(expand_checkpoint(m))
    resolved = list(dict.fromkeys(p.resolve() for p in out))
    return tuple(resolved)


def _values(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _check_scalar(where: str, key: str, v: Any) -> None:
    text = key in TEXT_FIELDS
    ok = isinstance(v, str) if text else (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
    if not ok:
        raise _fail(where, f"{key} must be {'a string' if text else 'a number'} (or a list of them, to sweep), not {v!r}")


def _all_fields() -> set[str]:
    return {k for params in ARCH_PARAMS.values() for k in params} | set(RECIPE) | set(RUN_ONLY)


def _run_fields(where: str, run: dict[str, Any], defaults: dict[str, Any]) -> tuple[str, dict[str, list[Any]]]:
    arch = run.get("architecture", defaults.get("architecture"))
    if arch not in ARCH_PARAMS:
        raise _fail(where, f"architecture must be one of {', '.join(ARCH_PARAMS)}, not {arch!r}")
    known = {**ARCH_PARAMS[arch], **RECIPE, **dict.fromkeys(RUN_ONLY)}
    _unknown_keys(where, run, known, f"{arch} training field")
    fields: dict[str, list[Any]] = {}
    for k, v in {**{k: v for k, v in defaults.items() if k in known}, **run}.items():
        if k in ("architecture", "hooks"):
            continue
        for x in _values(v):
            _check_scalar(where, k, x)
        fields[k] = _values(v)
    for k, default in {**ARCH_PARAMS[arch], **RECIPE}.items():
        fields.setdefault(k, [default])
    missing = [k for k in REQUIRED_PARAMS[arch] if None in fields[k]]
    if missing:
        raise _fail(where, f"a {arch} run needs {', '.join(missing)}")
    return arch, fields


def _one_run(where: str, arch: str, combo: dict[str, Any], hook: str) -> TrainRun:
    seed = _typed(where, "seed", combo.get("seed", 0), int, "an integer")
    for key in ("steps", "batch_size", "expansion", "threads"):
        _positive(where, key, combo[key])
    tag = combo.get("tag")
    if tag is not None and not (isinstance(tag, str) and _TAG.match(tag)):
        raise _fail(where, f"tag must match {_TAG.pattern}, not {tag!r}")
    if arch == "jumprelu" and combo["jumprelu_sparsity_loss_mode"] == "quadratic" and combo["target_l0"] is None:
        raise _fail(where, "a jumprelu run with jumprelu_sparsity_loss_mode quadratic needs target_l0")
    if combo["b_dec_init"] not in ("mean", "zeros"):
        raise _fail(where, f"b_dec_init must be mean or zeros, not {combo['b_dec_init']!r}")
    if combo["lr_end"] is None:
        combo = {**combo, "lr_end": combo["lr"]}
    params = {k: combo[k] for k in ARCH_PARAMS[arch]}
    recipe = {k: combo[k] for k in RECIPE}
    return TrainRun(arch, hook, seed, params, recipe, tag)


def _train(where: str, value: Any, hooks: tuple[str, ...]) -> tuple[TrainRun, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _fail(where, "train must be a mapping with runs (and optional defaults)")
    _unknown_keys(f"{where}: train", value, {"defaults", "runs"}, "key")
    defaults = value.get("defaults") or {}
    runs = value.get("runs") or []
    if not isinstance(defaults, dict) or not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise _fail(where, "train: defaults must be a mapping and runs a list of mappings")
    _unknown_keys(f"{where}: train.defaults", defaults, _all_fields(), "training field")
    out: list[TrainRun] = []
    for i, run in enumerate(runs):
        w = f"{where}: train.runs[{i}]"
        arch, fields = _run_fields(w, run, defaults)
        run_hooks = _hooks(w, run["hooks"]) if "hooks" in run else hooks
        if set(run_hooks) - set(hooks):
            raise _fail(w, f"hooks {', '.join(sorted(set(run_hooks) - set(hooks)))} are not in the grid's hooks")
        names = list(fields)
        for combo in itertools.product(*(fields[n] for n in names)):
            for hook in run_hooks:
                out.append(_one_run(w, arch, dict(zip(names, combo, strict=True)), hook))
    return tuple(out)


def _submissions(where: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"dir": value}
    if not isinstance(value, dict) or "dir" not in value:
        raise _fail(where, "submissions must be a folder or a mapping with dir (and optional templates)")
    _unknown_keys(f"{where}: submissions", value, SUBMISSION_KEYS, "key")
    if value.get("kind", "submission") not in ("submission", "reference", "baseline"):
        raise _fail(where, f"submissions.kind must be submission, reference or baseline, not {value.get('kind')!r}")
    for k, v in value.items():
        if k == "authors":
            _str_list(where, "submissions.authors", v)
        elif not isinstance(v, str):
            raise _fail(where, f"submissions.{k} must be a string")
    return {**value, "dir": Path(value["dir"]).expanduser().resolve()}


def _choice(where: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(where, f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def load_spec(path: str | Path, *, out: str | Path | None = None) -> GridSpec:
    """Read and check a GRID.yaml (``out`` overrides its ``out`` key)."""
    from audiosaebench import untrusted

    path = Path(path)
    doc = untrusted.read_yaml_mapping(path, GridError, max_bytes=MAX_GRID_BYTES)
    where = str(path)
    _unknown_keys(where, doc, TOP_KEYS, "key")
    for key in REQUIRED:
        if doc.get(key) in (None, "", []):
            raise _fail(where, f"missing required key {key!r} ({TOP_KEYS[key]})")
    model = _typed(where, "model", doc["model"], str, "a model id or folder")
    hooks = _hooks(where, doc["hooks"])
    base = Path(out if out is not None else _typed(where, "out", doc["out"], str, "a folder")).expanduser().resolve()
    folders = {k: Path(_typed(where, k, doc[k], str, "a folder")).expanduser().resolve() if doc.get(k) else base / k
               for k in ("checkpoints", "results")}
    spec = GridSpec(
        path=path, model=model, hooks=hooks, out=base, checkpoints=folders["checkpoints"], results=folders["results"],
        suite=_typed(where, "suite", doc.get("suite", "mini"), str, "a suite name"),
        data_dir=_typed(where, "data_dir", doc["data_dir"], str, "a folder") if doc.get("data_dir") else None,
        tasks=_tasks(where, doc.get("tasks")), saes=_saes(where, doc.get("saes")),
        train=_train(where, doc.get("train"), hooks), submissions=_submissions(where, doc.get("submissions")),
        partners=_choice(where, "partners", doc.get("partners", "seeds"), PARTNER_POLICIES),
        device=_typed(where, "device", doc.get("device", "auto"), str, "auto, cpu or cuda"),
        dtype=_choice(where, "dtype", doc.get("dtype", "float32"), ("float32", "float16", "bfloat16")),
        batch_size=int(_positive(where, "batch_size", doc.get("batch_size", 8)) or 8),
        limit=_positive(where, "limit", doc.get("limit"), optional=True),
        seed=_typed(where, "seed", doc.get("seed", 0), int, "an integer"),
        task_options=_task_options(where, doc.get("task_options")),
        threads=_positive(where, "threads", doc.get("threads"), optional=True),
        kind=_choice(where, "kind", doc.get("kind", "submission"), ("submission", "baseline")),
    )
    if not spec.saes and not spec.train:
        raise _fail(where, "nothing to evaluate: give saes, train runs, or both")
    return spec
