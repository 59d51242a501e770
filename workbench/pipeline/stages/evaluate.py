"""``evaluate``: the evaluation suites on every unlearned model (``evaluate/<method>/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import to_dict

NAME = "evaluate"
AFTER = ("unlearn",)


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return to_dict(cfg.eval)


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Evaluate each unlearned model; returns the metrics by method."""
    data = res["organism"].summary["data"]
    return {
        m: ctx.evaluate(ctx.load(r["model"]), data, folder / m)
        for m, r in res["unlearn"].summary["runs"].items()
    }
