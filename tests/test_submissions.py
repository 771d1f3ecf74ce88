"""Submissions: scaffold, validate (safety and consistency) and what the leaderboard reads."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from audiosaebench.cli import main
from audiosaebench.errors import SubmissionError
from audiosaebench.leaderboard.submission import init_submission, load_submissions, validate_submission
from tests import factories as fx


@pytest.fixture
def subs(tmp_path):
    root = tmp_path / "submissions"
    root.mkdir()
    return root


def _ok(root, sub_id="good", **kw):
    return fx.write_submission(root, sub_id, [fx.result_doc("fidelity", l0=30.0), fx.result_doc("phoneme_probing")], **kw)


def test_valid_submission_passes_and_cli_reports_it(subs, capsys):
    folder = _ok(subs)
    s = validate_submission(folder)
    assert s.id == "good" and len(s.results) == 2
    assert main(["submission", "validate", str(folder)]) == 0
    assert "ok good: 2 result(s)" in capsys.readouterr().out


@pytest.mark.parametrize("mutate, message", [
    (lambda f: (f / "results" / "evil.pt").write_bytes(b"\x80\x04"), "unexpected file"),
    (lambda f: (f / "weights").mkdir(), "unexpected folder"),
    (lambda f: os.symlink("/etc/passwd", f / "results" / "x.json"), "symbolic link"),
    (lambda f: os.symlink("/etc", f / "results" / "linkdir"), "symbolic link"),
    (lambda f: (f / "submission.yaml").write_text("!!python/object/apply:os.system ['touch /tmp/pwned']\n"), "not safe, plain YAML"),
    (lambda f: (f / "submission.yaml").write_text("- just\n- a list\n"), "must be a YAML mapping"),
    (lambda f: (f / "submission.yaml").unlink(), "submission.yaml is missing"),
    (lambda f: _edit(f, contact="FILL IN"), "placeholder"),
    (lambda f: _edit(f, id="other"), "differs from the folder name"),
    (lambda f: _edit(f, sae_sha256="d" * 64), "declares"),
    (lambda f: _edit(f, hook_point="encoder.layers.3"), "sae.hook_point"),
    (lambda f: _edit(f, d_sae="1536"), "is not of type 'integer'"),
    (lambda f: _edit(f, extra_field=1), "Additional properties"),
    (lambda f: _result(f, lambda d: d["metrics"]["values"].update(x=None)), "null without a reason"),
    (lambda f: _result(f, lambda d: d.update(kind="baseline")), "result kind"),
    (lambda f: _result(f, lambda d: d["task"].update(version="0.9.0")), "re-run the task"),
    (lambda f: _result(f, lambda d: d["task"].update(name="nonexistent")), "unknown task"),
    (lambda f: _result(f, lambda d: d["provenance"]["dtypes"].update(model_forward="bfloat16")), "the model ran in bfloat16"),
    (lambda f: (f / "results" / "fidelity-mini.json").write_text('{"a": NaN}'), "not valid JSON"),
    (lambda f: (f / "results" / "copy.json").write_text((f / "results" / "fidelity-mini.json").read_text()), "a second fidelity"),
])
def test_bad_submissions_get_one_line_errors(subs, mutate, message):
    folder = _ok(subs)
    mutate(folder)
    with pytest.raises(SubmissionError) as e:
        validate_submission(folder)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists("/tmp/pwned")


def _edit(folder, **changes):
    meta = yaml.safe_load((folder / "submission.yaml").read_text())
    meta.update(changes)
    (folder / "submission.yaml").write_text(yaml.safe_dump(meta))


def _result(folder, change):
    p = folder / "results" / "fidelity-mini.json"
    doc = json.loads(p.read_text())
    change(doc)
    p.write_text(json.dumps(doc))


def test_limit_runs_and_bad_ids_are_refused(subs, tmp_path):
    folder = fx.write_submission(subs, "limited", [fx.result_doc("fidelity", limit=3)])
    with pytest.raises(SubmissionError, match="not submittable"):
        validate_submission(folder)
    bad = fx.write_submission(subs, "Bad_ID", [fx.result_doc()])
    with pytest.raises(SubmissionError, match="must match"):
        validate_submission(bad)
    outside = fx.write_submission(tmp_path, "elsewhere", [fx.result_doc()])
    with pytest.raises(SubmissionError, match="not directly inside"):
        validate_submission(subs / ".." / "elsewhere", subs)
    assert outside.exists()


def test_hostile_strings_are_allowed_in_metadata_but_yaml_tags_are_not(subs):
    folder = _ok(subs, name="<script>alert(1)</script>", authors=["</script><img src=x onerror=alert(2)>"])
    assert validate_submission(folder).meta["name"] == "<script>alert(1)</script>"
    (folder / "submission.yaml").write_text((folder / "submission.yaml").read_text() + "x: !!binary aGVsbG8=\n")
    with pytest.raises(SubmissionError):
        validate_submission(folder)


def test_older_task_versions_load_for_the_board_but_not_for_ci(subs):
    fx.write_submission(subs, "old", [fx.result_doc("fidelity", version="0.9.0")])
    with pytest.raises(SubmissionError, match="re-run"):
        load_submissions(subs, current_versions=True)
    (s,) = load_submissions(subs)
    assert "0.9.0" in s.warnings[0]


def test_init_scaffolds_a_folder_that_validates_once_filled_in(subs, tmp_path, tiny_models):
    from audiosaebench.sae.loading import load_sae

    sae_dir = fx.write_saelens_v6(tmp_path / "my-sae", "topk", fx.random_params("topk", 384, 1536), k=32,
                                  model="openai/whisper-tiny.en", hook="encoder.layers.2")
    sha = load_sae(sae_dir).info.sha256
    res = tmp_path / "results" / "x"
    res.mkdir(parents=True)
    for task in ("fidelity", "coverage"):
        (res / f"{task}.json").write_text(json.dumps(fx.result_doc(task, sae_sha=sha)))
    (res / "other.json").write_text(json.dumps(fx.result_doc("phoneme_probing", sae_sha="e" * 64)))
    assert main(["submission", "init", "--sae", str(sae_dir), "--results", str(tmp_path / "results"),
                 "--out", str(subs), "--id", "my-sae"]) == 0
    folder = subs / "my-sae"
    assert sorted(p.name for p in (folder / "results").iterdir()) == ["coverage-mini.json", "fidelity-mini.json"]
    with pytest.raises(SubmissionError, match="FILL IN"):
        validate_submission(folder)
    meta = yaml.safe_load((folder / "submission.yaml").read_text())
    for key in ("description", "contact", "training_data", "license"):
        meta[key] = "filled"
    meta["authors"] = ["Me"]
    meta["checkpoint"]["location"] = "hf://me/my-sae"
    (folder / "submission.yaml").write_text(yaml.safe_dump(meta))
    assert validate_submission(folder).meta["sae_sha256"] == sha
    with pytest.raises(SubmissionError, match="exists"):
        init_submission(sae_dir, tmp_path / "results", subs, sub_id="my-sae")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SubmissionError, match="no result"):
        init_submission(sae_dir, tmp_path / "empty", subs, sub_id="other")
