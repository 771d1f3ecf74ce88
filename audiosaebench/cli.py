"""``audiosaebench`` command line: a thin layer over the Python API.

User errors (:class:`AudioSAEBenchError`) print one line to stderr and exit with status 2;
interrupted runs exit 130 and keep every result already written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from audiosaebench import __version__
from audiosaebench.dashboards.cli import add_parser as add_dashboards
from audiosaebench.errors import AudioSAEBenchError
from audiosaebench.grid.cli import add_parser as _add_grid

log = logging.getLogger("audiosaebench")


def _fmt(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, with a rule under the header."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def summary_table(records: list[dict[str, Any]]) -> str:
    header = ("sae", "task", "main score", "value", "95% CI", "floor", "ceiling", "time s")
    rows = []
    for r in records:
        m = r["metrics"]
        name = m["main_score"]
        ci = r["uncertainty"]["values"].get(name)
        arrow = "↑" if m["higher_is_better"].get(name, True) else "↓"
        rows.append((
            r["sae"]["id"], f"{r['task']['name']} {r['task']['version']}", f"{name} {arrow}",
            _fmt(m["values"].get(name)), f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "-",
            _fmt(m["floor"]), _fmt(m["ceiling"]), f"{r['run']['runtime_s']:.1f}",
        ))
    return format_table(header, rows)


def cmd_tasks_list(args: argparse.Namespace) -> int:
    from audiosaebench.registry import get_task, task_names

    rows = [get_task(n).metadata for n in task_names()]
    if args.json:
        print(json.dumps([m.to_dict() for m in rows], indent=2))
        return 0
    print(format_table(("task", "version", "main score", "direction"),
                       [(m.name, m.version, m.main_score, "higher is better" if m.higher_is_better else "lower is better")
                        for m in rows]))
    return 0


def _task_config(pairs: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in pairs:
        if "=" not in p or "." not in p.split("=", 1)[0]:
            raise AudioSAEBenchError(f"--task-option {p!r} must look like task.option=value")
        key, raw = p.split("=", 1)
        task, opt = key.split(".", 1)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(task, {})[opt] = value
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    from audiosaebench.evaluation import evaluate

    records = evaluate(
        args.sae,
        args.tasks,
        suite=args.suite,
        data_dir=args.data_dir,
        out=args.out,
        model=args.model,
        hook=args.hook,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        resume=args.resume,
        limit=args.limit,
        seed=args.seed,
        task_config=_task_config(args.task_option or []),
        progress=not args.no_progress,
        partners=args.partner,
        kind=args.kind,
    )
    print(summary_table(records))
    if args.limit is not None:
        print(f"note: --limit {args.limit} run: results are marked not submittable")
    print(f"results written to {args.out}/")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from audiosaebench.sae import load_sae, write_saelens_v6

    sae = load_sae(args.input, hook_point=args.hook, model_id=args.model, scaling_factor=args.scaling_factor)
    out = write_saelens_v6(sae, args.output, overwrite=args.overwrite)
    i = sae.info
    print(f"wrote SAELens v6 {i.architecture} SAE (d_in={i.d_in}, d_sae={i.d_sae}"
          f"{f', k={i.k}' if i.k else ''}) from {i.source_format} to {out}")
    for note in i.notes:
        print(f"  note: {note}")
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from audiosaebench import paths
    from audiosaebench.data.suites import load_suite

    if args.suite == "toy":
        s = load_suite("toy", args.data_dir)
        _print_splits(s.splits)
        return 0
    if args.suite == "full":
        from audiosaebench.data.full import prepare_full

        if not args.data_dir:
            raise AudioSAEBenchError("data prepare --suite full needs --data-dir (where the official archives are unpacked)")
        sources = dict(kv.split("=", 1) for kv in (args.hf_source or []))
        manifests = prepare_full(Path(args.data_dir), from_hf=args.from_hf, hf_sources=sources, revision=args.hf_revision)
        print(f"full suite at {args.data_dir}")
        _print_splits(manifests)
        return 0
    from audiosaebench.data.mini import prepare_mini
    from audiosaebench.models import ct2_whisper
    from audiosaebench.models.loading import mini_whisper_dir

    t0 = time.perf_counter()
    out = mini_whisper_dir()
    if (out / "config.json").exists() and not args.force:
        print(f"Whisper tiny.en (converted from {ct2_whisper.SOURCE_PACKAGE}) already at {out}")
    else:
        ct2_whisper.convert(out)
        print(f"converted Whisper tiny.en from {ct2_whisper.SOURCE_PACKAGE} to {out} ({time.perf_counter() - t0:.1f} s)")
    t1 = time.perf_counter()
    base = Path(args.data_dir) if args.data_dir else paths.data_dir() / "mini"
    manifests, warnings = prepare_mini(base, force=args.force)
    print(f"mini suite at {base} ({time.perf_counter() - t1:.1f} s)")
    _print_splits(manifests)
    for w in warnings:
        print(f"warning: {w}")
    return 0


def _print_splits(splits) -> None:
    for role, m in sorted(splits.items()):
        print(f"  {role:<16}{m.name:<32}{len(m):>5} clips  {sum(c.duration_s for c in m):>7.1f} s  {m.sha256[:16]}")


def cmd_data_verify(args: argparse.Namespace) -> int:
    from audiosaebench.data.suites import load_suite

    s = load_suite(args.suite, args.data_dir)
    n = 0
    for m in s.splits.values():
        for clip in m:
            m.load(clip, verify=True)
            n += 1
    for w in s.warnings:
        print(f"warning: {w}")
    print(f"verified {n} clips in {len(s.splits)} splits of the {s.name} suite: every PCM sha256 matches its manifest")
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from audiosaebench.baselines import write_baselines

    suite = None if args.suite == "none" else args.suite
    paths = write_baselines(args.model, args.hook, args.out, d_sae=args.d_sae, k=args.k, seed=args.seed,
                            overwrite=args.overwrite, suite=suite, data_dir=args.data_dir)
    for p in paths:
        print(f"wrote {p}")
    if args.no_eval or suite is None:
        return 0
    from audiosaebench.evaluation import evaluate

    records = evaluate([str(p) for p in paths], args.tasks, suite=suite, data_dir=args.data_dir, out=args.results,
                       model=args.model, kind="baseline", resume=True, progress=not args.no_progress)
    print(summary_table(records))
    print(f"baseline results written to {args.results}/")
    return 0


def cmd_train_reference(args: argparse.Namespace) -> int:
    from audiosaebench.training import Recipe, train_reference

    seeds = tuple(int(x) for x in args.seeds.split(","))
    recipe = Recipe(k=args.k, expansion=args.expansion, steps=args.steps)
    for p in train_reference(args.model, args.hook, args.out, suite=args.suite, data_dir=args.data_dir, seeds=seeds,
                             recipe=recipe, overwrite=args.overwrite):
        stats = json.loads((p / "training.json").read_text())
        print(f"wrote {p}  (train FVU {stats['final_fvu']:.4f}, {stats['alive_features']} alive features, "
              f"{stats['train_seconds']:.0f} s)")
    return 0


def _add_evaluate(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="score one or more SAEs on metric tasks")
    e.add_argument("--sae", action="append", required=True, help="checkpoint folder (repeat for several SAEs)")
    e.add_argument("--partner", action="append", default=[],
                   help="an SAE (folder), a submission folder or a folder of submissions that multi-SAE tasks "
                        "(stability, cross_model_alignment) compare against without evaluating it (repeatable)")
    e.add_argument("--tasks", default="all", help="'all' or a comma-separated list")
    add_run_options(e)
    e.add_argument("--out", default="results", help="output folder: <out>/<sae id>/<task>.json")
    e.add_argument("--resume", action="store_true", help="skip tasks whose result exists with the same config")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--task-option", action="append", help="task.option=value (JSON value)")
    e.add_argument("--kind", choices=("submission", "baseline"), default="submission",
                   help="what the results are (baseline: rows written for reference SAEs)")
    e.set_defaults(func=cmd_evaluate)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every command that runs a model shares (evaluate, dashboards)."""
    p.add_argument("--suite", default="mini", help="mini (default), full, toy, or a registered suite")
    p.add_argument("--data-dir", default=None, help="where the suite's data lies (default: the user cache)")
    p.add_argument("--model", default=None, help="model id or local folder (overrides the checkpoint's)")
    p.add_argument("--hook", default=None, help="hook point (overrides the checkpoint's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="model forward dtype (leaderboard submissions need float32)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="first N clips per split (not submittable)")
    p.add_argument("--no-progress", action="store_true")


