"""The wheel ships every package (tasks/ under the name audiosaebench_tasks) and the schema."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_task_folder_has_an_entry_point_and_a_page():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    eps = cfg["project"]["entry-points"]["audiosaebench.tasks"]
    for folder in (ROOT / "tasks").iterdir():
        if (folder / "__init__.py").exists():
            assert folder.name in eps, f"task folder {folder.name} has no entry point"
            assert (folder / "README.md").exists()


def test_schema_is_package_data():
    from audiosaebench.results.validation import schema

    assert schema()["$schema"].endswith("2020-12/schema")


def test_built_wheel_contains_tasks_schema_and_data(tmp_path):
    import subprocess
    import sys
    import zipfile

    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (whl,) = tmp_path.glob("audiosaebench-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for top, name in (("audiosaebench", "audiosaebench"), ("tasks", "audiosaebench_tasks")):
        for init in (ROOT / top).rglob("__init__.py"):  # every package is discovered
            assert "/".join([name, *init.relative_to(ROOT / top).parts]) in names, init
    for need in ("audiosaebench_tasks/fidelity/__init__.py", "audiosaebench_tasks/fidelity/README.md",
                 "audiosaebench/results/schema.json", "audiosaebench/data/mini_expected.json"):
        assert need in names, need
    assert not any(n.startswith("tasks/") for n in names)
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(whl).read(ep).decode()
    assert "[audiosaebench.tasks]" in text and "fidelity = audiosaebench_tasks.fidelity:FidelityTask" in text
