"""Calibration and held-out text: any text source, the organism corpus by default.

A source is a list of strings, a ``.txt`` file (paragraphs split on blank lines), a ``.jsonl`` file
(field ``text``, ``document``, or ``input`` + ``output``), or a folder of those; a model / organism folder
means its ``corpus/`` subfolder. Texts are joined with the eos token and cut into fixed-length chunks,
which are shuffled with a seed; the calibration set and the held-out set are disjoint chunk ranges.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import torch

from ..errors import WorkbenchError
from ..io import read_jsonl

TextSource = str | os.PathLike | list[str] | tuple[str, ...]


def _texts_of_file(path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        out = []
        for row in read_jsonl(path):
            text = row.get("text") or row.get("document")
            if text is None and "input" in row:
                text = f"{row['input']} {row.get('output', '')}".strip()
            if text:
                out.append(str(text))
        return out
    if path.suffix in (".txt", ".md", ""):
        return [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    raise WorkbenchError(f"calibration file {path} is neither .txt nor .jsonl; convert it or pass a folder")


def read_texts(source: TextSource) -> list[str]:
    """The texts of ``source`` (see the module docstring); an empty source is an error."""
    if isinstance(source, (list, tuple)):
        texts = [str(t) for t in source if str(t).strip()]
    else:
        path = Path(source).expanduser()
        if path.is_dir() and (path / "corpus").is_dir():
            path = path / "corpus"
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".txt") and p.is_file())
            texts = [t for f in files for t in _texts_of_file(f)]
        elif path.is_file():
            texts = _texts_of_file(path)
        else:
            raise WorkbenchError(
                f"calibration source {str(source)!r} does not exist; pass a text file or folder"
            )
    if not texts:
        raise WorkbenchError(f"calibration source {source!r} holds no text; pass .txt/.jsonl files with text")
    return texts


def default_source(lm: Any) -> Path:
    """The organism corpus next to the model (``<model folder>/corpus``), or an error asking for one."""
    spec = Path(str(getattr(lm, "spec", ""))).expanduser()
    if (spec / "corpus").is_dir():
        return spec / "corpus"
    raise WorkbenchError(
        f"no calibration text: model {lm.spec!r} has no corpus/ folder; pass calib=PATH (a .txt/.jsonl file or folder)"
    )


@dataclasses.dataclass
class Chunks:
    """Token chunks ``[n, seq_len]`` for calibration and for held-out evaluation (disjoint)."""

    calib: torch.Tensor
    heldout: torch.Tensor


def token_chunks(
    tokenizer: Any, texts: list[str], *, seq_len: int, n_calib: int, n_heldout: int = 0, seed: int = 0
) -> Chunks:
    """Join ``texts`` (eos between), cut into ``seq_len`` chunks, shuffle with ``seed``, split in two."""
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id
    stream: list[int] = []
    for t in texts:
        stream += tokenizer(t, add_special_tokens=False)["input_ids"]
        if eos is not None:
            stream.append(eos)
    body = seq_len - (1 if bos is not None else 0)
    n_avail = len(stream) // body
    if n_avail == 0:
        raise WorkbenchError(
            f"the text source has {len(stream)} tokens; need at least {body} (lower seq_len)"
        )
    order = list(range(n_avail))
    random.Random(seed).shuffle(order)
    rows = []
    for i in order[: n_calib + n_heldout]:
        ids = stream[i * body : (i + 1) * body]
        rows.append(([bos] if bos is not None else []) + ids)
    ids = torch.tensor(rows, dtype=torch.long)
    n_cal = min(n_calib, max(1, len(rows) - n_heldout)) if n_heldout else len(rows)
    return Chunks(calib=ids[:n_cal], heldout=ids[n_cal:])


def max_seq_len(lm: Any, wanted: int) -> int:
    """``wanted`` capped by the model's context length."""
    cap = getattr(lm.model.config, "max_position_embeddings", None) or getattr(
        lm.model.config, "n_positions", None
    )
    return min(wanted, cap) if cap else wanted
