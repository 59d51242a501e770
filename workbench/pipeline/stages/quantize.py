"""``quantize``: the relapse check — quantize every unlearned model, re-run the SemEval metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import to_dict

NAME = "quantize"
AFTER = ("evaluate",)


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return to_dict(cfg.quantize)


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """One row per (unlearning method, quantization method); returns them."""
    from ...io import write_json
    from ...quantization import quantize
    from ...quantization.relapse import KEYS, SemEvalSnapshot, relapse

    data = res["organism"].summary["data"]
    rows = []
    for method, run_info in res["unlearn"].summary["runs"].items():
        se = res["evaluate"].summary[method]["semeval"]
        before = SemEvalSnapshot(
            **{k: se.get(v) for k, v in KEYS.items()}, task_aggregate=se["task_aggregate"]
        )
        fp = ctx.load(run_info["model"])
        for qm in ctx.cfg.quantize.methods:
            q = quantize(fp, qm)
            r = relapse(fp, q, data, before=before, config=ctx.cfg.eval)
            rows.append({"unlearning": method, "quantization": qm, **r.metrics()})
            del q
    write_json(folder / "relapse.json", rows)
    return {"rows": rows}
