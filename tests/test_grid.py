"""The grid engine: GRID.yaml checks, the same results from every engine, resume after a kill,
failed units and --overwrite, release folders, submission folders. Tiny random models on the toy suite."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from audiosaebench.cli import main
from tests import factories as fx

TASKS = ["fidelity", "stability"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_models, toy_dir):
    """Three random TopK SAEs on encoder.layers.1 of the tiny Whisper, and the toy suite."""
    from audiosaebench.data.toy import build_toy

    build_toy(toy_dir)
    root = tmp_path_factory.mktemp("grid-saes")
    for i, name in enumerate("abc"):
        fx.write_saelens_v6(root / name, "topk", fx.random_params("topk", 16, 64, seed=i), k=8,
                            model=str(tiny_models["whisper"]), hook="encoder.layers.1")
    return {"model": str(tiny_models["whisper"]), "toy": str(toy_dir), "saes": root}


def grid_file(tmp_path: Path, world: dict, name: str = "GRID.yaml", **over) -> Path:
    doc = {"model": world["model"], "hooks": ["encoder.layers.1"], "suite": "toy", "data_dir": world["toy"],
           "tasks": TASKS, "saes": [str(world["saes"] / "*")], "partners": "all", "threads": 1,
           "out": str(tmp_path / "out")}
    doc.update(over)
    doc = {k: v for k, v in doc.items() if v is not None}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def results_of(out: Path) -> dict[str, dict]:
    """Every result under out/results, without its timing."""
    return {str(p.relative_to(out)): {k: v for k, v in json.loads(p.read_text()).items() if k != "run"}
            for p in sorted((out / "results").rglob("*.json"))}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _temp_dir=tempfile.mkdtemp(dir="/tmp", prefix="ray-"))
    yield ray
    ray.shutdown()


def test_local_ray_and_slurm_engines_give_identical_results(tmp_path, world, ray_cluster, monkeypatch, capsys):
    pytest.importorskip("submitit")
    grid = grid_file(tmp_path, world)
    runs = {"local": [], "ray": [], "slurm": ["--slurm-cluster", "local", "--units-per-job", "2", "--slurm-time-min", "20"]}
    for engine, extra in runs.items():
        monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / f"home-{engine}"))  # each engine extracts too
        out = tmp_path / engine
        assert main(["grid", "run", str(grid), "--engine", engine, "--out", str(out), *extra]) == 0
        text = capsys.readouterr().out
        assert "6 unit(s) to run" in text and "6 unit(s) done, 0 not" in text, text[-3000:]
    local = results_of(tmp_path / "local")
    assert len(local) == 3 * len(TASKS)
    assert results_of(tmp_path / "ray") == local
    assert results_of(tmp_path / "slurm") == local
    stab = next(d for k, d in local.items() if k.endswith("stability.json"))
    assert len(stab["partner_saes"]) == 2  # partners: all
    # done is done: another run has nothing to do
    assert main(["grid", "run", str(grid), "--out", str(tmp_path / "local")]) == 0
    assert "0 unit(s) to run" in capsys.readouterr().out


def _ran(text: str) -> list[str]:
    """The units a local run started ('[i/n] kind id' lines)."""
    return [line.split()[2] for line in text.splitlines()
            if line.startswith("[") and len(line.split()) == 3 and line.split()[1] in ("extract", "train", "evaluate")]


def test_a_grid_killed_midway_runs_only_the_missing_units_again(tmp_path, world):
    grid = grid_file(tmp_path, world)
    env = {**os.environ, "AUDIOSAEBENCH_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "audiosaebench.cli", "grid", "run", str(grid)]
    records = tmp_path / "out" / "grid" / "units"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list(records.glob("evaluate-*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    first = proc.communicate()[0]
    done_before = {p.stem for p in records.glob("*.json") if json.loads(p.read_text())["status"] == "done"}
    assert any(u.startswith("evaluate-") for u in done_before), first[-2000:]
    assert len(done_before) < 6, "the run finished before it was killed"  # 3 extraction + 3 evaluation units
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    ran = _ran(again.stdout)
    assert ran and not set(ran) & done_before  # nothing done is done again
    assert {p.stem for p in records.glob("*.json")} == done_before | set(ran)
    assert len(results_of(tmp_path / "out")) == 3 * len(TASKS)


def test_failed_units_are_kept_until_overwrite_failed(tmp_path, world, monkeypatch, capsys):
    import audiosaebench.grid.units as units

    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / "home"))
    grid = grid_file(tmp_path, world)
    real = units.run_extraction_unit

    def broken(**kw):
        if kw["role"] == "speech_test":
            raise RuntimeError("disk on fire\nsecond line")
        return real(**kw)

    monkeypatch.setattr(units, "run_extraction_unit", broken)
    assert main(["grid", "run", str(grid)]) == 1
    text = capsys.readouterr().out
    assert "failed extract-speech_test: RuntimeError: disk on fire" in text
    assert text.count("skipped evaluate-") == 3  # every evaluation needs speech_test
    monkeypatch.setattr(units, "run_extraction_unit", real)
    assert main(["grid", "status", str(grid)]) == 0
    text = capsys.readouterr().out
    assert "extract: 2 done, 1 failed" in text and "failed extract-speech_test: RuntimeError: disk on fire" in text
    assert "blocked evaluate-" in text
    assert main(["grid", "run", str(grid)]) == 0  # never: the failure is kept, nothing runs
    assert "0 unit(s) to run" in capsys.readouterr().out
    assert main(["grid", "run", str(grid), "--overwrite", "failed"]) == 0
    assert "4 unit(s) to run" in capsys.readouterr().out
    assert len(results_of(tmp_path / "out")) == 3 * len(TASKS)


@pytest.mark.parametrize("case, message", [
    ("unknown_key", "unknown key 'modle'; did you mean 'model'?"),
    ("missing_key", "missing required key 'out'"),
    ("missing_checkpoint", "saes: checkpoint not found: "),
    ("empty_glob", "matches no checkpoint"),
    ("unknown_task", "unknown task 'fidelty'; did you mean fidelity"),
    ("hook_not_listed", "reads encoder.layers.1, which hooks does not list"),
    ("train_field", "unknown topk training field 'kk'; did you mean 'k'?"),
    ("task_option", "task fidelity has no option(s) nonsense"),
    ("alias", "YAML anchors and aliases are not allowed"),
    ("partners", "partners must be one of seeds, all, none"),
])
def test_bad_grid_is_one_line_error_before_any_unit_runs(tmp_path, world, capsys, case, message):
    over = {"unknown_key": {"modle": "x"}, "missing_key": {"out": None},
            "missing_checkpoint": {"saes": [str(tmp_path / "nowhere")]},
            "empty_glob": {"saes": [str(tmp_path / "none-*")]}, "unknown_task": {"tasks": ["fidelty"]},
            "hook_not_listed": {"hooks": ["encoder.layers.2"]},
            "train_field": {"train": {"runs": [{"architecture": "topk", "kk": 4}]}},
            "task_option": {"task_options": {"fidelity": {"nonsense": 1}}}, "partners": {"partners": "some"},
            "alias": {}}[case]
    grid = grid_file(tmp_path, world, **over)
    if case == "alias":
        grid.write_text(grid.read_text() + "x: &a [1]\ny: *a\n")
    assert main(["grid", "run", str(grid)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audiosaebench: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_only_runs_the_picked_saes_and_a_later_run_the_rest(tmp_path, world, capsys, monkeypatch):
    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / "home"))
    grid = grid_file(tmp_path, world, partners="none")
    assert main(["grid", "plan", str(grid), "--only", "b-*"]) == 0
    plan = capsys.readouterr().out
    assert "evaluate: 3 todo; 1 to run" in plan and plan.count("not picked by --only") == 2, plan
    assert main(["grid", "run", str(grid), "--only", "b-*"]) == 0
    assert _ran(capsys.readouterr().out)[-1].startswith("evaluate-b-")
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "out" / "results").iterdir()) == ["b"]
    assert main(["grid", "run", str(grid)]) == 0
    assert sorted(u.split("-")[1] for u in _ran(capsys.readouterr().out) if u.startswith("evaluate-")) == ["a", "c"]
    assert main(["grid", "plan", str(grid), "--only", "z*"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--only 'z*' names none of the grid's 3 SAEs" in err, err


def test_a_release_folder_expands_to_every_layer(tmp_path, world, capsys, monkeypatch):
    from audiosaebench.grid.spec import load_spec

    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / "home"))  # an empty store: both hooks still to extract

    release = tmp_path / "release"
    for n in (2, 1, 10):
        fx.write_dictionary_learning(release / f"layer_{n}", fx.random_params("topk", 16, 32, seed=n), k=4,
                                     trainer={"lm_name": world["model"]})
    spec = load_spec(grid_file(tmp_path, world, saes=[str(release)]))
    assert [p.name for p in spec.saes] == ["layer_1", "layer_2", "layer_10"]
    grid = grid_file(tmp_path, world, saes=[str(release / "layer_1"), str(release / "layer_2")],
                     hooks=["encoder.layers.0", "encoder.layers.1"], tasks=["fidelity"])
    assert main(["grid", "plan", str(grid)]) == 0
    text = capsys.readouterr().out
    assert "extract   extract-speech_test" in text and "encoder.layers.0, encoder.layers.1" in text  # one pass, both hooks
    assert text.count("evaluate  evaluate-layer_") == 2


def test_submission_folders_are_written_then_kept(tmp_path, world, monkeypatch, capsys):
    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / "home"))
    subs = {"dir": str(tmp_path / "subs"), "id": "grid-{name}", "description": "{architecture} {sparsity} on {hook}",
            "authors": ["A. Tester"], "license": "MIT"}
    grid = grid_file(tmp_path, world, saes=[str(world["saes"] / "a")], tasks=["fidelity"], submissions=subs)
    assert main(["grid", "run", str(grid)]) == 0
    assert "wrote submission" in capsys.readouterr().out
    (folder,) = (tmp_path / "subs").iterdir()
    meta = yaml.safe_load((folder / "submission.yaml").read_text())
    assert folder.name.startswith("grid-a-") and meta["id"] == folder.name
    assert meta["description"] == "topk k8 on encoder.layers.1" and meta["authors"] == ["A. Tester"]
    assert meta["contact"] == "FILL IN"  # not given: left for the author, as submission init leaves it
    (res,) = (folder / "results").iterdir()
    assert res.name == "fidelity-toy.json"
    assert main(["grid", "plan", str(grid)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["submit", folder.name, "done", "keep"] in rows


@pytest.mark.slow
def test_training_units_train_the_same_weights_on_every_engine(tmp_path, world, ray_cluster, monkeypatch, capsys):
    pytest.importorskip("sae_lens")
    pytest.importorskip("submitit")
    train = {"defaults": {"steps": 40, "batch_size": 64}, "runs": [{"architecture": "topk", "k": 4, "seed": [0, 1]},
                                                                   {"architecture": "batchtopk", "k": 4}]}
    grid = grid_file(tmp_path, world, saes=[str(world["saes"] / "a")], train=train, partners="seeds")
    runs = {"local": [], "ray": [], "slurm": ["--slurm-cluster", "local", "--units-per-job", "8", "--slurm-time-min", "20"]}
    weights = {}
    for engine, extra in runs.items():
        monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / f"home-{engine}"))
        out = tmp_path / engine
        assert main(["grid", "run", str(grid), "--engine", engine, "--out", str(out), *extra]) == 0
        assert "3 train" in capsys.readouterr().out
        weights[engine] = {p.parent.name: p.read_bytes() for p in (out / "checkpoints").glob("*/sae_weights.safetensors")}
    assert len(weights["local"]) == 3 and weights["ray"] == weights["local"] and weights["slurm"] == weights["local"]
    local = results_of(tmp_path / "local")
    assert results_of(tmp_path / "ray") == local and results_of(tmp_path / "slurm") == local
    stab = {k.split("/")[1]: d for k, d in local.items() if k.endswith("stability.json")}
    pair = [d for k, d in stab.items() if "-topk-" in k]
    assert len(pair) == 2 and all(len(d["partner_saes"]) == 1 for d in pair)  # the two seeds of one run
    assert all(d["metrics"]["values"] for d in pair)
    lone = next(d for k, d in stab.items() if "-batchtopk-" in k)
    assert lone.get("partner_saes", []) == [] and lone["metrics"]["reasons"]  # no seed sibling: a null result
    # a moved output folder (a checkpoint's hash names what was trained, not where) is still done
    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / "home-local"))
    (tmp_path / "local").rename(tmp_path / "moved")
    assert main(["grid", "plan", str(grid), "--out", str(tmp_path / "moved")]) == 0
    assert "train: 3 done; 0 to run" in capsys.readouterr().out


def test_evaluation_runs_in_waves_one_writer_per_cache(tmp_path, world, monkeypatch):
    from audiosaebench.grid.engines.slurm import steps
    from audiosaebench.grid.plan import make_plan
    from audiosaebench.grid.spec import load_spec

    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(tmp_path / "home"))
    other = fx.write_saelens_v6(tmp_path / "z-on-L2", "topk", fx.random_params("topk", 16, 64, seed=9), k=8,
                                model=world["model"], hook="encoder.layers.2")
    grid = grid_file(tmp_path, world, hooks=["encoder.layers.1", "encoder.layers.2"],
                     saes=[str(world["saes"] / "*"), str(other)])
    plan = make_plan(load_spec(grid))
    ev = [u for u in plan.to_run() if u.kind == "evaluate"]
    assert [(u.id.split("-")[1], u.wave) for u in ev] == [("a", 0), ("z", 1), ("b", 2), ("c", 2)]
    lead = ev[0].id
    assert all(u.order == [lead] for u in ev[1:])  # b and c wait for a (their hook's lead), z for the first SAE
    jobs = [u.job(plan.spec.state_dir, {u.id for u in plan.to_run()}) for u in plan.to_run()]
    assert [(g[0]["kind"], len(g)) for g in steps(jobs)] == [("extract", 3), ("evaluate", 1), ("evaluate", 1),
                                                               ("evaluate", 2)]
