"""``audiosaebench dashboards``: the command line over :func:`audiosaebench.dashboards.build.build_dashboards`
(imported only when the command runs, so ``audiosaebench --help`` stays fast)."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_dashboards(args: argparse.Namespace) -> int:
    from audiosaebench.dashboards.build import Options, build_dashboards

    opts = Options(top=args.top, quantile_groups=args.quantile_groups, per_quantile=args.per_quantile, seed=args.seed,
                   label_splits=tuple(s.strip() for s in args.label_splits.split(",") if s.strip()))
    got = build_dashboards(args.sae, args.out, suite=args.suite, data_dir=args.data_dir, features=args.features,
                           model=args.model, hook=args.hook, device=args.device, dtype=args.dtype,
                           batch_size=args.batch_size, limit=args.limit, overwrite=args.overwrite,
                           autointerp=args.autointerp, options=opts, progress=not args.no_progress)
    t = got["timings"]
    print(f"wrote dashboards of {got['features']} features ({got['examples']} examples, {got['excerpts']} audio excerpts, "
          f"{got['batches']} Neuronpedia batches) to {got['out']}/")
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))
    print(f"open {got['out']}/index.html; feature pages read JSON: serve the folder "
          f"(python -m http.server -d {got['out']}) to open them")
    return 0


def add_parser(sub: Any) -> None:
    from audiosaebench.cli import add_run_options

    d = sub.add_parser("dashboards", help="per-feature dashboards (audio examples, labels, statistics) and a "
                                          "Neuronpedia-shaped export")
    d.add_argument("--sae", required=True, help="checkpoint folder")
    d.add_argument("--features", default="all", help="all, N (the first N features) or a list i,j,... (one: i,)")
    d.add_argument("--top", type=int, default=20, help="top-activating examples per feature")
    d.add_argument("--quantile-groups", type=int, default=5, help="equal-width activation intervals sampled below the top")
    d.add_argument("--per-quantile", type=int, default=5, help="examples sampled per interval (0: none)")
    d.add_argument("--label-splits", default="speech,nonspeech,commands",
                   help="split kinds whose train and test splits score the labels a feature predicts")
    d.add_argument("--autointerp", default=None, help="an autointerp result JSON of this SAE: its explanations")
    d.add_argument("--seed", type=int, default=0, help="seeds the interval samples")
    d.add_argument("--out", required=True, help="output folder (absent or empty, or use --overwrite)")
    d.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    add_run_options(d)
    d.set_defaults(func=cmd_dashboards)