def _add_tasks(sub: Any) -> None:
    t = sub.add_parser("tasks", help="registered metric tasks")
    tsub = t.add_subparsers(dest="tasks_command", required=True)
    tl = tsub.add_parser("list", help="name, version, main score and direction of every task")
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(func=cmd_tasks_list)


def _add_convert(sub: Any) -> None:
    c = sub.add_parser("convert", help="write any supported checkpoint as a SAELens v6 folder")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--hook", default=None)
    c.add_argument("--model", default=None)
    c.add_argument("--scaling-factor", type=float, default=None, help="for expected_average_only_in")
    c.add_argument("--overwrite", action="store_true")
    c.set_defaults(func=cmd_convert)


def _add_data(sub: Any) -> None:
    d = sub.add_parser("data", help="prepare and verify the fixed splits")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dp = dsub.add_parser("prepare")
    dp.add_argument("--suite", default="mini", choices=["mini", "full", "toy"])
    dp.add_argument("--data-dir", default=None)
    dp.add_argument("--force", action="store_true", help="rebuild even if present")
    dp.add_argument("--from-hf", action="store_true", help="full suite: export the HF datasets into --data-dir first")
    dp.add_argument("--hf-source", action="append", help="full suite: librispeech|speech_commands|esc50=HUB_ID_OR_PARQUET")
    dp.add_argument("--hf-revision", default=None, help="full suite: pinned dataset revision (commit)")
    dp.set_defaults(func=cmd_data_prepare)
    dv = dsub.add_parser("verify", help="decode every clip and check it against its manifest")
    dv.add_argument("--suite", default="mini")
    dv.add_argument("--data-dir", default=None)
    dv.set_defaults(func=cmd_data_verify)


