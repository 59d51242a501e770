"""``workbench eval``: SemEval-2025 Task 4 metrics, membership inference, MMLU and stability probes.

The flags are the fields of :class:`workbench.evaluation.EvalRun`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``eval`` command."""
    p = sub.add_parser("eval", help="evaluate a model: SemEval-2025 Task 4, MIA, MMLU, stability proxies")
    p.set_defaults(func=_run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The flags: the fields of :class:`~workbench.evaluation.config.EvalRun`."""
    from ..config import add_config_arguments
    from ..evaluation.config import EvalRun

    add_config_arguments(p, EvalRun)


def _run(args: argparse.Namespace) -> int:
    from ..config import config_from_args
    from ..evaluation.config import EvalRun
    from ..evaluation.suite import run_eval

    cfg = config_from_args(EvalRun, args)
    report = run_eval(cfg)
    print(report.table())
    if cfg.out:
        print(f"wrote {cfg.out}/metrics.json and {cfg.out}/samples.jsonl")
    return 0
