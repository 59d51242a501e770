"""Run folders and atomic artifact writes.

Every writer here goes through a temporary file in the destination folder followed by ``os.replace``,
so a crash leaves the last good file or none, never half of one. Arrays are stored as safetensors;
nothing is ever loaded with pickle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import WorkbenchError


@functools.cache
def _umask() -> int:
    """The process umask, read once (reading it means setting it, which is not thread-safe)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The file gets the mode a plain ``open`` would give (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _jsonable(obj.item())
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` (dataclasses, tensors and numpy values allowed) as pretty JSON, atomically."""
    return write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, with a one-line error naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"{path}: file not found; check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise WorkbenchError(
            f"{path}:{e.lineno}: malformed JSON ({e.msg}); fix or regenerate the file"
        ) from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    """Write one JSON object per line, atomically."""
    text = "".join(json.dumps(_jsonable(r), ensure_ascii=False) + "\n" for r in rows)
    return write_text(path, text)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"{path}: file not found; check the path")
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise WorkbenchError(f"{path}:{i}: malformed JSON ({e.msg}); fix that line") from None
            if not isinstance(row, dict):
                raise WorkbenchError(f"{path}:{i}: expected a JSON object per line, got {type(row).__name__}")
            rows.append(row)
    return rows


def append_jsonl(path: str | os.PathLike, row: Any) -> None:
    """Append one JSON line (for logs; a torn last line is skipped by readers that tolerate it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(_jsonable(row)) + "\n")
        f.flush()


def save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Save a dict of tensors as safetensors, atomically (tensors are made contiguous, on CPU)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)
    return Path(path)


def load_tensors(path: str | os.PathLike) -> dict:
    """Load a safetensors file into a dict of CPU tensors."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"{path}: file not found; check the path")
    return load_file(str(path))


def run_dir(path: str | os.PathLike) -> Path:
    """Create (if needed) and return a run folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """The workbench cache: ``$WORKBENCH_CACHE`` or the user cache dir."""
    env = os.environ.get("WORKBENCH_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("workbench"))