def _add_baselines(sub: Any) -> None:
    b = sub.add_parser("baselines", help="write identity and random reference SAEs for a model and hook")
    b.add_argument("--model", required=True, help="model id or local folder")
    b.add_argument("--hook", required=True)
    b.add_argument("--out", default="baselines")
    b.add_argument("--d-sae", type=int, default=None, help="random SAE width (default 8 x d_in)")
    b.add_argument("--k", type=int, default=32)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--overwrite", action="store_true")
    b.add_argument("--suite", default="mini",
                   help="suite for the PCA fit and the evaluation ('none': identity and random only, no evaluation)")
    b.add_argument("--data-dir", default=None)
    b.add_argument("--tasks", default="all")
    b.add_argument("--results", default="results", help="where the baseline results go (kind: baseline)")
    b.add_argument("--no-eval", action="store_true", help="only write the checkpoints")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=cmd_baselines)


def _add_train_reference(sub: Any) -> None:
    r = sub.add_parser("train-reference", help="train reference TopK SAEs on a suite's train splits")
    r.add_argument("--model", default="openai/whisper-tiny.en")
    r.add_argument("--hook", default="encoder.layers.2")
    r.add_argument("--suite", default="mini")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--seeds", default="0,1", help="comma-separated; SAEs differ only in seed")
    r.add_argument("--k", type=int, default=32)
    r.add_argument("--expansion", type=int, default=4, help="d_sae = expansion x d_in")
    r.add_argument("--steps", type=int, default=1500)
    r.add_argument("--out", default="reference")
    r.add_argument("--overwrite", action="store_true")
    r.set_defaults(func=cmd_train_reference)


def _add_submission(sub: Any) -> None:
    sm = sub.add_parser("submission", help="scaffold and validate leaderboard submissions")
    smsub = sm.add_subparsers(dest="submission_cmd", required=True)
    si = smsub.add_parser("init", help="scaffold submissions/<id>/ from an SAE and its results")
    si.add_argument("--sae", required=True, help="the checkpoint the results were made with")
    si.add_argument("--results", required=True, help="the folder `evaluate --out` wrote")
    si.add_argument("--out", default="submissions", help="the submissions folder")
    si.add_argument("--id", default=None, help="submission id (default: from the SAE id)")
    si.add_argument("--kind", choices=("submission", "reference", "baseline"), default="submission")
    si.add_argument("--overwrite", action="store_true")
    for name, text in (("name", "display name"), ("description", "one paragraph"), ("authors", "separated by ';'"),
                       ("contact", "e-mail or URL"), ("license", "of the checkpoint"),
                       ("training-data", "what the SAE was trained on"), ("checkpoint", "where the weights are")):
        si.add_argument(f"--{name}", default=None, help=f"{text} (else FILL IN)")
    si.set_defaults(func=cmd_submission_init)
    sv = smsub.add_parser("validate", help="check submission folders (what CI runs on pull requests)")
    sv.add_argument("folders", nargs="*")
    sv.add_argument("--all", action="store_true", help="validate every folder in the given submissions folder")
    sv.add_argument("--root", default=None, help="the submissions folder the folders must stay in (default: their parent)")
    sv.set_defaults(func=cmd_submission_validate)
    sf = smsub.add_parser("verify", help="re-evaluate a submission's checkpoint and compare every value with its row")
    sf.add_argument("folder", help="submissions/<id>")
    sf.add_argument("--sae", required=True, help="the checkpoint (its weights must hash to the row's sae_sha256)")
    sf.add_argument("--partner", action="append", default=[], help="a partner SAE of a multi-SAE task (repeatable)")
    sf.add_argument("--model", default=None, help="model id or local folder, for a checkpoint that does not name it")
    sf.add_argument("--hook", default=None, help="hook point, for a checkpoint that does not name it")
    sf.add_argument("--data-dir", default=None)
    sf.add_argument("--device", default="cpu")
    sf.set_defaults(func=cmd_submission_verify)


