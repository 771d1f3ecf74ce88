"""A grid's ``submissions:``: one submission folder per evaluated SAE, made by ``submission init``'s own
code (:func:`audiosaebench.leaderboard.submission.init_submission`) and put in place atomically.

The text fields are templates filled per SAE: ``{name}`` (the unit's name: a trained run's name or the
SAE's id), ``{hook}``, ``{architecture}`` (as trained: ``batchtopk`` although SAELens saves it as
``jumprelu``), ``{sparsity}`` (``k32``, ``l1c5``...), ``{d_sae}``, ``{seed}``, ``{steps}``,
``{batch_size}``, ``{lr}``, ``{trainer}``, ``{model}``, ``{suite}`` and ``{checkpoint}`` (its folder). A
field not given stays ``FILL IN``, as ``submission init`` leaves it. A folder counts as done when its
``sae_sha256`` is the SAE's and its results are byte for byte the grid's; ``--overwrite always``
rewrites every folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiosaebench.errors import AudioSAEBenchError
from audiosaebench.grid.plan import Entry, Inputs, Unit
from audiosaebench.grid.spec import GridError, GridSpec

TEMPLATES = ("id", "name", "description", "contact", "license", "training_data", "checkpoint")


@dataclass
class SubmissionItem:
    label: str
    id: str
    folder: Path
    fields: dict[str, Any]
    state: str = "todo"
    note: str = ""
    run: bool = False
    ready: bool = False  # its evaluation is done


def template_values(spec: GridSpec, inp: Inputs, e: Entry) -> dict[str, Any]:
    values: dict[str, Any] = {"name": e.label, "hook": e.hook, "model": spec.model, "suite": spec.suite,
                              "checkpoint": str(e.path), "seed": "", "steps": "", "batch_size": "", "lr": "",
                              "trainer": ""}
    if e.train is not None:
        r = e.train
        values.update(architecture=r.architecture, sparsity=r.sparsity_tag(), seed=r.seed, steps=r.recipe["steps"],
                      d_sae=r.recipe["expansion"] * inp.adapter.hidden_size, batch_size=r.recipe["batch_size"],
                      lr=r.recipe["lr"], trainer="SAELens")
    else:
        i = e.sae.info
        values.update(architecture=i.architecture, sparsity=f"k{i.k}" if i.k else "", d_sae=i.d_sae)
    return values


def _fill(spec: GridSpec, key: str, template: str, values: dict[str, Any]) -> str:
    try:
        return template.format_map(values)
    except (KeyError, ValueError, IndexError, AttributeError) as e:
        raise GridError(f"{spec.path}: submissions.{key}: cannot fill {template!r} ({type(e).__name__}: {e}; "
                        f"fields: {', '.join(sorted(values))})") from None


def _fields(spec: GridSpec, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from audiosaebench.leaderboard.submission import ID_RE

    sub = spec.submissions or {}
    raw_id = _fill(spec, "id", str(sub.get("id", "{name}")), values)
    sub_id = re.sub(r"[^a-z0-9._-]+", "-", raw_id.lower()).strip("-.")[:64]
    if not ID_RE.match(sub_id):
        raise GridError(f"{spec.path}: submissions.id gives {raw_id!r}, not a valid submission id")
    fields: dict[str, Any] = {k: _fill(spec, k, str(sub[k]), values) for k in TEMPLATES[1:] if k in sub}
    if "checkpoint" in fields:
        fields["checkpoint"] = {"location": fields["checkpoint"], "revision": None, "sha256": None}
    if "authors" in sub:
        fields["authors"] = [sub["authors"]] if isinstance(sub["authors"], str) else list(sub["authors"])
    return sub_id, fields


def _matches(folder: Path, sae: Any, results: Path, suite: str) -> bool:
    """Whether ``folder`` is this SAE's submission holding exactly the grid's results."""
    from audiosaebench.leaderboard.submission import read_yaml

    try:
        meta = read_yaml(folder / "submission.yaml")
    except AudioSAEBenchError:
        return False
    mine = sorted(results.glob("*.json")) if results.is_dir() else []
    theirs = sorted((folder / "results").glob("*.json")) if (folder / "results").is_dir() else []
    if meta.get("sae_sha256") != sae.info.sha256 or len(mine) != len(theirs):
        return False
    names = {p.name: p for p in theirs}
    return all(f"{p.stem}-{suite}.json" in names and names[f"{p.stem}-{suite}.json"].read_bytes() == p.read_bytes()
               for p in mine)


def submission_items(spec: GridSpec, inp: Inputs, entries: list[Entry], units: list[Unit], overwrite: str,
                     enabled: bool, picked: set[str] | None = None) -> list[SubmissionItem]:
    by = {u.id: u for u in units}
    items: list[SubmissionItem] = []
    seen: dict[str, str] = {}
    root = Path((spec.submissions or {})["dir"])
    for e in entries:
        sub_id, fields = _fields(spec, template_values(spec, inp, e))
        if sub_id in seen:
            raise GridError(f"{spec.path}: submissions.id gives {sub_id!r} for both {seen[sub_id]} and {e.label}")
        seen[sub_id] = e.label
        item = SubmissionItem(e.label, sub_id, root / sub_id, fields)
        ev = by[f"evaluate-{e.label}"]
        if ev.state != "done":
            item.note = "after its evaluation"
            item.state = "todo" if ev.run else "blocked"
        else:
            item.ready = True
        if item.ready and overwrite != "always" and _matches(item.folder, e.sae, spec.results / e.sae.info.id, spec.suite):
            item.state = "done"
        item.run = enabled and item.state != "done" and (ev.run or ev.state == "done") \
            and (picked is None or e.label in picked)
        items.append(item)
    return items


def write_submission(spec: GridSpec, e: Entry, item: SubmissionItem) -> Path:
    """``submission init`` of one SAE into a scratch folder, then renamed into place (replacing the old one)."""
    from audiosaebench import atomic
    from audiosaebench.leaderboard.submission import init_submission

    root = item.folder.parent
    root.mkdir(parents=True, exist_ok=True)
    kind = str((spec.submissions or {}).get("kind", "submission"))
    scratch = Path(tempfile.mkdtemp(prefix=f".{item.id}.", suffix=".init", dir=root))
    try:
        made = init_submission(e.path, spec.results / e.sae.info.id, scratch, sub_id=item.id, kind=kind,
                               fields=item.fields)
        with atomic.new_folder(item.folder, replace=True) as tmp:
            for f in sorted(made.rglob("*")):
                target = tmp / f.relative_to(made)
                if f.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return item.folder
