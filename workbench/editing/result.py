"""The result of an edit: the weight deltas, a bit-exact revert, and the edited model saved to a folder."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import WorkbenchError
from ..io import run_dir, save_tensors, write_json
from .config import EditConfig
from .requests import EditRequest
from .weights import DownProj


@dataclasses.dataclass
class EditResult:
    """What :func:`workbench.editing.edit` did to the model (which it edited in place)."""

    method: str
    layers: list[int]
    requests: list[EditRequest]
    config: EditConfig
    deltas: dict[int, torch.Tensor]
    """Per layer, ``W_after - W_before`` of the down projection as ``[out, in]`` (float32, CPU)."""
    weights: dict[int, str]
    """Per layer, the parameter name of the edited weight."""
    target_prob: list[float]
    """Per request, the probability of the new target that the δ optimisation reached."""
    seconds: dict[str, float]
    """Wall time: ``stats`` (statistics, cached or not), ``edit`` (everything else), ``total``."""
    stats_source: str | None = None
    state: Any = None
    """Method state for a later call (AlphaEdit: pass ``state=result.state`` to edit sequentially)."""
    info: dict = dataclasses.field(default_factory=dict)
    keys: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict, repr=False)
    """Per layer, the keys written ``[R, d_in]`` (see :class:`workbench.editing.EditOutcome`)."""
    values: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict, repr=False)
    """Per layer, the down-projection outputs aimed at ``[R, d_out]``."""
    lm: Any = dataclasses.field(default=None, repr=False)
    _originals: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict, repr=False)
    _reverted: bool = dataclasses.field(default=False, repr=False)

    def revert(self) -> None:
        """Restore the edited weights bit for bit (revert later edits first when several were made)."""
        if self._reverted:
            raise WorkbenchError("this edit was already reverted")
        params = dict(self.lm.model.named_parameters())
        with torch.no_grad():
            for layer, original in self._originals.items():
                params[self.weights[layer]].copy_(original)
        self._reverted = True

    def delta_norms(self) -> dict[int, float]:
        """Frobenius norm of each layer's delta."""
        return {layer: float(d.norm()) for layer, d in self.deltas.items()}

    def summary(self) -> dict:
        """A JSON-able description (method, layers, config, timings, target probabilities, delta norms)."""
        return {
            "method": self.method,
            "layers": self.layers,
            "requests": len(self.requests),
            "config": dataclasses.asdict(self.config),
            "stats_source": self.stats_source,
            "seconds": self.seconds,
            "target_prob": self.target_prob,
            "delta_norms": self.delta_norms(),
            "info": self.info,
        }

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the edited model (``save_pretrained``, safetensors), its tokenizer, ``edit.json`` (requests,
        config, layers) and ``deltas.safetensors``."""
        if self._reverted:
            raise WorkbenchError("this edit was reverted; there is no edited model to save")
        folder = run_dir(folder)
        self.lm.model.save_pretrained(folder, safe_serialization=True)
        if self.lm.tokenizer is not None:
            self.lm.tokenizer.save_pretrained(folder)
        save_tensors(folder / "deltas.safetensors", {f"layer{k}": v for k, v in self.deltas.items()})
        write_json(
            folder / "edit.json",
            {
                "format": "workbench.edit/1",
                "model": str(self.lm.spec),
                **self.summary(),
                "weights": self.weights,
                "requests": [r.to_dict() for r in self.requests],
            },
        )
        return folder


def snapshot(lm: Any, dps: list[DownProj]) -> dict[int, torch.Tensor]:
    """Copies of the down-projection weights of ``dps`` (kept for revert)."""
    params = dict(lm.model.named_parameters())
    return {dp.layer: params[dp.param].detach().clone() for dp in dps}


def deltas_since(lm: Any, dps: list[DownProj], before: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """``W_now - W_before`` per layer as ``[out, in]`` float32 on CPU."""
    params = dict(lm.model.named_parameters())
    out = {}
    for dp in dps:
        d = (params[dp.param].detach().cpu() - before[dp.layer].cpu()).float()
        out[dp.layer] = d.T.contiguous() if dp.transposed else d
    return out
