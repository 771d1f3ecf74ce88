"""What metric tasks share: intervals, a result builder with declared metric names, overlap counts.

A task's ``compute.py`` builds its :class:`~audiosaebench.task.TaskResult` with
:class:`ResultBuilder` (which takes each metric's direction from the task's metadata and refuses
undeclared names), draws its bootstrap samples itself (each task's resampling is part of its
definition) and turns them into intervals with :func:`percentile_interval`.
"""

from __future__ import annotations

from audiosaebench.toolkit.intervals import bootstrap_mean_interval, percentile_interval
from audiosaebench.toolkit.numbers import finite_or_none
from audiosaebench.toolkit.results import ResultBuilder, null_result

__all__ = ["ResultBuilder", "bootstrap_mean_interval", "finite_or_none", "null_result", "percentile_interval"]
