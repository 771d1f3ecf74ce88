"""Hostile text where someone else's files are read: one-line errors naming the file, exit status 2,
bounded time and memory, and nothing built before the limits are checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audiosaebench import untrusted
from audiosaebench.errors import CheckpointError, SubmissionError
from tests import factories as fx


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML 'billion laughs': each anchor lists ``width`` aliases of the previous one (about 30 lines)."""
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _submission(tmp_path: Path) -> Path:
    folder = fx.write_submission(tmp_path / "submissions", "hostile", [fx.result_doc()])
    return folder


_MEASURED = """
import resource, subprocess, sys
out = subprocess.run([sys.executable, "-m", "audiosaebench.cli", *sys.argv[2:]], capture_output=True, text=True)
sys.stdout.write(out.stdout)
sys.stderr.write(out.stderr)
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(out.returncode)
"""


def _cli(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, int]:
    """Run the CLI in a fresh child process; return it and its peak resident memory in bytes (measured by
    a wrapper process whose only child it is)."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as f:
        out = subprocess.run([sys.executable, "-c", _MEASURED, f.name, *args], capture_output=True, text=True,
                             timeout=timeout)
        return out, int(f.read() or 0) * 1024


def test_an_alias_bomb_in_submission_yaml_is_refused_at_once_in_little_memory(tmp_path):
    folder = _submission(tmp_path)
    meta = (folder / "submission.yaml").read_text()
    (folder / "submission.yaml").write_text(meta.replace("authors:\n- A. Author\n", "authors: *a9\n") + alias_bomb())
    out, peak = _cli("submission", "validate", str(folder))
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "anchors and aliases" in out.stderr and "submission.yaml" in out.stderr
    assert "Traceback" not in out.stderr
    assert peak < 200 << 20, f"peak RSS {peak >> 20} MB"


@pytest.mark.parametrize("text, needle", [
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("x: !!python/object/apply:os.system [echo pwned]\n", "not safe, plain YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
])
def test_hostile_submission_yaml_gives_one_line_errors(tmp_path, text, needle):
    p = tmp_path / "submission.yaml"
    p.write_text(text)
    with pytest.raises(SubmissionError, match=needle) as e:
        untrusted.read_yaml_mapping(p, SubmissionError)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_yaml_that_is_not_utf8_or_too_large_is_refused_before_it_is_parsed(tmp_path):
    p = tmp_path / "submission.yaml"
    p.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SubmissionError, match="not UTF-8"):
        untrusted.read_yaml_mapping(p, SubmissionError)
    p.write_text("a: " + "x" * 200 + "\n")
    with pytest.raises(SubmissionError, match="larger than the 100 allowed"):
        untrusted.read_yaml_mapping(p, SubmissionError, max_bytes=100)


def test_a_cfg_json_of_100000_brackets_is_a_one_line_error_in_convert_and_evaluate(tmp_path):
    d = fx.write_saelens_v6(tmp_path / "sae", "topk", fx.random_params("topk", 6, 10), k=3)
    (d / "cfg.json").write_text("[" * 100_000 + "]" * 100_000)
    for args in (("convert", str(d), str(tmp_path / "out")), ("evaluate", "--sae", str(d), "--suite", "toy")):
        out, _ = _cli(*args)
        assert out.returncode == 2, out
        assert out.stderr.count("\n") == 1 and "cfg.json" in out.stderr and "nested 100000 levels" in out.stderr
        assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr


def test_a_deeply_nested_submission_yaml_is_a_one_line_error_in_validate(tmp_path):
    folder = _submission(tmp_path)
    (folder / "submission.yaml").write_text("authors: " + "[" * 5000 + "]" * 5000 + "\n")
    out, _ = _cli("submission", "validate", str(folder))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "nested more than" in out.stderr, out


@pytest.mark.parametrize("text, needle", [
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('{"a": NaN}', "NaN is not valid JSON"),
    ('{"a": 1e999}', "too large for a double"),
    ('{"a": ' + "[" * 70 + "]" * 70 + "}", "nested 71 levels"),
    ('{"a": "' + "[" * 70 + '"}', None),  # brackets inside a string are text
    ("{", "not valid JSON"),
])
def test_json_limits(tmp_path, text, needle):
    p = tmp_path / "cfg.json"
    p.write_text(text)
    if needle is None:
        assert untrusted.read_json(p, CheckpointError) == {"a": "[" * 70}
        return
    with pytest.raises(CheckpointError, match=needle) as e:
        untrusted.read_json(p, CheckpointError)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_result_json_with_a_duplicate_key_is_refused_by_validate(tmp_path):
    folder = _submission(tmp_path)
    (path,) = (folder / "results").glob("*.json")
    text = path.read_text()
    path.write_text(text[:-1] + ', "kind": "baseline"}')
    out, _ = _cli("submission", "validate", str(folder))
    assert out.returncode == 2 and "duplicate key 'kind'" in out.stderr, out


def test_the_depth_scan_counts_only_brackets_outside_strings():
    assert untrusted.json_depth('{"a": [1, {"b": "]]]"}]}') == 3
    assert untrusted.json_depth(json.dumps({"x": "\\\"[[[["})) == 1
    assert untrusted.json_depth("") == 0


def test_files_built_to_make_the_scanners_backtrack_are_read_in_linear_time(tmp_path):
    """An unterminated string of escaped quotes (every quote a place a string could start), within the
    size limit, is read at once; the duplicate-key check of a YAML mapping grows linearly with its keys."""
    import time

    p = tmp_path / "r.json"
    p.write_bytes(b'"' + b'\\"' * ((untrusted.MAX_BYTES - 8) // 2))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="not valid JSON"):
        untrusted.read_json(p, CheckpointError)
    assert time.perf_counter() - t0 < 2.0

    def read_keys(n: int) -> float:  # a mapping of n keys whose last one repeats an early one
        y = tmp_path / f"s{n}.yaml"
        y.write_text("".join(f"k{i}: {i}\n" for i in range(n)) + "k7: dup\n")
        t0 = time.perf_counter()
        with pytest.raises(SubmissionError, match="duplicate key 'k7'"):
            untrusted.read_yaml_mapping(y, SubmissionError)
        return time.perf_counter() - t0

    small, large = min(read_keys(5_000) for _ in range(2)), min(read_keys(20_000) for _ in range(2))
    assert large < 8 * small, (small, large)  # 4x the keys: about 4x the time; a pairwise check would be 16x


def test_written_files_and_folders_follow_the_umask(tmp_path):
    import os

    from audiosaebench import atomic

    old = os.umask(0o022)
    atomic.current_umask.cache_clear()  # read once per process: read it again under this umask
    try:
        atomic.write_text(tmp_path / "a.json", "{}")
        with atomic.new_folder(tmp_path / "f") as d:
            (d / "x").write_text("1")
        with atomic.new_folder(tmp_path / "f", replace=True) as d:
            (d / "x").write_text("2")
    finally:
        os.umask(old)
        atomic.current_umask.cache_clear()
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o755 and (tmp_path / "f" / "x").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "f"]  # nothing set aside is left behind
