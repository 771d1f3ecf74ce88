"""The shape of the code a newcomer reads: short functions, one-way imports, user docs without a lab
notebook in them, and tasks that use only their contract."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "audiosaebench").rglob("*.py"), *(ROOT / "tasks").rglob("*.py")])
MAX_FUNCTION_LINES = 60


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_function_is_longer_than_60_lines():
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in SOURCES for n in _functions(p) if n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "split these into phases:\n" + "\n".join(long)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


# audio -> model adapter -> activation store -> SAE codes -> tasks -> result JSON -> leaderboard: a layer
# imports only from layers before it (lazy imports inside functions included).
FORBIDDEN = {
    "audiosaebench/data": ("audiosaebench.models", "audiosaebench.activations", "audiosaebench.sae",
                           "audiosaebench.leaderboard", "audiosaebench_tasks", "audiosaebench.evaluation"),
    "audiosaebench/models": ("audiosaebench.activations", "audiosaebench.leaderboard", "audiosaebench_tasks",
                             "audiosaebench.evaluation", "audiosaebench.baselines"),
    "audiosaebench/sae": ("audiosaebench.activations", "audiosaebench.leaderboard", "audiosaebench_tasks",
                          "audiosaebench.evaluation", "audiosaebench.baselines"),
    "audiosaebench/activations": ("audiosaebench.leaderboard", "audiosaebench_tasks", "audiosaebench.evaluation"),
    "audiosaebench/results": ("audiosaebench.leaderboard", "audiosaebench_tasks", "audiosaebench.evaluation"),
    "audiosaebench/toolkit": ("audiosaebench.leaderboard", "audiosaebench_tasks", "audiosaebench.evaluation"),
    "audiosaebench/partners.py": ("audiosaebench.leaderboard",),
    "tasks": ("audiosaebench.baselines", "audiosaebench.leaderboard", "audiosaebench.evaluation"),
}


def test_data_flows_one_way():
    bad = []
    for p in SOURCES:
        rel = p.relative_to(ROOT).as_posix()
        for prefix, banned in FORBIDDEN.items():
            if rel == prefix or rel.startswith(prefix + "/"):
                bad += [f"{rel} imports {m}" for m in _imports(p) if m.startswith(banned)]
    # a task reads another task's code only through the shared toolkit
    for p in (ROOT / "tasks").rglob("*.py"):
        own = p.relative_to(ROOT / "tasks").parts[0]
        bad += [f"{p.relative_to(ROOT)} imports {m}" for m in _imports(p)
                if m.startswith("audiosaebench_tasks.") and m.split(".")[1] != own]
    assert not bad, "\n".join(bad)


USER_TEXT = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md"),
             *(ROOT / "tasks").glob("*/README.md"), ROOT / "submissions" / "README.md"]
HISTORY = [
    (re.compile(r"\bissues? ?#?\d+\b", re.I), "an issue number"),
    (re.compile(r"\bgoals? \([a-e]\)|\(\s?[a-e]\s?\)'s goal|goal \([a-e]\)", re.I), "an issue's goal letter"),
    (re.compile(r"\b20\d\d-\d\d-\d\d\b"), "a date"),
]


TESTS_AND_BENCH = sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "bench").rglob("*.py"), *(ROOT / "bench").rglob("*.sh"),
                          ROOT / "submissions" / "rebuild.sh", *(ROOT / "grids").glob("*.yaml")])


@pytest.mark.parametrize("path", USER_TEXT + SOURCES + TESTS_AND_BENCH, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_text_and_code_carry_no_history(path):
    """Measurement history and issue numbers belong in git history and CHANGELOG.md."""
    if not path.exists():
        pytest.skip(f"{path.name} not written")
    text = path.read_text()
    found = [f"{what}: {m.group(0)!r}" for rx, what in HISTORY for m in rx.finditer(text)]
    assert not found, f"{path.relative_to(ROOT)}: " + "; ".join(found[:5])


@pytest.mark.parametrize("path", USER_TEXT, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_text_has_no_unfilled_placeholder(path):
    found = re.findall(r"\b(?:TBD|TODO|FIXME|XXX|MEASURED|PERF_TABLE|READ_TABLE)\b", path.read_text())
    assert not found, f"{path.relative_to(ROOT)}: {sorted(set(found))}"


def test_readme_is_a_front_page_under_900_words():
    text = (ROOT / "README.md").read_text()
    words = len(text.split())  # as `wc -w` counts: code and table rules included
    assert words < 900, f"README has {words} words"
    heads = [h.lower() for h in re.findall(r"^## (.+)$", text, flags=re.M)]
    for want in ("set-up", "read", "score your own", "submit", "docs", "cite"):
        assert any(want in h for h in heads), f"README lacks a section on {want!r}: {heads}"
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert len(blocks[0].strip().splitlines()) == 1 and len(blocks[1].strip().splitlines()) == 1, blocks[:2]


def test_ci_runs_the_readmes_test_command():
    """CI installs what the README's test command installs and runs the same pytest command."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    steps = [s.strip() for s in blocks[1].split("&&")]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    install = [s for s in steps if s.startswith("pip install")]
    assert steps[-1] == "python -m pytest -q" and ci[-1] == steps[-1], (steps, ci[-1])
    assert install and any(line.endswith(install[0]) for line in ci), (install, "not in .ci/run")


def _context_names(fn: ast.AST) -> set[str]:
    """The names a function's task context goes by: ``ctx``, and any parameter annotated TaskContext."""
    names = {"ctx"}
    args = fn.args if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    for a in (args.posonlyargs + args.args + args.kwonlyargs) if args else []:
        if a.annotation is not None and "TaskContext" in ast.unparse(a.annotation):
            names.add(a.arg)
    return names


def test_tasks_use_only_their_contract():
    """Everything a task reads from its context is declared on audiosaebench.task.TaskContext (as an
    attribute, or through getattr with a literal name)."""
    from audiosaebench.task import TaskContext

    allowed = {n for n in dir(TaskContext) if not n.startswith("_")}
    used = set()
    for p in (ROOT / "tasks").rglob("*.py"):
        tree = ast.parse(p.read_text())
        for fn in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
            names = _context_names(fn)
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
                    used.add((node.attr, p.relative_to(ROOT).as_posix()))
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                        and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in names):
                    literal = node.args[1] if len(node.args) > 1 else None
                    attr = literal.value if isinstance(literal, ast.Constant) else "<computed name>"
                    used.add((str(attr), p.relative_to(ROOT).as_posix()))
    assert {a for a, _ in used} <= allowed, sorted(u for u in used if u[0] not in allowed)


def test_the_evaluation_context_implements_the_contract():
    import inspect

    from audiosaebench.evaluation import EvalContext
    from audiosaebench.task import TaskContext

    for name in (n for n in dir(TaskContext) if not n.startswith("_")):
        assert hasattr(EvalContext, name) or name in EvalContext.__dataclass_fields__, name
    assert all(p.kind is p.KEYWORD_ONLY for p in inspect.signature(EvalContext).parameters.values())
