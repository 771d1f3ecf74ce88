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
from audiosaebench.data.roles import ROLES  # noqa: F401 - re-exported: the roles a suite may provide
from audiosaebench.errors import DataError


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
    """The suite registered as ``name`` (built-in: toy, mini, full; others through the
    ``audiosaebench.suites`` entry-point group), with its data in ``data_dir`` or the user cache."""
    from audiosaebench.registry import suite_loader

    return suite_loader(name)(data_dir)


def _prepared(name: str, data_dir: str | Path | None) -> tuple[Path, dict[str, Manifest]]:
    """The manifests of a suite written by ``data prepare`` (its ``suite.json`` index)."""
    import json

    root = Path(data_dir) if data_dir else paths.data_dir() / name
    index = root / "suite.json"
    if not index.exists():
        raise DataError(f"the {name} suite is not prepared in {root}; run `audiosaebench data prepare --suite {name}`")
    try:
        roles = json.loads(index.read_text())["splits"]
    except (ValueError, KeyError) as e:
        raise DataError(f"{index} is corrupt ({e}); re-run `audiosaebench data prepare --suite {name} --force`") from None
    return root, {role: Manifest.read(root / rel, root=root) for role, rel in roles.items()}


def load_mini_suite(data_dir: str | Path | None = None) -> Suite:
    """The embedded mini suite; a manifest whose hash differs from the shipped one is a warning that every
    result records (``data.manifest_warnings``)."""
    from audiosaebench.data.mini import compare_expected

    _, splits = _prepared("mini", data_dir)
    return Suite("mini", splits, warnings=tuple(compare_expected(splits)))


def load_full_suite(data_dir: str | Path | None = None) -> Suite:
    """LibriSpeech / ESC-50 / Speech Commands as ``data prepare --suite full`` indexed them."""
    _, splits = _prepared("full", data_dir)
    return Suite("full", splits)
