"""``unlearn``: every method on the same budget (``unlearn/<method>/``); the objective decides which
parameters it trains from the traced layers, and whether it keeps its best checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...config import from_dict, to_dict
from ..config import EDIT_METHOD

log = logging.getLogger(__name__)

NAME = "unlearn"
AFTER = ("organism", "select")


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return to_dict(cfg.unlearn)


def method_config(cfg: Any, method: str, layers: list[int], model: str, data: str, out: Path) -> Any:
    """The :class:`~workbench.unlearning.UnlearnConfig` of one method: the shared budget, the objective's
    choices for the traced ``layers`` (:meth:`~workbench.unlearning.objectives.Objective.default_select`,
    ``default_params``, ``keep_best``) and the user's ``unlearn.params`` on top of its published defaults."""
    from ...unlearning import UnlearnConfig
    from ...unlearning.objectives import OBJECTIVES

    objective, u = OBJECTIVES[method], cfg.unlearn
    params = dict(u.params.get(method, {}))
    for key, value in objective.default_params(layers).items():
        params.setdefault(key, value)
    select = {
        **objective.default_select(layers, cfg.select.kind),
        "lora_rank": cfg.select.lora_rank,
        "lora_alpha": cfg.select.lora_alpha,
    }
    train = {**to_dict(u.train), "keep_best": u.train.keep_best and objective.keep_best}
    return from_dict(
        UnlearnConfig,
        {
            "model": model,
            "out": str(out),
            "method": method,
            "params": params,
            "data": {**to_dict(u.data), **u.method_data.get(method, {}), "path": data},
            "dtype": cfg.dtype or "float32",
            "select": select,
            "train": train,
        },
    )


def _edit(cfg: Any, trace: Path, o: dict, out: Path) -> dict:
    """Editing as unlearning: every given forget question written to a decoy (workbench.editing.forget),
    at the layers where the trace finds the answer read (unless unlearn.params.edit.layers is set)."""
    from ...editing.forget import ForgetEdit, run_forget_edit

    params = from_dict(ForgetEdit, cfg.unlearn.params.get(EDIT_METHOD, {}), where="unlearn.params.edit")
    return run_forget_edit(o["model"], o["data"], out, params, trace, dtype=cfg.dtype)


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Unlearn with each method; returns where each model is and what it trained."""
    from ...unlearning import unlearn

    o, layers = res["organism"].summary, res["select"].summary["layers"]
    runs = {}
    for method in ctx.cfg.unlearn.methods:
        log.info("unlearning with %s", method)
        if method == EDIT_METHOD:
            runs[method] = _edit(ctx.cfg, res["trace"].folder, o, folder / method)
            continue
        r = unlearn(method_config(ctx.cfg, method, layers, o["model"], o["data"], folder / method))
        runs[method] = {
            "model": str(r.model_dir),
            "layers": r.layers,
            "trainable": r.trainable,
            "total": r.total,
            "share": r.share,
            "wall_s": r.wall_time_s,
            "steps": r.steps,
            "stopped": r.stopped,
            "best_step": r.best_step,
            "curves": str(folder / method / "curves.png"),
        }
    return {"runs": runs}
