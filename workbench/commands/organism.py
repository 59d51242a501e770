"""``workbench organism build|info``: the embedded default model organism."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``organism`` command."""
    p = sub.add_parser("organism", help="build or inspect the embedded model organism")
    osub = p.add_subparsers(dest="organism_command", metavar="ACTION", required=True)
    b = osub.add_parser("build", help="build (or reuse the cached) organism and print its scorecard")
    b.set_defaults(func=_build)
    p.set_defaults(_build_parser=b)
    i = osub.add_parser("info", help="print an organism folder's config and scorecard")
    i.add_argument("path")
    i.set_defaults(func=_info)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The ``build`` flags: the fields of :class:`~workbench.organism.build.BuildRun`."""
    from ..config import add_config_arguments
    from ..organism.build import BuildRun

    add_config_arguments(p.get_default("_build_parser"), BuildRun)


def _build(args: argparse.Namespace) -> int:
    from ..config import config_from_args
    from ..organism.build import BuildRun, build

    cfg = config_from_args(BuildRun, args)
    org = build(cfg.preset, seed=cfg.seed, out=cfg.out, force=cfg.force)
    print(org.path)
    print(org.card.table())
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..organism import info

    org = info(args.path)
    print(org.path)
    print(org.card.table())
    return 0
