"""The standard ReLU SAE with an L1 penalty (Anthropic, "Towards Monosemanticity" 2023 and the April
2024 "Circuits Updates" training recipe).

``a = ReLU((x - b_dec) W_enc + b_enc)``; loss = normalised MSE + ``lambda * sum_i a_i * ||W_dec,i||`` (the
April 2024 form: the penalty carries the decoder-row norm, so decoder rows are NOT constrained to unit
norm and the optimiser cannot shrink activations by growing the decoder). As in that recipe, decoder rows
start at norm 0.1, the encoder at the decoder's transpose, and ``lambda`` warms up linearly over the first
5% of training. Our penalty is divided by the RMS norm of the centred batch so that ``l1_coeff`` is
scale-free like the normalised MSE.
"""

from __future__ import annotations

import torch

from .base import Codes, SparseAutoencoder, register


@register("relu")
class ReLUSAE(SparseAutoencoder):
    """ReLU activations, sparsity from the L1 penalty."""

    arch_name = "relu"
    unit_norm_decoder = False
    sparse_grad = False  # every positive pre-activation is active: the dense backward is cheaper

    def __init__(self, cfg, *, seed: int = 0):
        super().__init__(cfg, seed=seed)
        with torch.no_grad():
            self.W_dec.mul_(0.1)
            self.W_enc.copy_(self.W_dec.T * cfg.init_encoder_norm)

    def select(self, pre: torch.Tensor) -> Codes:
        """All positive pre-activations."""
        return Codes.from_dense(pre.relu())

    def extra_losses(self, x: torch.Tensor, codes: Codes, pre: torch.Tensor, step_frac: float) -> dict:
        """The decoder-norm-weighted L1 penalty with a 5% linear warm-up."""
        warm = min(1.0, step_frac / 0.05) if step_frac < 1.0 else 1.0
        norms = self.W_dec.norm(dim=-1)
        rms = (x - x.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12).sqrt()
        l1 = (codes.val * norms[codes.idx]).sum() / codes.n / rms
        return {"l1": self.cfg.l1_coeff * warm * l1}