def _add_leaderboard(sub: Any) -> None:
    lb = sub.add_parser("leaderboard", help="build the static leaderboard and exports")
    lbsub = lb.add_subparsers(dest="leaderboard_cmd", required=True)
    lbb = lbsub.add_parser("build", help="write the static site (index.html + data.json)")
    lbb.add_argument("--submissions", default="submissions")
    lbb.add_argument("--out", default="leaderboard")
    lbb.add_argument("--dashboards", action="append", default=[],
                     help="a folder `audiosaebench dashboards` wrote: its entry links to it (repeatable)")
    lbb.set_defaults(func=cmd_leaderboard_build)
    lbe = lbsub.add_parser("export", help="the table for papers")
    lbe.add_argument("--format", choices=("md", "csv", "latex", "bibtex"), required=True)
    lbe.add_argument("--submissions", default="submissions")
    for name in ("model", "hook", "suite", "task"):
        lbe.add_argument(f"--{name}", default=None, help=f"only this {name}")
    lbe.add_argument("--output", "-o", default=None, help="write here instead of stdout")
    lbe.set_defaults(func=cmd_leaderboard_export)


COMMANDS = (_add_evaluate, _add_tasks, _add_convert, _add_data, _add_baselines, _add_train_reference, _add_submission,
            _add_leaderboard, add_dashboards, _add_grid)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiosaebench", description="Benchmark SAEs trained on audio models.")
    p.add_argument("--version", action="version", version=f"audiosaebench {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def cmd_submission_init(args: argparse.Namespace) -> int:
    from audiosaebench.leaderboard.submission import init_submission

    fields: dict[str, Any] = {k: getattr(args, k) for k in ("name", "description", "contact", "license", "training_data")
                              if getattr(args, k) is not None}
    if args.authors:
        fields["authors"] = [a.strip() for a in args.authors.split(";") if a.strip()]
    if args.checkpoint:
        fields["checkpoint"] = {"location": args.checkpoint, "revision": None, "sha256": None}
    folder = init_submission(args.sae, args.results, args.out, sub_id=args.id, kind=args.kind, overwrite=args.overwrite,
                             fields=fields)
    print(f"wrote {folder}/ ; fill in any 'FILL IN' left in {folder}/submission.yaml, then run "
          f"`audiosaebench submission validate {folder}`")
    return 0


def cmd_submission_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from audiosaebench.leaderboard.submission import load_submissions, validate_submission

    if args.all:
        subs = load_submissions(args.folders[0] if args.folders else "submissions", current_versions=True)
    else:
        if not args.folders:
            raise SystemExit("audiosaebench: error: give submission folders, or --all [DIR]")
        subs = [validate_submission(Path(f), args.root, current_versions=True) for f in args.folders]
    for s in subs:
        tasks = ", ".join(sorted(f"{d['task']['name']} {d['task']['version']} ({d['data']['suite']})" for d in s.results))
        print(f"ok {s.id}: {len(s.results)} result(s): {tasks}")
    return 0


def cmd_submission_verify(args: argparse.Namespace) -> int:
    from audiosaebench.verification import RECORD, verify_submission

    rec = verify_submission(args.folder, args.sae, partners=args.partner, data_dir=args.data_dir, device=args.device,
                            model=args.model, hook=args.hook)
    for t in rec["tasks"]:
        print(f"{'ok  ' if t['passed'] else 'FAIL'} {t['task']} {t['version']} ({t['mode']}): {t['detail']}")
    print(f"{'verified' if rec['verified'] else 'not verified'}; record written to {args.folder}/{RECORD}")
    return 0 if rec["verified"] else 1


def cmd_leaderboard_build(args: argparse.Namespace) -> int:
    from audiosaebench.leaderboard.site import build_site
    from audiosaebench.leaderboard.submission import load_submissions
    from audiosaebench.leaderboard.table import build_table

    subs = load_submissions(args.submissions)
    for s in subs:
        for w in s.warnings:
            log.warning("%s", w)
    from audiosaebench.dashboards.links import dashboard_links

    links = dashboard_links(args.dashboards, args.out) if args.dashboards else None
    page = build_site(build_table(subs), args.out, dashboards=links)
    print(f"wrote {page} ({len(subs)} entries)")
    return 0


def cmd_leaderboard_export(args: argparse.Namespace) -> int:
    from audiosaebench.leaderboard.export import export
    from audiosaebench.leaderboard.submission import load_submissions
    from audiosaebench.leaderboard.table import build_table

    text = export(build_table(load_submissions(args.submissions)), args.format, model=args.model, hook=args.hook,
                  suite=args.suite, task=args.task)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "huggingface_hub", "transformers", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except AudioSAEBenchError as e:
        print(f"audiosaebench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audiosaebench: interrupted; results already written are kept (re-run with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
