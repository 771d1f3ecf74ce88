"""Task registry over the ``audiosaebench.tasks`` entry-point group (no torch imported).

Built-in tasks register through the same group as third-party ones. Two entry points with one
name, or an entry point whose class's ``metadata.name`` differs from its entry-point name, are
errors; an unknown name gets close-match suggestions.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.metadata import entry_points

from audiosaebench.errors import TaskError
from audiosaebench.task import Task

GROUP = "audiosaebench.tasks"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, object]:
    seen: dict[str, object] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in seen and getattr(seen[ep.name], "value", None) != ep.value:
            raise TaskError(f"two tasks are registered under the name {ep.name!r}: {seen[ep.name].value} and {ep.value}")  # type: ignore[attr-defined]
        seen[ep.name] = ep
    return seen


def task_names() -> list[str]:
    return sorted(_entry_points())


def get_task(name: str) -> type[Task]:
    eps = _entry_points()
    if name not in eps:
        close = difflib.get_close_matches(name, eps, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known tasks: {', '.join(sorted(eps))}"
        raise TaskError(f"unknown task {name!r}{hint}")
    cls = eps[name].load()  # type: ignore[attr-defined]
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
