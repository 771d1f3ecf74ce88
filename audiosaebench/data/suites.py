"""Suites: the fixed splits a task may read, by role.

Roles (what METRICS.md calls the speech, non-speech and commands splits):
``speech_train``, ``speech_test``, ``nonspeech_train``, ``nonspeech_test``, ``commands_train``,
``commands_test``. A suite maps each role it provides to a :class:`Manifest`.

* ``toy``: generated clips for tests and smoke runs (not submittable);
* ``mini``: the embedded default (``audiosaebench data prepare --suite mini``); its manifest
  hashes are compared with the ones shipped in the package, and a mismatch is a warning recorded
  in every result (``data.manifest_warnings``);
* ``full``: LibriSpeech / ESC-50 / Speech Commands from ``--data-dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audiosaebench import paths
from audiosaebench.data.manifest import Manifest
from audiosaebench.errors import DataError

ROLES = (
    "commands_val",
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
    warnings: tuple[str, ...] = ()

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
        if not index.exists():
            raise DataError(
                f"the {name} suite is not prepared in {root}; run `audiosaebench data prepare --suite {name}`"
            )
        import json

        try:
            roles = json.loads(index.read_text())["splits"]
        except (ValueError, KeyError) as e:
            raise DataError(f"{index} is corrupt ({e}); re-run `audiosaebench data prepare --suite {name} --force`") from None
        splits = {role: Manifest.read(root / rel, root=root) for role, rel in roles.items()}
        warnings: tuple[str, ...] = ()
        if name == "mini":
            from audiosaebench.data.mini import compare_expected

            warnings = tuple(compare_expected(splits))
        return Suite(name, splits, warnings=warnings)
    raise DataError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
