"""Trajectory-forecasting metrics and losses: ADE/FDE, min-over-modes, joint JADE/JFDE, collisions.

Shapes: single-agent predictions (B, K, T, 2) against ground truth (B, T, 2); multi-agent joint
predictions (B, K, A, T, 2) against (B, A, T, 2); K modes, A agents, T steps (any coordinate dim).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import LossShapeError, check_reduction, reduce

__all__ = [
    "JointMinADELoss",
    "MinADELoss",
    "ade",
    "collision_rate",
    "fde",
    "jade",
    "jfde",
    "min_ade",
    "min_fde",
    "per_agent_min_ade",
]


def _check(pred: torch.Tensor, gt: torch.Tensor, pred_dims: int, layout: str) -> None:
    if pred.dim() != pred_dims or gt.dim() != pred_dims - 1:
        raise LossShapeError(f"predictions must be {layout} and ground truth the same without K")
    if pred.shape[:1] + pred.shape[2:] != gt.shape:
        raise LossShapeError(f"predictions {tuple(pred.shape)} do not match ground truth {tuple(gt.shape)}")


def _broadcastable(pred: torch.Tensor, gt: torch.Tensor) -> None:
    try:
        torch.broadcast_shapes(pred.shape, gt.shape)
    except RuntimeError:
        raise LossShapeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} do not broadcast") from None


def ade(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Average displacement error: mean over time of ||pred - gt|| (inputs (..., T, 2), broadcastable)."""
    _broadcastable(pred, gt)
    return (pred - gt).norm(dim=-1).mean(dim=-1)


def fde(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Final displacement error ||pred_T - gt_T|| (inputs (..., T, 2), broadcastable)."""
    _broadcastable(pred, gt)
    return (pred[..., -1, :] - gt[..., -1, :]).norm(dim=-1)


def min_ade(pred: torch.Tensor, gt: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """minADE_K: best-of-K ADE of (B, K, T, 2) predictions against (B, T, 2)."""
    _check(pred, gt, 4, "(B, K, T, 2)")
    return reduce(ade(pred, gt.unsqueeze(1)).min(dim=1).values, reduction)


def min_fde(pred: torch.Tensor, gt: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """minFDE_K: best-of-K FDE of (B, K, T, 2) predictions against (B, T, 2)."""
    _check(pred, gt, 4, "(B, K, T, 2)")
    return reduce(fde(pred, gt.unsqueeze(1)).min(dim=1).values, reduction)


def per_agent_min_ade(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Marginal minADE of every agent, (B, A): each agent picks its own best mode."""
    _check(pred, gt, 5, "(B, K, A, T, 2)")
    return ade(pred, gt.unsqueeze(1)).min(dim=1).values


def jade(pred: torch.Tensor, gt: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Joint ADE (Weng et al., 2023, "Joint Metrics Matter"): one mode for the whole scene,

    .. math:: \mathrm{JADE} = \min_k \frac1A \sum_a \mathrm{ADE}(\hat Y^k_a, Y_a)

    Since min_k mean_a >= mean_a min_k, JADE is never below the mean over agents of
    :func:`per_agent_min_ade` (the marginal minADE).
    """
    _check(pred, gt, 5, "(B, K, A, T, 2)")
    return reduce(ade(pred, gt.unsqueeze(1)).mean(dim=2).min(dim=1).values, reduction)


def jfde(pred: torch.Tensor, gt: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Joint FDE: min over modes of the agents' mean FDE."""
    _check(pred, gt, 5, "(B, K, A, T, 2)")
    return reduce(fde(pred, gt.unsqueeze(1)).mean(dim=2).min(dim=1).values, reduction)


def collision_rate(pred: torch.Tensor, radius: float = 0.1) -> torch.Tensor:
    """Share of predicted scenes (B, K, A, T, 2) — or (B, A, T, 2) — in which two agents come closer
    than ``radius`` at some time step (TrajNet++'s 0.1 m threshold by default)."""
    if pred.dim() == 4:
        pred = pred.unsqueeze(1)
    if pred.dim() != 5:
        raise LossShapeError(f"predictions must be (B, K, A, T, 2) or (B, A, T, 2), got {tuple(pred.shape)}")
    a = pred.shape[2]
    if a < 2:
        return pred.new_zeros(())
    d = (pred.unsqueeze(2) - pred.unsqueeze(3)).norm(dim=-1)  # (B, K, A, A, T)
    off = ~torch.eye(a, dtype=torch.bool, device=pred.device).view(1, 1, a, a, 1)
    hit = ((d < radius) & off).flatten(2).any(dim=2)
    return hit.to(pred.dtype).mean()


class MinADELoss(nn.Module):
    """Winner-takes-all training loss: minADE over K modes (gradient only to the best mode)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """minADE of (B, K, T, 2) predictions."""
        return min_ade(pred, gt, self.reduction)


class JointMinADELoss(nn.Module):
    """Joint winner-takes-all loss: JADE over K scene modes (one mode for all agents)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """JADE of (B, K, A, T, 2) predictions."""
        return jade(pred, gt, self.reduction)
