"""Result JSON: the schema (shipped in the package), validation and atomic writes (no torch)."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from audiosaebench.errors import ResultError
from audiosaebench.hashing import sha256_json

SCHEMA_VERSION = "1.0"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(resources.files("audiosaebench.results").joinpath("schema.json").read_text())


def _non_finite_path(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "(top level)"
    if isinstance(obj, dict):
        items: Any = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = _non_finite_path(v, f"{path}/{k}" if path else str(k))
        if found:
            return found
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a result (write null with a reason)")


def first_schema_error(schema_doc: dict[str, Any], doc: Any) -> str | None:
    """'path: message (+N more)' for the first JSON Schema violation (by path), or None."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema_doc).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    e = errors[0]
    path = "/".join(str(p) for p in e.absolute_path) or "(top level)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {e.message}{more}"


def validate_result(doc: Any, where: str = "result") -> None:
    """Schema check plus the rules a schema cannot express; raises ResultError (one line)."""
    bad = _non_finite_path(doc)
    if bad:
        raise ResultError(f"{where}: non-finite number at {bad} (NaN/Inf are never written; use null with a reason)")

    problem = first_schema_error(schema(), doc)
    if problem:
        raise ResultError(f"{where}: schema violation at {problem}")
    m = doc["metrics"]
    if m["main_score"] not in m["values"]:
        raise ResultError(f"{where}: main score {m['main_score']!r} is not among the metric values")
    for name, v in m["values"].items():
        if v is None and name not in m["reasons"]:
            raise ResultError(f"{where}: metric {name!r} is null without a reason")
        if name not in m["higher_is_better"]:
            raise ResultError(f"{where}: metric {name!r} has no direction in higher_is_better")
    _check_declared_metrics(doc, where)
    if doc["config_sha256"] != sha256_json(doc["config"]):
        raise ResultError(f"{where}: config_sha256 does not match config")
    if doc["run"]["limit"] is not None and doc["data"]["submittable"]:
        raise ResultError(f"{where}: a --limit run cannot be submittable")


def _check_declared_metrics(doc: dict[str, Any], where: str) -> None:
    """A result of an installed task version may hold only the metrics its metadata declares, each
    with the declared direction (other versions and unknown tasks are checked by the schema alone)."""
    from audiosaebench.errors import TaskError
    from audiosaebench.registry import get_task

    try:
        md = get_task(doc["task"]["name"]).metadata
    except TaskError:
        return
    if md.version != doc["task"]["version"]:
        return
    for name, hib in doc["metrics"]["higher_is_better"].items():
        declared = md.direction(name)
        if declared is None:
            raise ResultError(f"{where}: metric {name!r} is not declared by task {md.name} {md.version}")
        if declared != hib:
            raise ResultError(f"{where}: metric {name!r} has higher_is_better={hib}, task {md.name} declares {declared}")


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_result(doc: dict[str, Any], path: str | Path) -> Path:
    """Validate, then write atomically (temp file + rename): a crash never leaves half a file."""
    from audiosaebench import atomic

    path = Path(path)
    validate_result(doc, str(path))
    return atomic.write_text(path, dumps(doc))


def read_result(path: str | Path) -> dict[str, Any]:
    from audiosaebench import untrusted

    path = Path(path)
    if not path.exists():
        raise ResultError(f"result not found: {path}")
    doc = untrusted.read_json(path, ResultError)
    validate_result(doc, str(path))
    return doc
