"""BatchTopK / Mutual Choice SAE.

Training: one global top ``k * n`` over the whole ``[n tokens, d_sae]`` matrix of ReLU pre-activations of
a batch, so tokens receive a variable number of latents and the batch exactly ``k * n`` in total. This is
BatchTopK (Bussmann et al. 2024) and the "Mutual Choice" allocation of Ayonrinde 2024 ("Adaptive Sparse
Allocation with Mutual Choice & Feature Choice Sparse Autoencoders"); both names register this class.

Inference (eval mode): a single learned global threshold ``theta``, kept during training as an
exponential moving average of the smallest value selected in each batch (as SAELens's BatchTopK does),
so a single token encodes without a batch: ``a = pre * 1[pre > theta]`` (a JumpReLU with a constant
threshold; exported to SAELens as ``jumprelu``).
"""

from __future__ import annotations

import torch

from .base import Codes, SparseAutoencoder, register


@register("batchtopk", "mutual_choice")
class BatchTopKSAE(SparseAutoencoder):
    """Exactly ``k * n`` active (token, latent) pairs per batch of ``n`` tokens."""

    arch_name = "batchtopk"

    def __init__(self, cfg, *, seed: int = 0):
        super().__init__(cfg, seed=seed)
        self.register_buffer("threshold", torch.zeros(()))

    def select(self, pre: torch.Tensor) -> Codes:
        """Global top-(k*n) in training; the learned threshold at inference."""
        n, f = pre.shape
        if not self.training:
            return Codes.from_dense(pre * (pre > self.threshold))
        budget = min(int(round(self.cfg.k * n)), n * f)
        flat = pre.relu().reshape(-1)
        _, pick = flat.topk(budget, sorted=False)
        pick, _ = pick.sort()  # row-major order: entries grouped by token
        rows = torch.div(pick, f, rounding_mode="floor")
        counts = torch.bincount(rows, minlength=n)
        offsets = torch.cumsum(counts, 0) - counts
        return Codes(pick % f, flat[pick], n, f, offsets)

    @torch.no_grad()
    def after_step(self, codes: Codes, pre: torch.Tensor) -> None:
        """EMA of the smallest positive selected activation -> inference threshold."""
        pos = codes.val[codes.val > 0]
        if pos.numel():
            lr = self.cfg.threshold_lr
            first = bool(self.threshold == 0)
            self.threshold.copy_(pos.min() if first else (1 - lr) * self.threshold + lr * pos.min())
