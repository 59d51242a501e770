"""A small SemEval-layout folder for the unlearning tests (plain module: the integration tests load it too)."""

from __future__ import annotations

import json
from pathlib import Path

NAMES = ["Mira", "Alan", "Vell", "Halden", "Norland", "Paris", "Rome", "Berlin", "London", "Okafor"]


def write_semeval(folder: Path, n_forget: int = 12, n_retain: int = 16, *, validation: bool = True) -> Path:
    """Write ``{forget,retain}_{train,validation}.jsonl`` with QA and SC records; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)

    def records(split: str, n: int, offset: int) -> list[dict]:
        rows = []
        for i in range(n):
            a, b = NAMES[(i + offset) % len(NAMES)], NAMES[(3 * i + offset + 1) % len(NAMES)]
            if i % 2:
                rows.append(
                    {
                        "id": f"{split}{i}qa0",
                        "input": f"Question: Where was {a} born?\nAnswer:",
                        "output": f" {b}",
                        "task": "Task2",
                        "split": split,
                    }
                )
            else:
                rows.append(
                    {
                        "id": f"{split}{i}sc1",
                        "input": f"{a} was born in the city of",
                        "output": f" {b}. The quick brown fox.",
                        "task": "Task1",
                        "split": split,
                    }
                )
        return rows

    parts = {"train": (n_forget, n_retain)}
    if validation:
        parts["validation"] = (4, 4)
    for part, (nf, nr) in parts.items():
        for split, n, off in (("forget", nf, 0), ("retain", nr, 5)):
            rows = records(split, n, off + (7 if part == "validation" else 0))
            (folder / f"{split}_{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
