"""``select``: the layers the trace picks for the methods that train where the facts live."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ...config import to_dict

NAME = "select"
AFTER = ("trace",)


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return to_dict(cfg.select)


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Pick the layers by the unlearning selection rule; returns them, the reason and the MLP effect."""
    from ...io import write_json
    from ...tracing import TraceResult
    from ...unlearning.select import resolve_layers

    s = ctx.cfg.select
    trace = TraceResult.load(res["trace"].folder)
    if s.layers is not None:
        reason = "given explicitly in the config"
    elif s.peak_width:
        s = dataclasses.replace(s, trace=str(res["trace"].folder))
        reason = f"the block of {s.peak_width} layers around the peak MLP AIE at the last subject token"
    else:
        s = dataclasses.replace(s, trace=str(res["trace"].folder))
        reason = f"the {s.top_n} layers with the highest MLP AIE at the last subject token"
    layers = resolve_layers(SimpleNamespace(n_layers=trace.n_layers), s)
    effect = [float(x) for x in trace.layer_effect("mlp")]
    write_json(folder / "selection.json", {"layers": layers, "reason": reason, "mlp_effect": effect})
    return {"layers": layers, "reason": reason, "kind": s.kind, "mlp_effect": effect}
