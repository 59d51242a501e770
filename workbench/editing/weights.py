"""The edited weight: each layer's MLP down projection, in every family's layout.

Editors compute ``ΔW`` as ``[out, in]`` (``W k = v``, the ``nn.Linear`` layout of OLMo, OLMo-2/3, Llama-like
models and GPT-NeoX's ``dense_4h_to_h``); GPT-2's ``Conv1D`` stores ``[in, out]`` and gets the transpose.
OLMoE's experts have no single down projection and are refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..errors import WorkbenchError


@dataclasses.dataclass(frozen=True)
class DownProj:
    """Where layer ``layer``'s down projection lives and how its weight is laid out."""

    layer: int
    module: str
    """Module path (relative to ``lm.model``)."""
    param: str
    """Parameter name of its weight."""
    transposed: bool
    """True when the weight is stored ``[in, out]`` (GPT-2's Conv1D)."""

    @property
    def output_site(self) -> str:
        """The hook site of the projection's output (ROME's value space): ``module:<path>``."""
        return f"module:{self.module}"


def down_proj(lm: Any, layer: int) -> DownProj:
    """The down projection of ``layer``; MoE and quantized layers are one-line errors."""
    a = lm.adapter
    if a.mlp_hidden is None:
        raise WorkbenchError(
            f"the {a.name} family routes its MLP through experts (no single down projection); knowledge "
            "editing of MoE MLPs is not supported"
        )
    path = a.mlp_hidden.format(i=layer)
    module = lm.model.get_submodule(path)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or not weight.is_floating_point():
        raise WorkbenchError(
            f"{path} ({type(module).__name__}) has no float 2-D weight; editing needs an unquantized model"
        )
    if isinstance(module, torch.nn.Linear):
        transposed = False
    elif type(module).__name__ == "Conv1D":
        transposed = True
    else:
        raise WorkbenchError(
            f"{path} is a {type(module).__name__}; editing supports nn.Linear and GPT-2's Conv1D"
        )
    return DownProj(layer, path, f"{path}.weight", transposed)


def weight(lm: Any, dp: DownProj) -> torch.Tensor:
    """The live weight parameter of ``dp``."""
    return lm.model.get_parameter(dp.param)


def weight_out_in(lm: Any, dp: DownProj) -> torch.Tensor:
    """The weight as ``[out, in]`` (a view; no copy)."""
    w = weight(lm, dp)
    return w.T if dp.transposed else w


def add_delta(lm: Any, dp: DownProj, delta: torch.Tensor) -> None:
    """``W += ΔW`` in place, with ``delta`` given as ``[out, in]`` (cast to the weight's dtype)."""
    w = weight(lm, dp)
    d = delta.T if dp.transposed else delta
    if d.shape != w.shape:
        raise WorkbenchError(f"update of shape {tuple(d.shape)} does not fit {dp.param} {tuple(w.shape)}")
    with torch.no_grad():
        w.add_(d.to(device=w.device, dtype=w.dtype))


def post_norm_module(lm: Any, layer: int) -> Any | None:
    """The norm between the down projection and the residual on post-norm families (OLMo-2/3), else None."""
    if not lm.adapter.post_norm:
        return None
    return lm.model.get_submodule(lm.adapter.mlp.format(i=layer))


def residual_to_output(norm: Any, x: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """The down-projection output change that moves the post-norm MLP output by ``change``.

    On post-norm families the residual receives ``g ⊙ x / rms(x)``, so only directions on that ellipsoid
    are reachable: the wanted output ``y = g ⊙ x/rms(x) + change`` is divided by ``g`` and rescaled to
    rms 1, and the new ``x'`` keeps the old ``rms(x)``. Exact whenever ``y`` is reachable; MEMIT's loop
    measures the residual again after each layer, so what is left over moves on to the next layer.
    ``x`` and ``change`` are ``[n, d]``; returns ``x' - x``.
    """
    g = norm.weight.detach().double()
    g = torch.where(g.abs() < 1e-6, torch.full_like(g, 1e-6) * torch.sign(g + 1e-12), g)
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    x = x.double()
    rms = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    want = (g * x / rms + change.double()) / g
    new = want / want.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12) * rms
    return new - x
