"""What a metric task is: a metadata record plus ``run(context) -> TaskResult`` (no torch here).

A task module must import without torch so that ``audiosaebench tasks list`` stays fast; it
imports its heavy code inside ``run``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

BENCHMARK_CITATION = (
    "@misc{audiosaebench,\n  title={AudioSAEBench: evaluating sparse autoencoders on audio models},\n"
    "  author={{AudioSAEBench contributors}},\n  year={2026}\n}"
)
NEEDS = ("activations", "model", "several_saes", "partner_sae")
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,48}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class TaskMetadata:
    """Everything a reader needs to interpret a task's numbers; validated on creation."""

    name: str
    version: str
    description: str
    splits: tuple[str, ...]  # suite roles the task reads, e.g. ("speech_test",)
    main_score: str
    higher_is_better: bool
    floor: str  # what the floor reference is (e.g. "random SAE", "chance 0.5")
    ceiling: str  # what the ceiling reference is (e.g. "identity SAE", "dense probe")
    needs: tuple[str, ...]
    citation: str  # BibTeX
    reference: str = ""  # URL or paper of the method
    docs: str = ""  # path of the docs page, relative to the repository

    def __post_init__(self) -> None:
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"name {self.name!r} must match {_NAME.pattern}")
        if not _VERSION.match(self.version):
            problems.append(f"version {self.version!r} must be MAJOR.MINOR.PATCH")
        for attr in ("description", "main_score", "floor", "ceiling", "citation"):
            if not str(getattr(self, attr)).strip():
                problems.append(f"{attr} is empty")
        if not self.splits:
            problems.append("splits is empty")
        bad = [n for n in self.needs if n not in NEEDS]
        if bad or not self.needs:
            problems.append(f"needs must be a non-empty subset of {NEEDS}, got {self.needs}")
        if problems:
            raise ValueError(f"invalid TaskMetadata for {self.name!r}: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "splits": list(self.splits),
            "main_score": self.main_score,
            "higher_is_better": self.higher_is_better,
            "floor": self.floor,
            "ceiling": self.ceiling,
            "needs": list(self.needs),
            "reference": self.reference,
        }


@dataclass
class TaskResult:
    """What ``Task.run`` returns; the harness adds identity, data, provenance and timing.

    ``values`` may hold None for a metric that cannot be computed; give the reason in ``reasons``.
    ``uncertainty`` maps a metric to its [low, high] interval.
    """

    values: dict[str, float | None]
    higher_is_better: dict[str, bool]
    floor: float | None = None
    ceiling: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    uncertainty: dict[str, list[float]] = field(default_factory=dict)
    uncertainty_method: str | None = None
    uncertainty_n: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)  # role -> number of valid frames used


class TaskContext(Protocol):
    """What a task receives; it never loads data or models itself."""

    sae: Any
    saes: list[Any]
    config: dict[str, Any]
    seed: int

    def activations(self, role: str) -> Any: ...

    def manifest(self, role: str) -> Any: ...

    @property
    def model(self) -> Any: ...


class Task:
    """Base class: subclasses set ``metadata`` and ``default_config`` and implement ``run``."""

    metadata: ClassVar[TaskMetadata]
    default_config: ClassVar[dict[str, Any]] = {}
    # Roles whose clean hook output on all frames the task reads (interventions start there), for
    # models of these families (None: every family). Extraction then keeps those states in the
    # state cache in the same forward pass. A speed hint only: results do not depend on it.
    state_splits: ClassVar[tuple[str, ...]] = ()
    state_families: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def reads_states(cls, role: str, family: str) -> bool:
        return role in cls.state_splits and (cls.state_families is None or family in cls.state_families)

    def config(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        cfg = dict(self.default_config)
        unknown = sorted(set(overrides or {}) - set(cfg))
        if unknown:
            from audiosaebench.errors import TaskError

            raise TaskError(f"task {self.metadata.name} has no option(s) {', '.join(unknown)}")
        cfg.update(overrides or {})
        return cfg

    def run(self, ctx: TaskContext) -> TaskResult:  # pragma: no cover - interface
        raise NotImplementedError
