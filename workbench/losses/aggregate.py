r"""Learning from aggregate responses: bag-level, instance-level and interpolating losses.

Javanmard, Chen, Mirrokni, Badanidiyuru & Fu (ICLR 2024), "Learning from Aggregate responses:
Instance Level versus Bag Level Loss Functions". Each training instance i belongs to a bag b(i) and
only the bag's mean response ȳ_b is observed. With squared loss and f̄_b the bag's mean prediction,

.. math:: \underbrace{\frac1N\sum_i (\bar y_{b(i)} - f_i)^2}_{\text{instance level}}
          = \underbrace{\frac1N\sum_b k_b(\bar y_b - \bar f_b)^2}_{\text{bag level}}
          + \underbrace{\frac1N\sum_b\sum_{i\in b}(f_i - \bar f_b)^2}_{\text{within-bag spread}}

so the instance-level loss is the bag-level loss plus a regulariser that shrinks predictions
towards their bag mean (bias up, variance down). The interpolating estimator weighs the two:
L_rho = rho L_bag + (1 - rho) L_instance.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import LossShapeError, check_ndim, check_reduction

__all__ = ["AggregateLoss", "bag_level_loss", "instance_level_loss", "interpolating_loss"]


def _bag_stats(preds: torch.Tensor, bag_ids: torch.Tensor, bag_responses: torch.Tensor):
    check_ndim("preds", preds, 1, "(N,)")
    check_ndim("bag_ids", bag_ids, 1, "(N,)")
    check_ndim("bag_responses", bag_responses, 1, "(B,)")
    if bag_ids.shape != preds.shape:
        raise LossShapeError(f"bag_ids {tuple(bag_ids.shape)} must match preds {tuple(preds.shape)}")
    n_bags = bag_responses.shape[0]
    if bag_ids.numel() and (int(bag_ids.min()) < 0 or int(bag_ids.max()) >= n_bags):
        raise LossShapeError(f"bag_ids must lie in [0, {n_bags}) (one response per bag)")
    ids = bag_ids.long()
    sizes = torch.zeros(n_bags, dtype=preds.dtype, device=preds.device).index_add_(
        0, ids, torch.ones_like(preds)
    )
    if bool((sizes == 0).any()):
        raise LossShapeError("every bag needs at least one instance")
    sums = torch.zeros(n_bags, dtype=preds.dtype, device=preds.device).index_add_(0, ids, preds)
    return ids, sizes, sums / sizes


def bag_level_loss(
    preds: torch.Tensor, bag_ids: torch.Tensor, bag_responses: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Bag-level squared loss k_b (ȳ_b - f̄_b)^2, summed over bags and divided by N for 'mean'.

    'none' returns the per-bag (ȳ_b - f̄_b)^2; 'sum' the size-weighted sum.
    """
    check_reduction(reduction)
    _, sizes, mean_pred = _bag_stats(preds, bag_ids, bag_responses)
    per_bag = (bag_responses.to(preds.dtype) - mean_pred).pow(2)
    if reduction == "none":
        return per_bag
    total = (sizes * per_bag).sum()
    return total / preds.shape[0] if reduction == "mean" else total


def instance_level_loss(
    preds: torch.Tensor, bag_ids: torch.Tensor, bag_responses: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Instance-level squared loss (ȳ_{b(i)} - f_i)^2: every instance takes its bag's response."""
    check_reduction(reduction)
    ids, _, _ = _bag_stats(preds, bag_ids, bag_responses)
    per = (bag_responses.to(preds.dtype)[ids] - preds).pow(2)
    if reduction == "none":
        return per
    return per.mean() if reduction == "mean" else per.sum()


def interpolating_loss(
    preds: torch.Tensor,
    bag_ids: torch.Tensor,
    bag_responses: torch.Tensor,
    rho: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Interpolating estimator's loss rho L_bag + (1 - rho) L_instance (rho = 1: bag, rho = 0: instance)."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    if reduction == "none":
        raise ValueError("interpolating_loss mixes per-bag and per-instance terms; use 'mean' or 'sum'")
    bag = bag_level_loss(preds, bag_ids, bag_responses, reduction)
    inst = instance_level_loss(preds, bag_ids, bag_responses, reduction)
    return rho * bag + (1.0 - rho) * inst


class AggregateLoss(nn.Module):
    """Module form: rho = 1 bag-level, rho = 0 instance-level, in between the interpolating estimator."""

    def __init__(self, rho: float = 0.5, reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {rho}")
        if reduction == "none":
            raise ValueError("AggregateLoss supports 'mean' or 'sum'")
        self.rho, self.reduction = rho, check_reduction(reduction)

    def forward(
        self, preds: torch.Tensor, bag_ids: torch.Tensor, bag_responses: torch.Tensor
    ) -> torch.Tensor:
        """Loss of instance predictions (N,) with bag ids (N,) and bag mean responses (B,)."""
        return interpolating_loss(preds, bag_ids, bag_responses, self.rho, self.reduction)
