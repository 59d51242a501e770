"""``workbench organism build|info``: the embedded default model organism."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``organism`` command."""
    p = sub.add_parser("organism", help="build or inspect the embedded model organism")
    osub = p.add_subparsers(dest="organism_command", metavar="ACTION", required=True)
    b = osub.add_parser("build", help="build (or reuse the cached) organism and print its scorecard")
    b.add_argument(
        "--preset", default="default", help="a preset of workbench.organism.PRESETS (default: default)"
    )
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default=None, help="also place the finished folder here")
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    b.set_defaults(func=_build)
    i = osub.add_parser("info", help="print an organism folder's config and scorecard")
    i.add_argument("path")
    i.set_defaults(func=_info)
    return p


def _build(args: argparse.Namespace) -> int:
    from ..organism import build

    org = build(args.preset, seed=args.seed, out=args.out, force=args.force)
    print(org.path)
    print(org.card.table())
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..organism import info

    org = info(args.path)
    print(org.path)
    print(org.card.table())
    return 0
