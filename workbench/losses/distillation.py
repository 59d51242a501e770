"""Knowledge distillation: Hinton KD and dual-head KD with the BinaryKLNorm auxiliary-head loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_logits_targets, check_ndim, check_reduction

__all__ = ["BinaryKLNormLoss", "DualHeadKDLoss", "binary_kl_norm", "kd_loss"]


def _check_pair(student: torch.Tensor, teacher: torch.Tensor) -> None:
    check_ndim("student logits", student, 2, "(N, C)")
    if teacher.shape != student.shape:
        raise LossShapeError(
            f"teacher logits {tuple(teacher.shape)} must match student {tuple(student.shape)}"
        )


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    r"""Hinton et al. (2015) distillation: T^2 KL(softmax(t/T) || softmax(s/T)), batch mean, T = 4."""
    _check_pair(student, teacher)
    log_s = F.log_softmax(student / temperature, dim=1)
    p_t = F.softmax(teacher.detach() / temperature, dim=1)
    return F.kl_div(log_s, p_t, reduction="batchmean") * temperature**2


def binary_kl_norm(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float = 2.0,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> torch.Tensor:
    r"""BinaryKLNorm, the auxiliary-head loss of Dual-Head KD (Yang et al., 2024, "Dual-Head Knowledge
    Distillation: Enhancing Logits Utilization with an Auxiliary Head"; official ``BinaryKLNorm``).

    .. math:: L = \frac{T^2}{N} \sum_{i,c} \mathrm{KL}\Big(\mathrm{Bern}(\tfrac12)\ \Big\Vert\
              \mathrm{Bern}\big(\sigma((s_{ic} - t_{ic})/T)\big)\Big)

    Each class logit of the auxiliary head is pushed to the teacher's logit through a binary KL that is
    0 iff s = t, without the softmax coupling that makes plain KD conflict with CE on a shared head.
    T = 2 (the official class default). 'mean' divides the class-summed loss by N as the official
    code; 'none' returns (N,) per-example sums.
    """
    _check_pair(student, teacher)
    q = torch.sigmoid((student - teacher.detach()) / temperature).clamp(eps, 1 - eps)
    per = 0.5 * (math.log(0.5) - torch.log(q)) + 0.5 * (math.log(0.5) - torch.log1p(-q))
    per = temperature**2 * per.sum(dim=1)
    check_reduction(reduction)
    if reduction == "none":
        return per
    return per.mean() if reduction == "mean" else per.sum()


class BinaryKLNormLoss(nn.Module):
    """Module form of :func:`binary_kl_norm`."""

    def __init__(self, temperature: float = 2.0, reduction: str = "mean"):
        super().__init__()
        self.temperature, self.reduction = temperature, check_reduction(reduction)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """BinaryKLNorm of student vs teacher logits."""
        return binary_kl_norm(student, teacher, self.temperature, self.reduction)


class DualHeadKDLoss(nn.Module):
    r"""Dual-head KD: CE on the main head, BinaryKLNorm to the teacher on the auxiliary head.

    .. math:: L = w_{ce}\,\mathrm{CE}(z^{main}, y) + w_{kd}\,\mathrm{BinaryKLNorm}(z^{aux}, z^{teacher})

    Both heads share the student's backbone; only the main head is used at test time (official
    ``DHKD.forward_train``). Weights default to 1.
    """

    def __init__(self, ce_weight: float = 1.0, kd_weight: float = 1.0, temperature: float = 2.0):
        super().__init__()
        self.ce_weight, self.kd_weight = ce_weight, kd_weight
        self.aux = BinaryKLNormLoss(temperature)

    def forward(
        self,
        main_logits: torch.Tensor,
        aux_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """Total loss from the two student heads, the teacher logits and the labels."""
        check_logits_targets(main_logits, targets)
        ce = F.cross_entropy(main_logits, targets.long())
        return self.ce_weight * ce + self.kd_weight * self.aux(aux_logits, teacher_logits)
