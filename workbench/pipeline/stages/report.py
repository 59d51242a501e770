"""``report``: ``<out>/report.html`` and ``<out>/summary.json`` from every stage's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAME = "report"
AFTER = ("organism", "baseline", "trace", "select", "unlearn", "evaluate", "quantize", "sae")


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers (the report reads only the stages before it)."""
    return {"v": 1}


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Write the report at the top of the run folder; returns its path."""
    from ..report import write_report

    return write_report(ctx.cfg, res, ctx.out)
