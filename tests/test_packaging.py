"""The wheel ships every package (tasks/ under the name audiosaebench_tasks) and the schema."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("audiosaebench", "audiosaebench"), ("tasks", "audiosaebench_tasks")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == listed
    eps = cfg["project"]["entry-points"]["audiosaebench.tasks"]
    for folder in (ROOT / "tasks").iterdir():
        if (folder / "__init__.py").exists():
            assert folder.name in eps, f"task folder {folder.name} has no entry point"
            assert (folder / "README.md").exists()


def test_schema_is_package_data():
    from audiosaebench.results.validation import schema

    assert schema()["$schema"].endswith("2020-12/schema")
