"""``baseline``: the evaluation suites on the starting model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import to_dict

NAME = "baseline"
AFTER = ("organism",)


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return to_dict(cfg.eval)


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Evaluate the starting model; returns its metrics."""
    o = res["organism"].summary
    return ctx.evaluate(ctx.load(o["model"]), o["data"], folder)
