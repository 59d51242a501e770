"""Calibration: the correctness-aware (CA) loss, a temperature-scaling calibrator and the ECE metric."""

from __future__ import annotations

import torch
from torch import nn

from ._common import LossShapeError, check_logits_targets, check_ndim, check_reduction, reduce

__all__ = ["CALoss", "TemperatureScaler", "ca_loss", "correctness_from_views", "expected_calibration_error"]


def correctness_from_views(view_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft correctness of each example: share of its V transformed views that are classified right.

    ``view_logits`` is (V, N, C) (e.g. rotated, greyscaled, colour-jittered copies).
    """
    check_ndim("view_logits", view_logits, 3, "(V, N, C)")
    return (view_logits.argmax(dim=2) == targets.unsqueeze(0)).to(view_logits.dtype).mean(dim=0)


def ca_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    correctness: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Correctness-aware calibration loss (Liu, Wang, Zou, Zou & Zheng, 2024, "Optimizing Calibration
    by Gaining Aware of Prediction Correctness").

    .. math:: L = \frac1N \sum_i \big(\max_k \mathrm{softmax}(z_i)_k - c_i\big)^2

    The confidence of the prediction is pulled up when the prediction is correct and down when it is
    wrong, unlike CE, which raises the true-class score even on narrowly wrong examples and so can
    *raise* the (wrong) top confidence. Assumption on the target c_i: 1[argmax z_i = y_i] by default,
    or a soft correctness such as :func:`correctness_from_views` (the paper's transformed copies).
    """
    check_logits_targets(logits, targets)
    conf = torch.softmax(logits, dim=1).max(dim=1).values
    if correctness is None:
        correctness = (logits.argmax(dim=1) == targets).to(logits.dtype)
    elif correctness.shape != conf.shape:
        raise LossShapeError(
            f"correctness must have shape {tuple(conf.shape)}, got {tuple(correctness.shape)}"
        )
    return reduce((conf - correctness.detach().to(conf.dtype)).pow(2), reduction)


class CALoss(nn.Module):
    """Module form of :func:`ca_loss`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, correctness: torch.Tensor | None = None
    ) -> torch.Tensor:
        """CA loss of (N, C) logits."""
        return ca_loss(logits, targets, correctness, self.reduction)


class TemperatureScaler(nn.Module):
    """Post-hoc calibrator z -> z / T with one learnable temperature (accuracy preserving), T0 = 1."""

    def __init__(self, init_temperature: float = 1.0):
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(float(init_temperature)).log())

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Rescaled logits."""
        return logits / self.log_t.exp().to(logits.dtype)


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> torch.Tensor:
    """ECE (Guo et al., 2017): sum over equal-width confidence bins of |acc - conf| weighted by bin mass."""
    check_ndim("probs", probs, 2, "(N, C)")
    conf, pred = probs.max(dim=1)
    correct = (pred == targets).to(probs.dtype)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=probs.dtype, device=probs.device)
    ece = probs.new_zeros(())
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if bool(inside.any()):
            ece = ece + inside.to(probs.dtype).mean() * (correct[inside].mean() - conf[inside].mean()).abs()
    return ece
