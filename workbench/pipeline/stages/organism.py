"""``organism``: the model and data the job works on — the embedded organism (built or reused), or the
user's ``model:`` and ``data:``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

NAME = "organism"
AFTER: tuple[str, ...] = ()


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return {k: getattr(cfg, k) for k in ("model", "data", "preset", "seed", "facts", "dtype")}


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Build (or reuse) the organism, or check the user's data; returns where everything is."""
    cfg = ctx.cfg
    if cfg.model is None:
        from ...io import write_json, write_text
        from ...organism import build

        org = build(cfg.preset, seed=cfg.seed)
        write_json(folder / "card.json", org.card)
        write_text(folder / "card.txt", org.card.table() + "\n")
        return {
            "model": str(org.path),
            "data": str(org.path),
            "card": dataclasses.asdict(org.card),
            "facts": cfg.facts or str(org.path / "facts" / "forget.jsonl"),
            "corpus": str(org.path / "corpus" / "train.jsonl"),
            "source": f"organism:{cfg.preset}",
        }
    from ...data import default_facts, read_semeval

    read_semeval(cfg.data)  # fail early, naming the file, on unreadable data
    return {
        "model": cfg.model,
        "data": cfg.data,
        "facts": cfg.facts or default_facts(cfg.data),
        "corpus": cfg.data,
        "card": None,
        "source": "user",
    }
