"""A small stage runner for multi-stage jobs: per-stage folders, skip-when-unchanged, named failures.

Each stage writes into ``<out>/<name>/`` and, when it succeeds, a ``stage.json`` holding the hash of its
inputs (its resolved config slice and the hashes of the stages it reads), its summary and its wall time.
A re-run skips a stage whose hash is unchanged and whose folder is complete. A failing stage raises a
WorkbenchError naming the stage; what earlier stages wrote stays on disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..io import _jsonable, read_json, write_json

log = logging.getLogger(__name__)


def stable_hash(obj: Any) -> str:
    """A short content hash of a JSON-able object (key order independent)."""
    blob = json.dumps(_jsonable(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclasses.dataclass
class StageResult:
    """What one stage left behind."""

    name: str
    folder: Path
    hash: str
    summary: dict
    seconds: float
    skipped: bool


@dataclasses.dataclass
class Stage:
    """A named step: ``fn(folder, results) -> summary dict``; ``inputs`` is what its hash covers."""

    name: str
    fn: Callable[[Path, dict[str, StageResult]], dict]
    inputs: Any = None
    after: tuple[str, ...] = ()


def run_stages(
    stages: list[Stage],
    out: Path,
    *,
    force: bool = False,
    on_stage: Callable[[str, int, int], None] | None = None,
) -> dict[str, StageResult]:
    """Run ``stages`` in order under ``out``; returns every stage's result by name."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, StageResult] = {}
    for i, stage in enumerate(stages):
        if on_stage:
            on_stage(stage.name, i, len(stages))
        folder = out / stage.name
        h = stable_hash({"inputs": stage.inputs, "after": [results[a].hash for a in stage.after]})
        marker = folder / "stage.json"
        if not force and marker.is_file():
            done = read_json(marker)
            if done.get("hash") == h:
                log.info("stage %s unchanged, skipped", stage.name)
                results[stage.name] = StageResult(
                    stage.name, folder, h, done.get("summary", {}), done.get("seconds", 0.0), True
                )
                continue
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        try:
            summary = stage.fn(folder, results) or {}
        except WorkbenchError as e:
            raise WorkbenchError(
                f"stage '{stage.name}' failed: {e} (earlier stages are kept in {out})"
            ) from e
        except Exception as e:
            raise WorkbenchError(
                f"stage '{stage.name}' failed with {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                f"(earlier stages are kept in {out}; rerun with -v for details)"
            ) from e
        seconds = time.perf_counter() - t0
        write_json(marker, {"hash": h, "summary": summary, "seconds": seconds})
        results[stage.name] = StageResult(stage.name, folder, h, summary, seconds, False)
    return results
