"""Causal mediation: ROME causal tracing, token-replacement activation patching, attribution patching.

- :func:`causal_trace` — Gaussian noise on the subject, restore hidden / mlp / attn per (token, layer),
  batched; returns a :class:`TraceResult` (AIE by bucket and layer, ``top_layers``, ``peak_block``).
- :func:`patch` — exact activation patching between a clean and a corrupted prompt, per (layer,
  position) for the residual stream / attn / mlp and per head; returns a :class:`PatchResult`.
- :func:`attribution_patch` — the AtP gradient estimate of the same grid (two forwards, one backward).
"""

from __future__ import annotations

from .attribution import attribution_patch
from .causal_trace import causal_trace
from .config import KINDS, SITE_KINDS, PatchConfig, TraceConfig
from .patching import patch
from .result import AIE, BUCKETS, FactTrace, PatchResult, TraceResult

__all__ = [
    "AIE",
    "BUCKETS",
    "KINDS",
    "SITE_KINDS",
    "FactTrace",
    "PatchConfig",
    "PatchResult",
    "TraceConfig",
    "TraceResult",
    "attribution_patch",
    "causal_trace",
    "patch",
]
