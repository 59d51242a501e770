"""``rmu``: Representation Misdirection for Unlearning (Li et al. 2024, WMDP, arXiv:2403.03218).

    L = mean_f ||h_l(x_f) - c*u||^2 / d + alpha * mean_r ||h_l(x_r) - h_frozen,l(x_r)||^2 / d

h_l is the residual stream after block l (site ``layers.{l}``), read through the hook engine with
``capture(..., grad=True)``; u is a fixed random unit vector (uniform entries, normalised, seeded, as in
the WMDP code); the squared norms are averaged per coordinate (the WMDP/open-unlearning ``mse_loss``) and
over the output tokens. Only the MLP down projections of layers l-2, l-1, l train (WMDP: ``layer_id=7``,
``layer_ids=[5,6,7]``): set ``select.kind: mlp.down`` with those layers; ``layer`` defaults to the
highest selected layer. Defaults c = 20, alpha = 1 (open-unlearning's RMU).
"""

from __future__ import annotations

import dataclasses

import torch

from ..data import IGNORE
from ._base import Context, LossOutput, Objective, Reference, register


@dataclasses.dataclass
class RMUParams:
    """RMU hyperparameters."""

    layer: int | None = None
    """Residual site ``layers.{layer}``; None: the highest trainable layer."""
    steering_coeff: float = 20.0
    alpha: float = 1.0
    """Retain weight."""


def _masked_mse(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of the per-coordinate squared error."""
    err = ((h.float() - target.float()) ** 2).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1)


@register("rmu")
class RMU(Objective):
    """Push forget activations towards c*u, hold retain activations at the frozen model's."""

    params_cls = RMUParams
    needs_reference = True

    @classmethod
    def default_select(cls, traced_layers: list[int], kind: str) -> dict:
        """The MLP down projections of the strongest traced layer and the two below it (WMDP's
        ``layer_ids=[5, 6, 7]`` around ``layer_id=7``); ``kind`` is not used."""
        top = max(traced_layers)
        return {"layers": list(range(max(0, top - 2), top + 1)), "kind": "mlp.down"}

    @classmethod
    def default_params(cls, traced_layers: list[int]) -> dict:
        """Read the residual stream after the strongest traced layer."""
        return {"layer": max(traced_layers)}

    def __init__(self, params: RMUParams, lm, *, seed: int = 0):
        super().__init__(params, lm, seed=seed)
        self.layer = params.layer
        g = torch.Generator().manual_seed(seed + 7919)
        u = torch.rand(lm.d_model, generator=g)
        self.direction = u / u.norm()

    def bind_layer(self, layer: int) -> None:
        """Set the read layer when the params leave it open (the trainer passes the top selected layer)."""
        if self.layer is None:
            self.layer = layer

    @property
    def site(self) -> str:
        """The hook-engine site read."""
        return f"layers.{self.layer}"

    def reference(self, ref_lm, batch) -> Reference:
        with ref_lm.hooks() as h:
            cap = h.capture(self.site)
            ref_lm.model(**batch.model_inputs())
        return Reference(hidden=cap.value)

    def __call__(self, ctx: Context, batch, ref: Reference | None) -> LossOutput:
        with ctx.lm.hooks() as h:
            cap = h.capture(self.site, grad=True)
            ctx.model(**batch.model_inputs())
        hidden = cap.value
        mask = (batch.labels != IGNORE).float()  # the output tokens' positions (open-unlearning's mask)
        f, r = batch.is_forget, ~batch.is_forget
        zero = hidden.sum() * 0.0
        target = (self.params.steering_coeff * self.direction).to(hidden.device)
        forget = _masked_mse(hidden[f], target.expand_as(hidden[f]), mask[f]) if bool(f.any()) else zero
        retain = _masked_mse(hidden[r], ref.hidden[r].to(hidden.device), mask[r]) if bool(r.any()) else zero
        loss = forget + self.params.alpha * retain
        return LossOutput(loss, {"rmu_forget": float(forget.detach()), "rmu_retain": float(retain.detach())})

    def state_dict(self) -> dict:
        return {"layer": self.layer}

    def load_state_dict(self, state: dict) -> None:
        if state.get("layer") is not None:
            self.layer = int(state["layer"])
