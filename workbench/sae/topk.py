"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders", sec. 2.3).

Each token keeps exactly its ``k`` largest pre-activations (then ReLU), in training and at inference.
Used with the AuxK auxiliary loss (sae/aux.py) against dead latents. The decode is sparse: ``[n, k]``
indices into the decoder through ``embedding_bag``.
"""

from __future__ import annotations

import torch

from .base import Codes, SparseAutoencoder, register


@register("topk")
class TopKSAE(SparseAutoencoder):
    """Exactly ``k`` active latents per token."""

    arch_name = "topk"

    def select(self, pre: torch.Tensor) -> Codes:
        """Per-token top-k of the pre-activations, ReLU on the kept values."""
        k = int(self.cfg.k)
        val, idx = pre.topk(k, dim=-1, sorted=False)
        return Codes(idx, val.relu(), pre.shape[0], self.cfg.d_sae)
