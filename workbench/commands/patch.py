"""``workbench patch``: token-replacement activation patching (exact or AtP) of one prompt pair.

The flags are the fields of :class:`workbench.tracing.run.PatchRun`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``patch`` command."""
    p = sub.add_parser("patch", help="activation patching between a clean and a corrupted prompt")
    p.set_defaults(func=_run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """The flags: the fields of :class:`~workbench.tracing.run.PatchRun`."""
    from ..config import add_config_arguments
    from ..tracing.run import PatchRun

    add_config_arguments(p, PatchRun)


def _run(args: argparse.Namespace) -> int:
    from ..config import config_from_args
    from ..tracing.run import PatchRun, patch_peaks, run_patch

    cfg = config_from_args(PatchRun, args)
    result = run_patch(cfg)
    print(
        f"{result.method} patching ({result.direction}, {result.metric}): clean {result.clean:.4f}, "
        f"corrupted {result.corrupted:.4f} -> {cfg.out}"
    )
    for site, pk in patch_peaks(result).items():
        where = f"layer {pk['index'][0]} pos {pk['index'][1]} ({pk['token']!r})"
        if site == "heads":
            where += f" head {pk['index'][2]}"
        print(f"  peak {site}: {where}, change {pk['effect']:+.4f}")
    return 0
