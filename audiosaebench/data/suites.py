"""Suites: the fixed splits a task may read, by role.

Roles (what METRICS.md calls the speech, non-speech and commands splits):
``speech_train``, ``speech_test``, ``nonspeech_train``, ``nonspeech_test``, ``commands_train``,
``commands_test``. A suite maps each role it provides to a :class:`Manifest`.

* ``toy``: generated clips for tests and smoke runs (not submittable);
* ``mini``: the embedded default (``audiosaebench data prepare --suite mini``);
* ``full``: LibriSpeech / ESC-50 / Speech Commands from ``--data-dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audiosaebench import paths
from audiosaebench.data.manifest import Manifest
from audiosaebench.errors import DataError

ROLES = (
    "speech_train",
    "speech_test",
    "nonspeech_train",
    "nonspeech_test",
    "commands_train",
    "commands_test",
)
SUITES = ("toy", "mini", "full")


@dataclass(frozen=True)
class Suite:
    name: str
    splits: dict[str, Manifest]
    submittable: bool = True

    def split(self, role: str) -> Manifest:
        if role not in self.splits:
            raise DataError(f"suite {self.name!r} has no {role} split (it has {', '.join(sorted(self.splits))})")
        return self.splits[role]


def load_suite(name: str, data_dir: str | Path | None = None) -> Suite:
    if name == "toy":
        from audiosaebench.data.toy import build_toy

        root = Path(data_dir) if data_dir else paths.data_dir() / "toy"
        return Suite("toy", build_toy(root), submittable=False)
    if name in ("mini", "full"):
        root = Path(data_dir) if data_dir else paths.data_dir() / name
        index = root / "suite.json"
        if not index.exists() and name == "mini":
            raise DataError(
                "the mini suite's speech/commands/ESC corpora are not built by this version yet "
                "(only its Whisper tiny.en is); use --suite toy for a smoke run"
            )
        if not index.exists():
            raise DataError(
                f"the {name} suite is not prepared in {root}; run `audiosaebench data prepare --suite {name}`"
            )
        import json

        roles = json.loads(index.read_text())["splits"]
        return Suite(name, {role: Manifest.read(root / rel, root=root) for role, rel in roles.items()})
    raise DataError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
