"""The pipeline's stages, one file each, in running order.

A stage module defines ``NAME``, ``AFTER`` (the stages whose results it reads; their hashes are part of
its own), ``inputs(cfg)`` (the config slice its hash covers) and ``run(ctx, folder, results) -> summary``.
Adding a stage is one file here plus its place in :data:`MODULES`.
"""

from __future__ import annotations

import functools
from typing import Any

from ..runner import Stage
from . import baseline, evaluate, organism, quantize, report, sae, select, trace, unlearn

MODULES = (organism, baseline, trace, select, unlearn, evaluate, quantize, sae, report)
"""The stage modules in running order."""
STAGES = tuple(m.NAME for m in MODULES)
"""The stage names in running order (each writes ``<out>/<name>/``)."""


def build_stages(ctx: Any) -> list[Stage]:
    """The runner's stages for one pipeline run."""
    return [Stage(m.NAME, functools.partial(m.run, ctx), m.inputs(ctx.cfg), m.AFTER) for m in MODULES]
