"""What a metric task is: a metadata record plus ``run(context) -> TaskResult`` (no torch here).

A task module must import without torch so that ``audiosaebench tasks list`` stays fast; it
imports its heavy code inside ``run``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from audiosaebench.data.roles import ROLES

if TYPE_CHECKING:  # type names only: importing this module never imports torch
    from audiosaebench.activations.store import ActivationSet
    from audiosaebench.data.manifest import Manifest
    from audiosaebench.models.base import AudioModelAdapter
    from audiosaebench.sae.sae import SAE

BENCHMARK_CITATION = (
    "@misc{audiosaebench,\n  title={AudioSAEBench: evaluating sparse autoencoders on audio models},\n"
    "  author={{AudioSAEBench contributors}},\n  year={2026}\n}"
)
NEEDS = ("activations", "model", "several_saes", "partner_sae")
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,48}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?"


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A declared metric name as a regex: ``{role}`` is a suite role, any other ``{...}`` a number."""
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append("(?:" + "|".join(ROLES) + ")" if m.group(1) == "role" else _NUMBER)
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out))


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
    # every metric the task writes: name (or pattern, see ``direction``) -> higher is better
    metrics: Mapping[str, bool] = field(default_factory=dict)
    reference: str = ""  # URL or paper of the method
    docs: str = ""  # path of the docs page, relative to the repository
    sparsity_metric: str | None = None  # a metric that measures the SAE's sparsity (the board's x axis)

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
        if not self.metrics:
            problems.append("metrics is empty (declare every metric name and its direction)")
        elif self.direction(self.main_score) != self.higher_is_better:
            problems.append(f"main_score {self.main_score!r} is not declared in metrics with higher_is_better="
                            f"{self.higher_is_better}")
        if self.sparsity_metric is not None and self.direction(self.sparsity_metric) is None:
            problems.append(f"sparsity_metric {self.sparsity_metric!r} is not declared in metrics")
        if problems:
            raise ValueError(f"invalid TaskMetadata for {self.name!r}: " + "; ".join(problems))

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], bool]]:
        return [(_pattern_regex(p), hib) for p, hib in self.metrics.items() if "{" in p]

    def direction(self, name: str) -> bool | None:
        """Whether a higher value of metric ``name`` is better, from ``metrics``; None if undeclared.

        A declared name is matched exactly, else against the patterns in declaration order: in a
        pattern ``{role}`` stands for a suite role and any other ``{...}`` for a number
        (``"recovery@{k}_random"`` declares ``recovery@20_random``)."""
        if name in self.metrics:
            return bool(self.metrics[name])
        return next((hib for rx, hib in self._patterns if rx.fullmatch(name)), None)

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
            "metrics": dict(self.metrics),
            "sparsity_metric": self.sparsity_metric,
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
    """Everything a task receives; it never loads data or models itself.

    ``sae`` is the SAE being scored and ``model`` the adapter of its model; ``partners`` are the
    run's other SAEs (tasks that compare SAEs read them). ``activations(role)`` is the role's
    activation set at the SAE's hook; ``hook=`` reads another hook of the same model, ``of=`` a
    partner's model and hook. Every random choice derives from ``seed``.
    """

    @property
    def sae(self) -> SAE: ...

    @property
    def partners(self) -> Sequence[SAE]: ...

    @property
    def model(self) -> AudioModelAdapter: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def seed(self) -> int: ...

    @property
    def suite_name(self) -> str: ...

    def manifest(self, role: str) -> Manifest: ...

    def activations(self, role: str, hook: str | None = None, *, of: SAE | None = None) -> ActivationSet: ...

    def model_of(self, sae: SAE) -> AudioModelAdapter: ...


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
