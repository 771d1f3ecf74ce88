"""Submissions: ``submissions/<id>/submission.yaml`` + ``results/*.json`` (scaffold and validate; no torch).

Validation is what CI runs on every pull request: the folder is walked without following links,
only known files are allowed (never weights), YAML is read with the safe loader, both documents
are schema-checked, and every result must belong to the declared SAE, be submittable (no
``--limit``), come from a float32 model forward and from a registered task.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from audiosaebench.errors import ResultError, SubmissionError
from audiosaebench.results.validation import first_schema_error, validate_result

ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
PLACEHOLDER = "FILL IN"
MAX_FILE_BYTES = 4 << 20
SCHEMA_VERSION = "1.0"
KIND_OF_RESULT = {"submission": "submission", "reference": "submission", "baseline": "baseline"}
# one forward precision on the board: on the mini suite bfloat16 moved the reference SAE's main
# scores by up to 0.01 against float32 (docs/performance.md), as much as two SAEs may differ
LEADERBOARD_DTYPE = "float32"


@dataclass
class Submission:
    id: str
    path: Path
    meta: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verification: str = "self-reported"  # "verified" when verification.json passed on exactly these results


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("audiosaebench.leaderboard").joinpath("submission.schema.json").read_text())


def read_yaml(path: Path) -> dict[str, Any]:
    """One YAML mapping, read with the limits of :mod:`audiosaebench.untrusted` (no aliases, bounded)."""
    from audiosaebench import untrusted

    return untrusted.read_yaml_mapping(path, SubmissionError, max_bytes=MAX_FILE_BYTES)


def _schema_check(doc: dict[str, Any], where: str) -> None:
    problem = first_schema_error(schema(), doc)
    if problem:
        raise SubmissionError(f"{where}: {problem}")


def _strings(obj: Any):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _walk_safe(folder: Path) -> list[Path]:
    """Every file under ``folder``; symlinks, special files and unexpected names are refused."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink():
                raise SubmissionError(f"{folder.name}/{rel} is a symbolic link; submissions hold plain files only")
            if name in dirnames:
                if rel != "results":
                    raise SubmissionError(f"{folder.name}/{rel}/: unexpected folder (allowed: results/)")
                continue
            if not p.is_file():
                raise SubmissionError(f"{folder.name}/{rel} is not a regular file")
            if not (rel in ("submission.yaml", "README.md", "verification.json")
                    or re.fullmatch(r"results/[A-Za-z0-9._-]+\.json", rel)):
                raise SubmissionError(f"{folder.name}/{rel}: unexpected file (allowed: submission.yaml, README.md, "
                                      "verification.json, results/*.json; weights stay at the checkpoint location)")
            if p.stat().st_size > MAX_FILE_BYTES:
                raise SubmissionError(f"{folder.name}/{rel} is larger than {MAX_FILE_BYTES >> 20} MiB")
            files.append(p)
    return files


def _load_json(path: Path) -> Any:
    from audiosaebench import untrusted

    return untrusted.read_json(path, SubmissionError, max_bytes=MAX_FILE_BYTES)


def _checked_folder(folder: Path, root: Path) -> list[Path]:
    """The folder's files, after checking it is a plain folder directly inside ``root`` named by a valid id."""
    if folder.is_symlink():
        raise SubmissionError(f"{folder} is a symbolic link; submissions hold plain folders only")
    if not folder.is_dir():
        raise SubmissionError(f"{folder} is not a submission folder")
    if folder.resolve().parent != root.resolve():
        raise SubmissionError(f"{folder} is not directly inside {root}")
    if not ID_RE.match(folder.name):
        raise SubmissionError(f"submission id {folder.name!r} must match {ID_RE.pattern}")
    return _walk_safe(folder)


def _read_meta(folder: Path, files: list[Path]) -> dict[str, Any]:
    meta_path = folder / "submission.yaml"
    if meta_path not in files:
        raise SubmissionError(f"{folder}/submission.yaml is missing")
    meta = read_yaml(meta_path)
    _schema_check(meta, str(meta_path))
    if meta["id"] != folder.name:
        raise SubmissionError(f"{meta_path}: id {meta['id']!r} differs from the folder name {folder.name!r}")
    if any(PLACEHOLDER in s for s in _strings(meta)):
        raise SubmissionError(f"{meta_path}: replace every '{PLACEHOLDER}' placeholder")
    return meta


def _check_result(doc: Any, where: str, meta: dict[str, Any]) -> None:
    """One result file against the schema and the submission's declared SAE, kind and precision."""
    try:
        validate_result(doc, where)
    except ResultError as e:
        raise SubmissionError(str(e)) from None
    sae = doc["sae"]
    if sae["sha256"] != meta["sae_sha256"]:
        raise SubmissionError(f"{where}: made with SAE {sae['sha256'][:12]}, but submission.yaml declares "
                              f"{meta['sae_sha256'][:12]}")
    for key, want in (("model_id", meta["model"]["id"]), ("hook_point", meta["hook_point"]),
                      ("d_sae", meta["d_sae"]), ("architecture", meta["architecture"])):
        if sae.get(key) != want:
            raise SubmissionError(f"{where}: sae.{key} is {sae.get(key)!r}, submission.yaml says {want!r}")
    if doc["kind"] != KIND_OF_RESULT[meta["kind"]]:
        raise SubmissionError(f"{where}: result kind {doc['kind']!r} does not fit a {meta['kind']} entry")
    if doc["run"]["limit"] is not None or not doc["data"]["submittable"]:
        raise SubmissionError(f"{where}: not submittable (made with --limit or on a non-submittable suite)")
    forward = doc["provenance"]["dtypes"]["model_forward"]
    if forward != LEADERBOARD_DTYPE:
        raise SubmissionError(f"{where}: the model ran in {forward}; leaderboard results use {LEADERBOARD_DTYPE} "
                              f"forwards (re-run with --dtype {LEADERBOARD_DTYPE})")


