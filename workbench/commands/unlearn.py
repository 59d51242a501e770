"""``workbench unlearn [--config unlearn.yaml] [--flags] [key=value ...] [--resume]``: an unlearning job.

The flags are the fields of :class:`workbench.unlearning.UnlearnConfig` (nested sections as
``--train.lr 1e-3``); a YAML ``--config`` and ``key=value`` overrides set the same fields.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _method_names() -> list[str]:
    """The objective registry's names, read from its one-file-per-method folder without importing torch."""
    folder = Path(__file__).resolve().parents[1] / "unlearning" / "objectives"
    return sorted(f.stem for f in folder.glob("*.py") if not f.stem.startswith("_"))


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``unlearn`` command."""
    p = sub.add_parser(
        "unlearn",
        help="unlearn a forget set (layer-constrained or a baseline); see configs/unlearn/",
        description=f"Methods: {', '.join(_method_names())}. "
        "Multi-process: accelerate launch --multi_gpu --num_processes N -m workbench unlearn --config X.yaml",
    )
    p.add_argument("--config", default=None, help="YAML config (configs/unlearn/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=50 method=npo")
    p.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in the run folder"
    )
    p.set_defaults(func=_run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The flags: the fields of :class:`~workbench.unlearning.UnlearnConfig`."""
    from ..config import add_config_arguments
    from ..unlearning.config import UnlearnConfig

    add_config_arguments(p, UnlearnConfig)


def _run(args: argparse.Namespace) -> int:
    import os

    from ..config import apply_overrides, config_from_args, read_yaml
    from ..errors import WorkbenchError
    from ..unlearning import UnlearnConfig, unlearn

    base = apply_overrides(read_yaml(args.config) if args.config else {}, list(args.overrides))
    try:
        cfg = config_from_args(UnlearnConfig, args, base=base)
    except WorkbenchError as e:
        raise WorkbenchError(f"{args.config}: {e}" if args.config else str(e)) from None
    result = unlearn(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(result.summary())
    return 0
