"""The one learning-rate schedule: linear warm-up, an optional constant stretch, then a decay.

``lr_multiplier(step, total, ...)`` multiplies the base learning rate at 0-based ``step`` of ``total``:

- ``step < warmup``: ``(step + 1) / warmup``;
- then 1 until ``decay_start`` (default: right after the warm-up);
- then ``kind``: ``linear`` or ``cosine`` from 1 down to ``min_ratio``, reached at ``total`` (or at the
  last step, ``total - 1``, with ``end_at_last_step``), or ``constant``.

The organism's trainer (cosine to 5% that ends exactly at the last step), unlearning (linear, cosine or
constant after warm-up, as HF's schedulers) and SAE training (constant, then linear to 0 over the last
fraction of the steps, as SAELens and sparsify) are all this function with different arguments.
"""

from __future__ import annotations

import math
from typing import Any

SCHEDULES = ("linear", "cosine", "constant")


def lr_multiplier(
    step: int,
    total: int,
    *,
    warmup: int = 0,
    kind: str = "cosine",
    min_ratio: float = 0.0,
    decay_start: int | None = None,
    end_at_last_step: bool = False,
) -> float:
    """The learning-rate multiplier at 0-based ``step`` of a ``total``-step run (see the module doc)."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; use one of {SCHEDULES}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    start = warmup if decay_start is None else max(warmup, decay_start)
    if kind == "constant" or step < start:
        return 1.0
    span = (total - 1 - start) if end_at_last_step else (total - start)
    frac = min(1.0, (step - start) / max(1, span))
    shape = 1.0 - frac if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))
    return min_ratio + (1.0 - min_ratio) * shape


def lr_lambda(total: int, **kw: Any):
    """``step -> multiplier`` for ``torch.optim.lr_scheduler.LambdaLR`` (keyword arguments as above)."""
    return lambda step: lr_multiplier(step, total, **kw)
