"""``audiosaebench grid plan|run|status GRID.yaml``: see docs/scale-out.md."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from audiosaebench.grid.engines import ENGINES, EngineOptions
from audiosaebench.grid.plan import OVERWRITE, STAGES, Plan, make_plan
from audiosaebench.grid.spec import GridError, load_spec


def _stages(text: str) -> tuple[str, ...]:
    got = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = sorted(set(got) - set(STAGES))
    if bad or not got:
        raise GridError(f"--stages takes a comma-separated list of {', '.join(STAGES)}, not {text!r}")
    return got


def _plan(args: argparse.Namespace, overwrite: str | None = None) -> Plan:
    spec = load_spec(args.grid, out=args.out)
    return make_plan(spec, overwrite=overwrite or args.overwrite, stages=_stages(args.stages), only=tuple(args.only or ()))


def _header(plan: Plan) -> str:
    s = plan.spec
    tasks = [t.metadata.name for t in plan.inputs.tasks]
    trained = sum(e.train is not None for e in plan.entries)
    return (f"grid {s.path}: model {s.model}, suite {s.suite}, {len(s.hooks)} hook(s), {len(tasks)} task(s) "
            f"({', '.join(tasks)}); {len(plan.entries) - trained} SAE(s) given, {trained} trained; partners: {s.partners}\n"
            f"out {s.out}: results {s.results}, checkpoints {s.checkpoints}, unit records {s.state_dir}")


def _rows(plan: Plan) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for u in plan.units:
        what = "run" if u.run else ("keep" if u.state == "done" else "skip")
        wave = f" (wave {u.wave})" if u.kind == "evaluate" and u.run else ""
        rows.append((u.kind, u.id, u.state, what + wave, u.note))
    for it in plan.submissions:
        rows.append(("submit", it.id, it.state, "run" if it.run else ("keep" if it.state == "done" else "skip"), it.note))
    return rows


def _counts(plan: Plan) -> str:
    by: dict[str, Counter] = {}
    for kind, _, state, what, _ in _rows(plan):
        by.setdefault(kind, Counter())[state] += 1
        by[kind]["to run"] += what.startswith("run")
    parts = []
    for kind, c in by.items():
        states = ", ".join(f"{c[s]} {s}" for s in ("done", "todo", "failed", "blocked") if c[s])
        parts.append(f"{kind}: {states}; {c['to run']} to run")
    return "\n".join(parts)


def cmd_plan(args: argparse.Namespace) -> int:
    from audiosaebench.cli import format_table

    plan = _plan(args)
    print(_header(plan))
    print(format_table(("stage", "unit", "state", "this run", "note"), _rows(plan)))
    print(_counts(plan))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from audiosaebench.grid.records import read_record

    plan = _plan(args, overwrite="never")
    print(_header(plan))
    print(_counts(plan))
    for u in plan.units:
        if u.state in ("failed", "blocked"):
            rec = read_record(plan.spec.state_dir, u.id) or {}
            print(f"{u.state} {u.id}: {u.note}" + (f" (on {rec['host']}, {rec['finished']})" if rec.get("host") else ""))
    return 0


def _options(args: argparse.Namespace, plan: Plan) -> EngineOptions:
    bad = [kv for kv in args.slurm_option or [] if "=" not in kv or not kv.split("=", 1)[0]]
    if bad:
        raise GridError(f"--slurm-option takes KEY=VALUE (an sbatch option without its dashes), not {bad[0]!r}")
    extra = dict(kv.split("=", 1) for kv in args.slurm_option or [])
    return EngineOptions(max_workers=args.max_workers, cpus_per_unit=args.cpus_per_unit, gpu_eval=args.gpu_eval,
                         device=plan.spec.device, units_per_job=args.units_per_job, slurm_partition=args.slurm_partition,
                         slurm_time_min=args.slurm_time_min, slurm_gpus=args.slurm_gpus, slurm_cluster=args.slurm_cluster,
                         slurm_extra=extra, detach=args.detach)


def _write_submissions(plan: Plan, args: argparse.Namespace) -> list[str]:
    """After the units: re-plan (trained SAEs now exist) and write the submission folders that are due."""
    from audiosaebench.grid.submit import write_submission

    if plan.spec.submissions is None or "submit" not in plan.stages:
        return []
    again = make_plan(plan.spec, overwrite=plan.overwrite, stages=("submit",), inputs=plan.inputs,
                      only=tuple(args.only or ()))
    by = {e.label: e for e in again.entries}
    written = []
    for item in again.submissions:
        if item.run and item.ready:
            written.append(str(write_submission(plan.spec, by[item.label], item)))
            print(f"wrote submission {written[-1]}")
    return written


def cmd_run(args: argparse.Namespace) -> int:
    from audiosaebench.grid.engines import run_engine

    plan = _plan(args)
    print(_header(plan))
    todo = plan.to_run()
    ids = {u.id for u in todo}
    jobs = [u.job(plan.spec.state_dir, ids) for u in todo]
    print(f"{len(jobs)} unit(s) to run with --engine {args.engine}: "
          + (", ".join(f"{n} {k}" for k, n in Counter(u.kind for u in todo).items()) or "nothing to do"))
    t0 = time.perf_counter()
    records = run_engine(args.engine, jobs, _options(args, plan)) if jobs else []
    bad = [r for r in records if r["status"] != "done"]
    if args.detach and args.engine == "slurm":
        return 0
    _write_submissions(plan, args)
    print(f"grid run finished in {time.perf_counter() - t0:.1f} s: {len(records) - len(bad)} unit(s) done, "
          f"{len(bad)} not" + "".join(f"\n  {r['status']} {r['unit']}: {r.get('error')}" for r in bad))
    return 1 if bad else 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", help="the GRID.yaml")
    p.add_argument("--out", default=None, help="output folder (overrides the file's out)")
    p.add_argument("--overwrite", choices=OVERWRITE, default="never",
                   help="never (default): run only what is missing; failed: also retry failed units; "
                        "always: rerun every training and evaluation unit")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only the units of SAEs whose names match this shell glob (repeatable), e.g. '*-L3-*'")
    p.add_argument("--engine", choices=ENGINES, default="local")
    p.add_argument("--max-workers", type=int, default=None, help="units at once (ray), array tasks at once (slurm)")


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpus-per-unit", type=int, default=None, help="CPUs a unit asks for (default: threads, else 1)")
    p.add_argument("--gpu-eval", action="store_true", help="evaluation units ask for a GPU too")
    p.add_argument("--units-per-job", type=int, default=1, help="slurm: units per array task, run one after another")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-time-min", type=int, default=240, help="slurm: every job's time limit in minutes")
    p.add_argument("--slurm-gpus", type=int, default=1, help="slurm: GPUs per job of units that use one")
    p.add_argument("--slurm-cluster", choices=("slurm", "local", "debug"), default=None,
                   help="submitit executor (default: SLURM where sbatch exists, else local)")
    p.add_argument("--slurm-option", action="append", help="extra sbatch option KEY=VALUE (repeatable)")
    p.add_argument("--detach", action="store_true", help="slurm: submit the chained arrays and return")


def add_parser(subparsers: Any) -> None:
    g = subparsers.add_parser("grid", help="plan, run and follow a grid of SAEs (GRID.yaml): extract, train, evaluate")
    gsub = g.add_subparsers(dest="grid_command", required=True)
    for name, func, text in (("plan", cmd_plan, "every unit, whether it is done, and what a run would do"),
                             ("run", cmd_run, "run the units that are not done (then write submission folders)"),
                             ("status", cmd_status, "how many units are done, to do, failed; the failures")):
        p = gsub.add_parser(name, help=text)
        _common(p)
        if name == "run":
            _engine_options(p)
        p.set_defaults(func=func)

