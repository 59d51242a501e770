"""``workbench unlearn --config unlearn.yaml [key=value ...] [--resume]``: run an unlearning job."""

from __future__ import annotations

import argparse
from pathlib import Path


def _method_names() -> list[str]:
    """The objective registry's names, read from its one-file-per-method folder without importing torch."""
    folder = Path(__file__).resolve().parents[1] / "unlearning" / "objectives"
    return sorted(f.stem for f in folder.glob("*.py") if not f.stem.startswith("_"))


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``unlearn`` command."""
    p = sub.add_parser(
        "unlearn",
        help="unlearn a forget set (layer-constrained or a baseline); see configs/unlearn/",
        description=f"Methods: {', '.join(_method_names())}. "
        "Multi-process: accelerate launch --multi_gpu --num_processes N -m workbench unlearn --config X.yaml",
    )
    p.add_argument("--config", required=True, help="YAML config (configs/unlearn/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=50 method=npo")
    p.add_argument("--out", default=None, help="run folder (overrides out:)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in the run folder"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..unlearning import UnlearnConfig, unlearn

    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    cfg = load_config(UnlearnConfig, args.config, overrides)
    result = unlearn(cfg, resume=args.resume)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(result.summary())
    return 0
