"""Feature Choice SAE (Ayonrinde 2024, "Adaptive Sparse Allocation with Mutual Choice & Feature Choice
Sparse Autoencoders").

Training: every latent ``f`` picks its own top ``m_f`` tokens of the batch by ReLU pre-activation, so a
token receives any number of latents (0 .. d_sae) and latent ``f`` at most ``m_f`` tokens. Capacities:

- ``uniform`` (default): ``m_f = m = round(k * n / d_sae)`` (at least 1), total budget ``k * n``;
- ``zipf``: ``m_f`` proportional to ``1 / (f + 1) ** zipf_alpha`` over the latent index, scaled so the
  total is ``k * n`` (each at least 1). Latents are exchangeable at initialisation, so the index order is
  an arbitrary but fixed ranking; training routes frequent structure to high-capacity latents.

Selected entries whose ReLU value is 0 are dropped (they would decode to nothing), so a latent may take
fewer than ``m_f`` tokens.

Inference rule (eval mode; the paper leaves it open, this is our choice): a per-latent threshold
``theta_f``, an exponential moving average over training batches of the ``m_f``-th largest ReLU
pre-activation of latent ``f`` (the smallest value it accepted; 0 when fewer than ``m_f`` tokens were
positive). At inference ``a_f = pre_f * 1[pre_f > theta_f]``: latent ``f`` fires on a token iff that token
would, in a typical training batch, have been among its ``m_f`` choices. This is a JumpReLU with a
per-latent threshold and exports to SAELens as ``jumprelu``.
"""

from __future__ import annotations

import torch

from .base import Codes, SparseAutoencoder, register


@register("feature_choice")
class FeatureChoiceSAE(SparseAutoencoder):
    """Each latent picks at most ``m_f`` tokens per batch."""

    arch_name = "feature_choice"

    def __init__(self, cfg, *, seed: int = 0):
        super().__init__(cfg, seed=seed)
        self.register_buffer("threshold", torch.zeros(cfg.d_sae))
        self.register_buffer("threshold_init", torch.zeros((), dtype=torch.bool))

    def capacities(self, n: int) -> torch.Tensor:
        """``m_f`` for a batch of ``n`` tokens, ``[d_sae]`` long, each in [1, n]."""
        f = self.cfg.d_sae
        total = self.cfg.k * n
        if self.cfg.capacities == "uniform":
            m = torch.full((f,), max(1, round(total / f)), dtype=torch.long)
        else:
            w = 1.0 / torch.arange(1, f + 1, dtype=torch.float64) ** self.cfg.zipf_alpha
            m = torch.round(w / w.sum() * total).long().clamp_min(1)
        return m.clamp_max(n).to(self.W_enc.device)

    def select(self, pre: torch.Tensor) -> Codes:
        """Per-latent top-m_f tokens in training; per-latent learned thresholds at inference."""
        n, f = pre.shape
        if not self.training:
            return Codes.from_dense(pre * (pre > self.threshold))
        m = self.capacities(n)
        vals, toks = pre.relu().topk(int(m.max()), dim=0)  # [m_max, F], sorted descending
        self._mth = vals.detach().gather(0, (m - 1)[None, :]).squeeze(0)
        keep = (torch.arange(vals.shape[0], device=pre.device)[:, None] < m[None, :]) & (vals > 0)
        cols = torch.arange(f, device=pre.device).expand_as(toks)
        toks, cols, vals = toks[keep], cols[keep], vals[keep]
        order = (toks * f + cols).argsort()
        toks, cols, vals = toks[order], cols[order], vals[order]
        counts = torch.bincount(toks, minlength=n)
        return Codes(cols, vals, n, f, torch.cumsum(counts, 0) - counts)

    @torch.no_grad()
    def after_step(self, codes: Codes, pre: torch.Tensor) -> None:
        """EMA of each latent's m_f-th largest ReLU pre-activation -> its inference threshold."""
        mth = self._mth
        if not bool(self.threshold_init):
            self.threshold.copy_(mth)
            self.threshold_init.fill_(True)
        else:
            lr = self.cfg.threshold_lr
            self.threshold.mul_(1 - lr).add_(lr * mth)
