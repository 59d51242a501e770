"""``trace``: ROME causal tracing of a seeded sample of the forget facts (``TraceResult`` + figures)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from ...config import to_dict
from ...errors import WorkbenchError

NAME = "trace"
AFTER = ("organism",)


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return to_dict(cfg.trace)


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Trace the facts; returns the counts, the peak layer per kind and the MLP effect by layer."""
    from ...data import read_facts
    from ...tracing import TraceConfig, causal_trace
    from ...tracing.plots import plot_aie, plot_fact

    t = ctx.cfg.trace
    facts_file = res["organism"].summary["facts"]
    if not Path(facts_file).is_file():
        raise WorkbenchError(
            f"no trace facts at {facts_file}; set facts: to a JSONL of {{prompt, subject, answer}}"
        )
    facts = read_facts(facts_file)
    if len(facts) > t.max_facts:
        facts = random.Random(t.seed).sample(facts, t.max_facts)
    settings = TraceConfig(**{f.name: getattr(t, f.name) for f in dataclasses.fields(TraceConfig)})
    result = causal_trace(ctx.load(res["organism"].summary["model"]), facts, settings)
    if not result.facts:
        raise WorkbenchError(
            "the model knows none of the traced facts (all skipped); check facts: and model:"
        )
    result.save(folder)
    plot_aie(result, folder / "aie.png")
    for i, fact in enumerate(result.facts[:2]):
        plot_fact(fact, folder / f"fact{i}.png", window=result.window)
    return {
        "traced": len(result.facts),
        "skipped": len(result.skipped),
        "peak_layer": {k: result.peak_layer(k) for k in result.kinds},
        "mlp_effect": [float(x) for x in result.layer_effect("mlp")] if "mlp" in result.kinds else [],
    }
