"""Self-supervised contrastive losses: InfoNCE / NT-Xent, hardness weights, TempNet DRO, AMCL.

iSogCLR lives in :mod:`.isogclr`. Every loss here takes its exponentials through ``cross_entropy``,
``softmax`` or ``logsumexp`` (max subtracted) of logits whose masked entries are -inf before the
exponential, so float32 inputs stay finite for temperatures down to 0.01 and below.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_ndim, check_reduction, check_same_shape, reduce

__all__ = [
    "AMCLLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "TempNetDROLoss",
    "hardness_weights",
    "info_nce_loss",
    "nt_xent_loss",
    "tempnet_dro_loss",
]


def _check_views(z1: torch.Tensor, z2: torch.Tensor) -> None:
    check_ndim("z1", z1, 2, "(N, D)")
    check_same_shape("z1", z1, "z2", z2)
    if z1.shape[0] < 2:
        raise LossShapeError("a contrastive loss needs at least 2 examples for negatives")


def _two_view_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """(2N, 2N) cosine logits / T of the stacked views with -inf on the diagonal."""
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    sim = z @ z.t()
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    return (sim / temperature).masked_fill(eye, float("-inf"))


def _positive_index(n: int, device: torch.device) -> torch.Tensor:
    return torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(device)


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, reduction: str = "mean"
) -> torch.Tensor:
    r"""NT-Xent, the SimCLR loss (Chen et al., ICML 2020), over 2N views with T = 0.5 (SimCLR CIFAR).

    .. math:: \ell_i = -\log \frac{\exp(s_{i,p(i)}/T)}{\sum_{k\ne i} \exp(s_{ik}/T)}

    s is the cosine similarity; p(i) the other view of the same image. 'none' returns (2N,) losses.
    """
    _check_views(z1, z2)
    logits = _two_view_logits(z1, z2, temperature)
    return F.cross_entropy(logits, _positive_index(z1.shape[0], z1.device), reduction=reduction)


def info_nce_loss(
    query: torch.Tensor,
    positive_key: torch.Tensor,
    negative_keys: torch.Tensor | None = None,
    temperature: float = 0.07,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""InfoNCE (van den Oord et al., 2018) with MoCo's T = 0.07.

    .. math:: \ell_i = -\log \frac{e^{q_i\cdot k_i^+/T}}{e^{q_i\cdot k_i^+/T} + \sum_j e^{q_i\cdot k_j^-/T}}

    on L2-normalised vectors. Without ``negative_keys`` the other rows' positives are the negatives.
    """
    check_ndim("query", query, 2, "(N, D)")
    check_same_shape("query", query, "positive_key", positive_key)
    q, kp = F.normalize(query, dim=1), F.normalize(positive_key, dim=1)
    if negative_keys is None:
        logits = q @ kp.t() / temperature
        labels = torch.arange(q.shape[0], device=q.device)
    else:
        check_ndim("negative_keys", negative_keys, 2, "(M, D)")
        kn = F.normalize(negative_keys, dim=1)
        logits = torch.cat([(q * kp).sum(1, keepdim=True), q @ kn.t()], dim=1) / temperature
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels, reduction=reduction)


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent_loss`."""

    def __init__(self, temperature: float = 0.5, reduction: str = "mean"):
        super().__init__()
        self.temperature, self.reduction = temperature, check_reduction(reduction)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """NT-Xent of two (N, D) views."""
        return nt_xent_loss(z1, z2, self.temperature, self.reduction)


class InfoNCELoss(nn.Module):
    """Module form of :func:`info_nce_loss`."""

    def __init__(self, temperature: float = 0.07, reduction: str = "mean"):
        super().__init__()
        self.temperature, self.reduction = temperature, check_reduction(reduction)

    def forward(
        self, query: torch.Tensor, positive_key: torch.Tensor, negative_keys: torch.Tensor | None = None
    ) -> torch.Tensor:
        """InfoNCE of queries against their positive (and optional negative) keys."""
        return info_nce_loss(query, positive_key, negative_keys, self.temperature, self.reduction)


def hardness_weights(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    r"""Hardness-aware penalty on each negative (Wang & Liu, CVPR 2021, "Understanding the Behaviour of
    Contrastive Loss"): the share of the gradient of NT-Xent that negative j receives.

    .. math:: r_i(s_{ij}) = \frac{\exp(s_{ij}/T)}{\sum_{k\ne i,\,p(i)} \exp(s_{ik}/T)}

    Returns a detached (2N, 2N) matrix: 0 on the diagonal and at the positive, rows sum to 1. A small
    T concentrates the weight on the hardest (most similar) negatives.
    """
    _check_views(z1, z2)
    with torch.no_grad():
        logits = _two_view_logits(z1, z2, temperature)
        n2 = logits.shape[0]
        pos = _positive_index(z1.shape[0], z1.device)
        logits[torch.arange(n2, device=logits.device), pos] = float("-inf")
        return torch.softmax(logits, dim=1)


def tempnet_dro_loss(
    sim: torch.Tensor,
    tau_rows: torch.Tensor,
    tau_cols: torch.Tensor | None = None,
    rho: float = 8.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""DRO contrastive loss with per-example temperatures predicted by a TempNet (Qiu et al., ICML
    2024, "To Cool or not to Cool? Temperature Network Meets Large Foundation Models via DRO").

    .. math:: L_i = \tau_i \log \frac1{n-1} \sum_{j\ne i} \exp\!\Big(\frac{s_{ij} - s_{ii}}{\tau_i}\Big) + \tau_i\rho

    ``sim`` is the (N, N) image-text (or view-view) similarity with positives on the diagonal;
    ``tau_rows`` (N,) are the TempNet outputs for the rows (images) and ``tau_cols`` for the columns
    (texts: the transposed term is added). The loss is differentiable in both the similarities and
    the temperatures, so the TempNet is trained by the same objective. Its gradients in the
    similarities and in the temperatures equal those of the official ``iSogCLR_TempNet_Loss``
    (zhqiu/TempNet, ``Bimodal_CL/models/losses.py``; clip loss + temperature loss) in its first epoch,
    where that loss uses the fresh batch estimate instead of a moving average; the official value
    itself is a surrogate. rho = 8.0, the official default (its run script uses 7.0).
    """
    check_ndim("sim", sim, 2, "(N, N)")
    n = sim.shape[0]
    if sim.shape[1] != n or n < 2:
        raise LossShapeError(f"sim must be square (N, N) with N >= 2, got {tuple(sim.shape)}")
    if tau_rows.shape != (n,) or (tau_cols is not None and tau_cols.shape != (n,)):
        raise LossShapeError(f"temperatures must have shape ({n},)")

    def side(s: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        h = (s - s.diagonal().unsqueeze(1)) / tau.unsqueeze(1)
        h = h.masked_fill(torch.eye(n, dtype=torch.bool, device=s.device), float("-inf"))
        return tau * (torch.logsumexp(h, dim=1) - math.log(n - 1)) + tau * rho

    per = side(sim, tau_rows)
    if tau_cols is not None:
        per = per + side(sim.t(), tau_cols)
    return reduce(per, reduction)


class TempNetDROLoss(nn.Module):
    """Module form of :func:`tempnet_dro_loss`."""

    def __init__(self, rho: float = 8.0, reduction: str = "mean"):
        super().__init__()
        self.rho, self.reduction = rho, check_reduction(reduction)

    def forward(
        self, sim: torch.Tensor, tau_rows: torch.Tensor, tau_cols: torch.Tensor | None = None
    ) -> torch.Tensor:
        """DRO loss of an (N, N) similarity matrix with TempNet temperatures."""
        return tempnet_dro_loss(sim, tau_rows, tau_cols, self.rho, self.reduction)


class AMCLLoss(nn.Module):
    r"""Adaptive multi-head contrastive loss (Wang, Koniusz, Gedeon & Zheng, ECCV 2024, "Adaptive
    Multi-head Contrastive Learning").

    .. math:: L = \frac1H\sum_h \mathrm{mean}_i\Big[-\log\frac{e^{s^h_{i,p(i)}/\tau^+_h}}
              {e^{s^h_{i,p(i)}/\tau^+_h} + \sum_{k\ne i,p(i)} e^{s^h_{ik}/\tau^-_h}}\Big]
              + \frac{\gamma}{H}\sum_h \big[(\log\tau^+_h - \log\tau_0)^2 + (\log\tau^-_h - \log\tau_0)^2\big]

    Assumptions (the paper derives the loss from a head-wise MLE but leaves the parametrisation of the
    adaptive temperatures open): every head h has learnable temperatures, one for its positive pairs
    and one for its negative pairs (log-parametrised, start at tau_0 = 0.5), and the regulariser is a
    log-normal prior around tau_0 with weight gamma = 0.1 that keeps them away from 0 and infinity.
    Input views have shape (H, N, D): one projection per head.
    """

    def __init__(self, num_heads: int, tau_init: float = 0.5, reg: float = 0.1, reduction: str = "mean"):
        super().__init__()
        self.log_tau_pos = nn.Parameter(torch.full((num_heads,), math.log(tau_init)))
        self.log_tau_neg = nn.Parameter(torch.full((num_heads,), math.log(tau_init)))
        self.log_tau0, self.reg = math.log(tau_init), reg
        self.reduction = check_reduction(reduction)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Loss of two (H, N, D) multi-head views."""
        check_ndim("z1", z1, 3, "(H, N, D)")
        check_same_shape("z1", z1, "z2", z2)
        h, n, _ = z1.shape
        if h != self.log_tau_pos.numel():
            raise LossShapeError(f"got {h} heads but the loss was built for {self.log_tau_pos.numel()}")
        z = F.normalize(torch.cat([z1, z2], dim=1), dim=2)  # (H, 2N, D)
        sim = z @ z.transpose(1, 2)
        pos_idx = _positive_index(n, z.device)
        rows = torch.arange(2 * n, device=z.device)
        pos_mask = torch.zeros(2 * n, 2 * n, dtype=torch.bool, device=z.device)
        pos_mask[rows, pos_idx] = True
        tau_p = self.log_tau_pos.exp().to(sim.dtype).view(h, 1, 1)
        tau_n = self.log_tau_neg.exp().to(sim.dtype).view(h, 1, 1)
        logits = torch.where(pos_mask, sim / tau_p, sim / tau_n)
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        nll = torch.logsumexp(logits, dim=2) - logits[:, rows, pos_idx]  # (H, 2N)
        prior = (self.log_tau_pos - self.log_tau0).pow(2) + (self.log_tau_neg - self.log_tau0).pow(2)
        per = nll.mean(dim=0) + self.reg * prior.mean().to(nll.dtype)
        return reduce(per, self.reduction)
