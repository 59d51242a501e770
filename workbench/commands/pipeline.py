"""``workbench pipeline``: the main job, end to end, with an HTML report."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pipeline`` command."""
    p = sub.add_parser("pipeline", help="trace → unlearn → evaluate → quantize → SAE → report, end to end")
    p.add_argument(
        "--config", default=None, help="pipeline YAML (see configs/pipeline/); default: the organism"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes end to end (a few minutes on 2 cores)")
    p.add_argument("--out", default="runs/pipeline", help="run folder (default: runs/pipeline)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set unlearn.steps=50 (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="rerun every stage even when unchanged")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging

    from ..pipeline import run_pipeline

    logging.getLogger("workbench.pipeline").setLevel(logging.INFO)
    results = run_pipeline(
        args.config, args.out, quick=args.quick, overrides=args.overrides, force=args.force
    )
    from ..io import read_json

    summary = read_json(f"{args.out}/summary.json")
    cols = ["method", "forget QA", "retain QA", "utility", "MIA score", "task agg.", "final"]
    print(f"{'':<14}" + "".join(f"{c:>11}" for c in cols[1:]))
    for row in summary["methods"]:
        cells = "".join(
            f"{row[c]:>11.3f}" if isinstance(row.get(c), float) else f"{'-':>11}" for c in cols[1:]
        )
        print(f"{row['method']:<14}{cells}")
    for name, r in results.items():
        print(f"  {name:<10} {'skipped (unchanged)' if r.skipped else f'{r.seconds:7.1f} s'}")
    print(f"report: {args.out}/report.html")
    return 0
