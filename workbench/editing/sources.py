"""Text sources for the second-moment statistics and the sampled context prefixes.

A source is a ``.txt`` file (paragraphs split at blank lines, or lines when it has no blank line), a
``.jsonl``/``.parquet`` file (the ``text`` field, else ``document``, else ``input`` + ``output``), a folder
saved by ``datasets`` (``save_to_disk``; its ``text`` column), a model folder holding ``corpus/train.jsonl``
(the organism), or any other folder (every .txt/.jsonl/.parquet file inside). Without a source, the model's
own folder is tried.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..io import read_jsonl

SUFFIXES = (".txt", ".jsonl", ".parquet")


def resolve_source(source: str | os.PathLike | None, lm: Any) -> Path:
    """The path a source names; None means the model folder's ``corpus/train.jsonl``."""
    if source is None:
        folder = Path(str(lm.spec))
        corpus = folder / "corpus" / "train.jsonl"
        if corpus.is_file():
            return corpus
        raise WorkbenchError(
            f"model {lm.spec!r} has no corpus/train.jsonl to estimate key statistics from; pass "
            "stats_source= (a .txt, a .jsonl of {text}, or a datasets folder)"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise WorkbenchError(f"text source {path} does not exist; pass a .txt, .jsonl or datasets folder")
    if path.is_dir() and (path / "corpus" / "train.jsonl").is_file():
        return path / "corpus" / "train.jsonl"
    return path


def _row_text(row: dict, where: str) -> str:
    for key in ("text", "document"):
        if isinstance(row.get(key), str):
            return row[key]
    if isinstance(row.get("input"), str):
        return row["input"] + str(row.get("output") or "")
    raise WorkbenchError(f"{where}: a record has no text, document or input field; give {{text}} records")


def _file_texts(path: Path) -> list[str]:
    if path.suffix == ".txt":
        raw = path.read_text(encoding="utf-8")
        parts = [p for p in raw.split("\n\n") if p.strip()]
        if len(parts) <= 1:
            parts = raw.splitlines()
        return [p.strip() for p in parts if p.strip()]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix == ".jsonl":
        rows = read_jsonl(path)
    else:
        raise WorkbenchError(f"text source {path}: unknown file type; use .txt, .jsonl or .parquet")
    return [t for t in (_row_text(r, str(path)) for r in rows) if t.strip()]


def _is_datasets_folder(path: Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def read_texts(path: Path) -> list[str]:
    """Every text of the source at ``path`` (in a fixed order)."""
    if path.is_file():
        texts = _file_texts(path)
    elif _is_datasets_folder(path):
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else ds[sorted(ds)[0]]
        if "text" not in ds.column_names:
            raise WorkbenchError(f"datasets folder {path} has no 'text' column ({ds.column_names})")
        texts = [t for t in ds["text"] if isinstance(t, str) and t.strip()]
    else:
        files = sorted(f for f in path.rglob("*") if f.suffix in SUFFIXES and f.is_file())
        texts = [t for f in files for t in _file_texts(f)]
    if not texts:
        raise WorkbenchError(f"text source {path} holds no text; give texts to estimate key statistics from")
    return texts


def source_id(path: Path) -> str:
    """A content identity of the source: its bytes for a file, names, sizes and mtimes for a folder."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        if path.is_file():
            with f.open("rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
        else:
            st = f.stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def sample_texts(texts: list[str], n: int, seed: int) -> list[str]:
    """``n`` texts drawn without replacement with ``seed`` (all of them, shuffled, when there are fewer)."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    return [texts[i] for i in order[: min(n, len(texts))]]
