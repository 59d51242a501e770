"""``workbench pipeline``: the main job, end to end, with an HTML report.

Settings come, in this order, from ``--config`` (YAML, see ``configs/pipeline/``), ``--quick``, ``--set
key=value`` and the flags generated from :class:`workbench.pipeline.PipelineConfig` (nested sections as
``--unlearn.train.max-steps 50``).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
        help="override a config key, e.g. --set unlearn.train.max_steps=50 (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="rerun every stage even when unchanged")
    p.set_defaults(func=_run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The flags: the fields of :class:`~workbench.pipeline.PipelineConfig`."""
    from ..config import add_config_arguments
    from ..pipeline.config import PipelineConfig

    add_config_arguments(
        p, PipelineConfig, skip=("select.trace", "unlearn.data.path")
    )  # filled in by the stages


def _run(args: argparse.Namespace) -> int:
    import logging

    from ..config import config_from_args
    from ..errors import WorkbenchError
    from ..pipeline import run_pipeline, summary
    from ..pipeline.config import PipelineConfig, config_mapping

    try:
        base = config_mapping(args.config, args.overrides, args.quick)
        cfg = config_from_args(PipelineConfig, args, base=base)
    except WorkbenchError as e:
        raise WorkbenchError(f"{args.config}: {e}" if args.config else str(e)) from None
    logging.getLogger("workbench.pipeline").setLevel(logging.INFO)
    results = run_pipeline(cfg, args.out, force=args.force)
    _print_table(summary(args.out))
    for name, r in results.items():
        print(f"  {name:<10} {'skipped (unchanged)' if r.skipped else f'{r.seconds:7.1f} s'}")
    print(f"report: {args.out}/report.html")
    return 0


def _print_table(summary: dict) -> None:
    cols = ["method", "forget QA", "retain QA", "utility", "MIA score", "task agg.", "final"]
    print(f"{'':<14}" + "".join(f"{c:>11}" for c in cols[1:]))
    for row in summary["methods"]:
        cells = "".join(
            f"{row[c]:>11.3f}" if isinstance(row.get(c), float) else f"{'-':>11}" for c in cols[1:]
        )
        print(f"{row['method']:<14}{cells}")
