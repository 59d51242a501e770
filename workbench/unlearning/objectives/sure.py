"""``sure``: saliency-restricted unlearning that survives quantization (SURE; Zhang et al., ICLR 2025,
"Catastrophic Failure of LLM Unlearning via Quantization", arXiv:2410.16454, §5).

Small, spread-out unlearning updates fall in the quantization buckets of the original weights, so a
quantized unlearned model snaps back to the original one. SURE concentrates the update instead: it
measures each output neuron's saliency — the norm of its row of the forget-loss gradient,
``||∇_{W[j,:]} CE_forget||`` — once, on the first training batch, keeps only the most salient
``top_fraction`` of neurons (over all trainable matrices together) trainable, and is meant to run with a
larger learning rate than the base method (set ``train.lr``), so that the few updated weights move by more
than a quantization step. The loss is the base objective's (``base``, default ``constrained``).

Gradient masking uses gradient hooks on the trainable parameters (tensor hooks, not activation hooks),
removed when the objective is garbage collected. Non-salient rows get a zero gradient; with AdamW and
``train.weight_decay=0`` (the default) they do not move at all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ...errors import WorkbenchError
from ._base import OBJECTIVES, Context, LossOutput, Objective, Reference, logits_of, register, sequence_nll


@dataclasses.dataclass
class SureParams:
    """The base objective and the saliency budget."""

    base: str = "constrained"
    """The objective whose loss is minimised (any registered one but ``sure``)."""
    base_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Parameters of the base objective."""
    top_fraction: float = 0.1
    """Share of output neurons (rows of the trainable matrices) that stay trainable."""

    def __post_init__(self) -> None:
        if not 0 < self.top_fraction <= 1:
            raise WorkbenchError(f"sure: top_fraction={self.top_fraction} must be in (0, 1]")
        if self.base == "sure" or self.base not in OBJECTIVES:
            raise WorkbenchError(
                f"sure: base={self.base!r} is not a usable objective; use one of "
                f"{', '.join(sorted(n for n in OBJECTIVES if n != 'sure'))}"
            )


def row_saliency(loss: torch.Tensor, params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """Per-output-neuron saliency ``||∂loss/∂W[j,:]||`` of each matrix in ``params`` (1-D params: per entry)."""
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], retain_graph=True, allow_unused=True)
    out = {}
    for n, g in zip(names, grads):
        if g is None:
            continue
        g = g.detach().float()
        out[n] = g.reshape(g.shape[0], -1).norm(dim=1) if g.ndim > 1 else g.abs()
    return out


def top_masks(saliency: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Boolean row masks keeping the globally most salient ``fraction`` of rows (at least one)."""
    scores = torch.cat([s for s in saliency.values()])
    k = max(1, int(round(fraction * scores.numel())))
    threshold = torch.topk(scores, k).values.min()
    return {n: s >= threshold for n, s in saliency.items()}


@register("sure")
class Sure(Objective):
    """The base objective's loss, with updates restricted to the most forget-salient neurons."""

    params_cls = SureParams

    def __init__(self, params: SureParams, lm: Any, *, seed: int = 0):
        from ...config import from_dict

        super().__init__(params, lm, seed=seed)
        base_cls = OBJECTIVES[params.base]
        self.base = base_cls(from_dict(base_cls.params_cls, dict(params.base_params)), lm, seed=seed)
        self.needs_reference = base_cls.needs_reference
        self.masks: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._lm = lm

    def reference(self, ref_lm: Any, batch) -> Reference:
        """The base objective's reference outputs."""
        return self.base.reference(ref_lm, batch)

    def bind_layer(self, layer: int) -> None:
        """Forwarded to the base objective when it has a layer (RMU)."""
        if hasattr(self.base, "bind_layer"):
            self.base.bind_layer(layer)

    def _install(self) -> None:
        named = dict(self._lm.model.named_parameters())
        for name, mask in self.masks.items():
            p = named[name]
            shape = (-1,) + (1,) * (p.ndim - 1)
            m = mask.to(p.device).reshape(shape).to(p.dtype)
            self._handles.append(p.register_hook(lambda g, m=m: g * m))

    def _select(self, ctx: Context, batch) -> None:
        trainable = {n: p for n, p in self._lm.model.named_parameters() if p.requires_grad}
        nll, n_tok = sequence_nll(logits_of(ctx, batch), batch.labels)
        rows = batch.is_forget
        if not bool(rows.any()):
            return  # no forget row in this batch: select on the next one
        forget_ce = nll[rows].sum() / n_tok[rows].sum().clamp_min(1)
        self.masks = top_masks(row_saliency(forget_ce, trainable), self.params.top_fraction)
        self._install()

    def __call__(self, ctx: Context, batch, ref: Reference | None) -> LossOutput:
        if ctx.training and not self.masks:
            self._select(ctx, batch)
        out = self.base(ctx, batch, ref)
        if self.masks:
            kept = sum(int(m.sum()) for m in self.masks.values())
            out.parts["salient_rows"] = float(kept)
        return out

    def state_dict(self) -> dict:
        """The base state and the selected rows (so that a resumed run keeps the same neurons)."""
        rows = {n: m.nonzero().flatten().tolist() for n, m in self.masks.items()}
        sizes = {n: int(m.numel()) for n, m in self.masks.items()}
        return {"base": self.base.state_dict(), "rows": rows, "sizes": sizes}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.base.load_state_dict(state.get("base", {}))
        if state.get("rows"):
            for h in self._handles:
                h.remove()
            self._handles.clear()
            self.masks = {}
            for n, idx in state["rows"].items():
                m = torch.zeros(state["sizes"][n], dtype=torch.bool)
                m[idx] = True
                self.masks[n] = m
            self._install()
