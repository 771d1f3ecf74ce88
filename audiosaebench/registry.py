"""Registries of plugins (no torch imported): metric tasks, suites and model adapters.

Each is a name -> ``"module:attribute"`` map, filled from an entry-point group (third-party
plugins register exactly like the built-ins) plus, for suites and adapters, the built-in names. An
entry is imported only when it is asked for, so ``audiosaebench tasks list`` stays light. Two
entries with one name are an error; an unknown name gets close-match suggestions.

* tasks: group ``audiosaebench.tasks``, a :class:`~audiosaebench.task.Task` subclass whose
  ``metadata.name`` equals the entry-point name;
* suites: group ``audiosaebench.suites``, ``load(data_dir) -> Suite``;
* adapters: group ``audiosaebench.adapters`` keyed by the HF ``model_type``,
  ``load(folder, config, identity, torch_dtype) -> AudioModelAdapter``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from audiosaebench.errors import AudioSAEBenchError, TaskError
from audiosaebench.task import Task

GROUP = "audiosaebench.tasks"
SUITE_GROUP = "audiosaebench.suites"
ADAPTER_GROUP = "audiosaebench.adapters"

BUILTIN_SUITES = {
    "toy": "audiosaebench.data.toy:load_toy_suite",
    "mini": "audiosaebench.data.suites:load_mini_suite",
    "full": "audiosaebench.data.suites:load_full_suite",
}
BUILTIN_ADAPTERS = {
    "whisper": "audiosaebench.models.whisper:load_whisper",
    "hubert": "audiosaebench.models.ssl:load_ssl",
    "wav2vec2": "audiosaebench.models.ssl:load_ssl",
    "wavlm": "audiosaebench.models.ssl:load_ssl",
}


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _unknown(kind: str, name: str, known: Mapping[str, object], error: type[AudioSAEBenchError]) -> AudioSAEBenchError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known {kind}s: {', '.join(sorted(known))}"
    return error(f"unknown {kind} {name!r}{hint}")


@cache
def _group(group: str, builtins: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """name -> "module:attribute" for an entry-point group plus built-ins (an entry point may not
    register a name twice with different targets)."""
    seen = dict(builtins)
    what = "tasks" if group == GROUP else "plugins"
    for ep in entry_points(group=group):
        if ep.name in seen and seen[ep.name] != ep.value:
            raise TaskError(f"two {what} are registered under the name {ep.name!r} in {group}: "
                            f"{seen[ep.name]} and {ep.value}")
        seen[ep.name] = ep.value
    return seen


def _entry_points() -> dict[str, str]:
    return _group(GROUP)


def task_names() -> list[str]:
    return sorted(_entry_points())


def get_task(name: str) -> type[Task]:
    eps = _entry_points()
    if name not in eps:
        raise _unknown("task", name, eps, TaskError)
    cls = _load(eps[name])
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TaskError(f"entry point {name!r} does not name a Task subclass")
    if cls.metadata.name != name:
        raise TaskError(f"entry point {name!r} loads task {cls.metadata.name!r}: names must agree")
    return cls


def resolve_tasks(spec: str | list[str]) -> list[type[Task]]:
    names = task_names() if spec in ("all", ["all"]) else (spec.split(",") if isinstance(spec, str) else spec)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise TaskError("no tasks selected")
    return [get_task(n) for n in dict.fromkeys(names)]


def suite_names() -> list[str]:
    return sorted(_group(SUITE_GROUP, tuple(BUILTIN_SUITES.items())))


def suite_loader(name: str) -> Any:
    """``load(data_dir) -> Suite`` of the suite registered as ``name``."""
    from audiosaebench.errors import DataError

    known = _group(SUITE_GROUP, tuple(BUILTIN_SUITES.items()))
    if name not in known:
        raise _unknown("suite", name, known, DataError)
    return _load(known[name])


def adapter_loader(model_type: str) -> Any:
    """``load(folder, config, identity, torch_dtype) -> adapter`` for an HF ``model_type``."""
    known = _group(ADAPTER_GROUP, tuple(BUILTIN_ADAPTERS.items()))
    if model_type not in known:
        raise AudioSAEBenchError(f"unsupported model type {model_type!r}: supported are {', '.join(sorted(known))}")
    return _load(known[model_type])