def _check_task_version(doc: dict[str, Any], where: str, sub: Submission, current_versions: bool) -> None:
    from audiosaebench.registry import get_task, task_names

    name, version = doc["task"]["name"], doc["task"]["version"]
    if name not in task_names():
        raise SubmissionError(f"{where}: unknown task {name!r}")
    installed = get_task(name).metadata.version
    if version != installed:
        msg = f"{where}: task {name} version {version}; this benchmark has {installed} (re-run the task)"
        if current_versions:
            raise SubmissionError(msg)
        sub.warnings.append(msg)


def validate_submission(folder: str | Path, root: str | Path | None = None, *, current_versions: bool = True) -> Submission:
    """Check one submission folder; raises :class:`SubmissionError` with a one-line message.

    ``root`` (default: the folder's parent) is the submissions directory the folder must stay in.
    With ``current_versions`` every result must come from the installed version of its task (what
    CI requires of a new pull request); the leaderboard build accepts older versions and never
    ranks them with newer ones.
    """
    folder = Path(folder)
    files = _checked_folder(folder, Path(root) if root is not None else folder.parent)
    meta = _read_meta(folder, files)
    sub = Submission(meta["id"], folder, meta)
    result_files = sorted(p for p in files if p.parent.name == "results")
    if not result_files:
        raise SubmissionError(f"{folder}/results/ holds no result JSON")
    seen: dict[str, Path] = {}
    for p in result_files:
        doc = _load_json(p)
        _check_result(doc, str(p), meta)
        _check_task_version(doc, str(p), sub, current_versions)
        key = f"{doc['task']['name']}|{doc['data']['suite']}"
        if key in seen:
            raise SubmissionError(f"{p}: a second {doc['task']['name']} result on the {doc['data']['suite']} suite "
                                  f"(also {seen[key].name})")
        seen[key] = p
        sub.results.append(doc)
    from audiosaebench.verification import verification_status

    sub.verification = verification_status(folder, result_files)
    return sub


def load_submissions(root: str | Path, *, current_versions: bool = False) -> list[Submission]:
    """Validate and load every submission folder under ``root`` (sorted by id); any invalid one is an error."""
    root = Path(root)
    if not root.is_dir():
        raise SubmissionError(f"{root} is not a submissions folder")
    out = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or (entry.is_file() and not entry.is_symlink()):
            continue  # README.md, rebuild.sh: only folders are entries
        out.append(validate_submission(entry, root, current_versions=current_versions))
    return out


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return (s or "sae")[:64]


def _results_of(info: Any, results_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every valid result under ``results_dir`` made with the SAE whose weights hash is ``info.sha256``."""
    if not results_dir.is_dir():
        raise SubmissionError(f"{results_dir} is not a folder of results")
    picked = []
    for p in sorted(results_dir.rglob("*.json")):
        try:
            doc = _load_json(p)
        except SubmissionError:
            continue
        if isinstance(doc, dict) and doc.get("sae", {}).get("sha256") == info.sha256 and "task" in doc:
            validate_result(doc, str(p))
            picked.append((p, doc))
    if not picked:
        raise SubmissionError(f"no result in {results_dir} was made with this SAE (sha256 {info.sha256[:12]})")
    return picked


def _scaffold_meta(info: Any, first: dict[str, Any], sub_id: str, kind: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION, "id": sub_id, "kind": kind, "name": info.id or sub_id,
        "description": PLACEHOLDER, "authors": [PLACEHOLDER], "contact": PLACEHOLDER,
        "model": {"id": info.model_id or first["model"]["id"], "revision": first["model"].get("revision")},
        "hook_point": info.hook_point or first["sae"]["hook_point"], "architecture": info.architecture,
        "d_sae": info.d_sae, "sae_sha256": info.sha256, "training_data": PLACEHOLDER,
        "checkpoint": {"location": PLACEHOLDER, "revision": None, "sha256": None}, "license": PLACEHOLDER,
        "paper": None, "bibtex": None,
    }


def init_submission(sae_path: str | Path, results_dir: str | Path, out_root: str | Path = "submissions",
                    sub_id: str | None = None, kind: str = "submission", overwrite: bool = False,
                    fields: dict[str, Any] | None = None) -> Path:
    """Scaffold ``<out_root>/<id>/`` from an SAE checkpoint and the folder ``evaluate`` wrote.

    Copies every result made with this SAE (matched by its weights hash) and writes a
    submission.yaml whose personal fields say FILL IN until the author edits them."""
    import shutil

    from audiosaebench.sae.loading import load_sae

    info = load_sae(sae_path).info
    picked = _results_of(info, Path(results_dir))
    sub_id = sub_id or _slug(info.id or Path(sae_path).name)
    if not ID_RE.match(sub_id):
        raise SubmissionError(f"submission id {sub_id!r} must match {ID_RE.pattern}")
    folder = Path(out_root) / sub_id
    if folder.exists():
        if not overwrite:
            raise SubmissionError(f"{folder} exists (pass --overwrite to replace it)")
        shutil.rmtree(folder)
    (folder / "results").mkdir(parents=True)
    meta = {**_scaffold_meta(info, picked[0][1], sub_id, kind), **(fields or {})}
    for p, doc in picked:
        shutil.copyfile(p, folder / "results" / f"{doc['task']['name']}-{doc['data']['suite']}.json")
    write_yaml(meta, folder / "submission.yaml")
    return folder


def write_yaml(meta: dict[str, Any], path: Path) -> None:
    import yaml

    path.write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
