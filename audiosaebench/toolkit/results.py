"""Building a task's result: metric values with their declared directions, intervals and reasons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from audiosaebench.task import TaskMetadata, TaskResult
from audiosaebench.toolkit.numbers import finite_or_none


class ResultBuilder:
    """Collects one task run's metrics; :meth:`build` returns the :class:`TaskResult`.

    Each metric's direction comes from ``metadata.metrics`` (a name the task did not declare is a
    programming error, raised at once); values become plain finite floats or None, and a None must
    come with its reason."""

    def __init__(self, metadata: TaskMetadata):
        self.metadata = metadata
        self.values: dict[str, float | None] = {}
        self.higher_is_better: dict[str, bool] = {}
        self.reasons: dict[str, str] = {}
        self.intervals: dict[str, list[float]] = {}
        self.details: dict[str, Any] = {}
        self.frames: dict[str, int] = {}
        self.notes: dict[str, str] = {}  # reasons that concern no single metric (e.g. a label family left out)

    def _direction(self, name: str) -> bool:
        hib = self.metadata.direction(name)
        if hib is None:
            raise ValueError(f"task {self.metadata.name} writes metric {name!r}, which its metadata does not declare")
        return hib

    def add(self, name: str, value: float | None, *, interval: list[float] | None = None,
            reason: str | None = None) -> None:
        """Set metric ``name``; ``reason`` says why when ``value`` is None (or not finite)."""
        self.higher_is_better[name] = self._direction(name)
        v = finite_or_none(value)
        self.values[name] = v
        if v is None:
            if not reason:
                raise ValueError(f"metric {name!r} of task {self.metadata.name} is null without a reason")
            self.reasons[name] = reason
        else:
            self.reasons.pop(name, None)
        if interval is not None:
            self.intervals[name] = [float(interval[0]), float(interval[1])]

    def update(self, values: Mapping[str, float | None], reason: str | None = None) -> None:
        """:meth:`add` each item; ``reason`` for those that are None."""
        for name, v in values.items():
            self.add(name, v, reason=reason)

    def null(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            self.add(name, None, reason=reason)

    def interval(self, name: str, interval: list[float]) -> None:
        self.intervals[name] = [float(interval[0]), float(interval[1])]

    def build(self, *, floor: float | None = None, ceiling: float | None = None, method: str | None = None,
              n: int | None = None) -> TaskResult:
        return TaskResult(values=dict(self.values), higher_is_better=dict(self.higher_is_better), floor=floor,
                          ceiling=ceiling, reasons={**self.notes, **self.reasons}, uncertainty=dict(self.intervals),
                          uncertainty_method=method, uncertainty_n=n, details=self.details, frames=dict(self.frames))


def null_result(metadata: TaskMetadata, names: Iterable[str], reason: str, *, floor: float | None = None) -> TaskResult:
    """A result in which every metric in ``names`` is null for one ``reason`` (the task cannot apply)."""
    b = ResultBuilder(metadata)
    b.null(names, reason)
    return b.build(floor=floor)
