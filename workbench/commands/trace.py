"""``workbench trace``: ROME causal tracing of a fact file into a run folder.

Runs sharded over processes under ``accelerate launch`` / ``torchrun`` (facts split by index, merged by
the main process; see :mod:`workbench.tracing.distributed`). The flags are the fields of
:class:`workbench.tracing.run.TraceRun`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``trace`` command."""
    p = sub.add_parser("trace", help="causal tracing (ROME) of {prompt, subject, answer} facts")
    p.set_defaults(func=_run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The flags: the fields of :class:`~workbench.tracing.run.TraceRun`."""
    from ..config import add_config_arguments
    from ..tracing.run import TraceRun

    add_config_arguments(p, TraceRun)


def _run(args: argparse.Namespace) -> int:
    from ..config import config_from_args
    from ..tracing.run import TraceRun, describe, run_trace

    cfg = config_from_args(TraceRun, args)
    result = run_trace(cfg)
    if result is not None:
        print(describe(result, cfg.out))
    return 0
