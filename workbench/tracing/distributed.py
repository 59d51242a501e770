"""Sharding a causal trace over processes (``accelerate launch`` or ``torchrun``) and merging the shards.

Every process computes σ on the whole fact set and draws each fact's noise from ``(seed, fact index)``,
so a fact gets the same numbers whichever process traces it; process r traces the facts with
``index % world == r``, writes its shard as a trace folder under ``<out>/.shards/rank{r}``, and after a
barrier the main process merges the shards in fact order. The merged result therefore equals the
single-process result.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .result import TraceResult

log = logging.getLogger(__name__)


def world_size() -> int:
    """Number of processes launched together (``WORLD_SIZE`` from torchrun / accelerate; else 1)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_state(cpu: bool) -> Any | None:
    """The accelerate ``PartialState`` when launched with several processes, else None."""
    if world_size() <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=cpu)


def run_sharded(
    trace: Callable[[tuple[int, int]], TraceResult], out: str | os.PathLike, state: Any | None
) -> TraceResult | None:
    """Run ``trace(shard)`` on this process's shard; the main process returns the merged result.

    Other processes return None. Without ``state`` (one process) this is just ``trace((0, 1))``.
    """
    if state is None or state.num_processes == 1:
        return trace((0, 1))
    rank, world = state.process_index, state.num_processes
    shards = Path(out) / ".shards"
    part = trace((rank, world))
    part.save(shards / f"rank{rank}")
    log.info("rank %d traced %d facts", rank, len(part.facts))
    state.wait_for_everyone()
    merged = None
    if state.is_main_process:
        merged = TraceResult.merge([TraceResult.load(shards / f"rank{r}") for r in range(world)])
        shutil.rmtree(shards, ignore_errors=True)
    state.wait_for_everyone()
    return merged
