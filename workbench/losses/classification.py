"""Classification losses on logits: the spherical Z-loss, the PaLM/OLMo log-Z penalty and the comp-sum family.

Every loss takes logits of shape (N, C) and integer targets of shape (N,) unless stated, and
reduces with ``reduction`` in {'mean', 'sum', 'none'}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_logits_targets, check_reduction, reduce

__all__ = [
    "CompSumLoss",
    "GCELoss",
    "LogZLoss",
    "MAELoss",
    "SmoothAdversarialCompSumLoss",
    "SphericalZLoss",
    "comp_sum_loss",
    "log_z_loss",
    "smooth_adversarial_comp_sum_loss",
    "spherical_z_loss",
]


def spherical_z_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    a: float = 1.0,
    b: float = 0.0,
    reduction: str = "mean",
    eps: float = 1e-12,
) -> torch.Tensor:
    r"""Spherical Z-loss (de Brébisson & Vincent, 2016, arXiv:1604.08859).

    .. math:: z_c = \frac{o_c - \mu}{\sigma},\quad
              \mu = \tfrac1C\sum_k o_k,\quad \sigma^2 = \tfrac1C\sum_k o_k^2 - \mu^2,\quad
              L = \tfrac1a\,\mathrm{softplus}\big(a\,(b - z_c)\big)

    It depends on the logits only through the Z-normalised target score, so it is unchanged when all
    logits of a row are shifted by a constant or multiplied by a positive constant. ``a`` (sharpness)
    and ``b`` (location) are tuned per task in the paper; the defaults a=1, b=0 are those of the
    authors' reference example (``factored_output_layer``: ``softplus((mu - o_c) / sigma)``).
    """
    check_logits_targets(logits, targets)
    if a <= 0:
        raise ValueError(f"a must be > 0, got {a}")
    mu = logits.mean(dim=1)
    var = (logits * logits).mean(dim=1) - mu * mu
    sigma = var.clamp_min(0.0).sqrt() + eps
    target_logit = logits.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    z = (target_logit - mu) / sigma
    return reduce(F.softplus(a * (b - z)) / a, reduction)


class SphericalZLoss(nn.Module):
    """Module form of :func:`spherical_z_loss` (shift- and scale-invariant classification loss)."""

    def __init__(self, a: float = 1.0, b: float = 0.0, reduction: str = "mean"):
        super().__init__()
        if a <= 0:
            raise ValueError(f"a must be > 0, got {a}")
        self.a, self.b, self.reduction = a, b, check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Z-loss of (N, C) logits against (N,) targets."""
        return spherical_z_loss(logits, targets, self.a, self.b, self.reduction)


def log_z_loss(logits: torch.Tensor, coef: float = 1e-4, reduction: str = "mean") -> torch.Tensor:
    r"""The PaLM/OLMo auxiliary z-loss on the softmax normaliser (Chowdhery et al., 2022, §5).

    .. math:: L = \mathrm{coef}\cdot \log^2 Z,\qquad Z = \sum_k e^{o_k}

    It keeps the log-partition function near 0 so that logits do not drift (used by the stability
    evaluator). ``logits`` has shape (..., V); the loss is computed per position, coef = 1e-4 as in
    PaLM. Not to be confused with :func:`spherical_z_loss`.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1 or not logits.is_floating_point():
        raise LossShapeError("logits must be a floating tensor of shape (..., V)")
    log_z = torch.logsumexp(logits, dim=-1)
    return reduce(coef * log_z.pow(2), reduction)


class LogZLoss(nn.Module):
    """Module form of :func:`log_z_loss` (coef · log² Z on logits of shape (..., V))."""

    def __init__(self, coef: float = 1e-4, reduction: str = "mean"):
        super().__init__()
        self.coef, self.reduction = coef, check_reduction(reduction)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Return coef · log² Z reduced over positions."""
        return log_z_loss(logits, self.coef, self.reduction)


def comp_sum_loss(
    logits: torch.Tensor, targets: torch.Tensor, tau: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    r"""Comp-sum loss of Mao, Mohri & Zhong (ICML 2023, "Cross-entropy loss functions: theoretical
    analysis and applications").

    .. math:: u = \sum_{y'\ne y} e^{h_{y'} - h_y},\qquad
              \Phi^\tau(u) = \begin{cases}\log(1+u) & \tau = 1\\
              \frac{(1+u)^{1-\tau} - 1}{1-\tau} & \tau \ne 1\end{cases}

    tau = 0 is the sum-exponential loss, tau = 1 cross-entropy, tau in (1, 2) generalised cross-entropy
    (GCE with q = tau - 1) and tau = 2 the mean absolute error 1 - p_y. Since 1 + u = 1/p_y it is
    computed stably as expm1((1 - tau) · CE) / (1 - tau).
    """
    check_logits_targets(logits, targets)
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    ce = F.cross_entropy(logits, targets.long(), reduction="none")  # = log(1 + u)
    if tau == 1.0:
        per = ce
    else:
        per = torch.expm1((1.0 - tau) * ce) / (1.0 - tau)
    return reduce(per, reduction)


class CompSumLoss(nn.Module):
    """Module form of :func:`comp_sum_loss`; tau=1 is cross-entropy (the default)."""

    def __init__(self, tau: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if tau < 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        self.tau, self.reduction = tau, check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Comp-sum loss of (N, C) logits against (N,) targets."""
        return comp_sum_loss(logits, targets, self.tau, self.reduction)


class GCELoss(CompSumLoss):
    r"""Generalised cross-entropy (Zhang & Sabuncu, NeurIPS 2018): L = (1 - p_y^q) / q, q = 0.7.

    It is the comp-sum loss at tau = 1 + q.
    """

    def __init__(self, q: float = 0.7, reduction: str = "mean"):
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q}")
        super().__init__(tau=1.0 + q, reduction=reduction)
        self.q = q


class MAELoss(CompSumLoss):
    r"""Mean absolute error in probability space, L = 1 - p_y: the comp-sum loss at tau = 2.

    Ghosh et al. (AAAI 2017) write MAE as ||e_y - p||_1 = 2 (1 - p_y); this is half of it.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(tau=2.0, reduction=reduction)


def _margin_vector(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Delta_h(x, y) = (h_y - h_y')_{y' != y} as an (N, C-1) matrix."""
    n, c = logits.shape
    target_logit = logits.gather(1, targets.long().unsqueeze(1))
    keep = torch.ones(n, c, dtype=torch.bool, device=logits.device)
    keep.scatter_(1, targets.long().unsqueeze(1), False)
    return (target_logit - logits)[keep].view(n, c - 1)


def smooth_adversarial_comp_sum_loss(
    logits: torch.Tensor,
    logits_adv: torch.Tensor,
    targets: torch.Tensor,
    tau: float = 1.0,
    nu: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Smooth adversarial comp-sum loss (Mao, Mohri & Zhong, ICML 2023).

    .. math:: L = \Phi^\tau(u(h, x, y)) + \nu\,\big\lVert \Delta_h(x', y) - \Delta_h(x, y)\big\rVert_2,
              \qquad \Delta_h(x, y) = (h_y(x) - h_{y'}(x))_{y'\ne y}

    where x' is the worst perturbation of x in the gamma-ball. Assumption (the paper leaves the inner
    supremum to the optimiser): the caller finds x' (e.g. by PGD on this same smoothness term) and
    passes the logits at x' as ``logits_adv``; this function evaluates the loss at that x'. nu = 1.0.
    """
    check_logits_targets(logits, targets)
    if logits_adv.shape != logits.shape:
        raise LossShapeError(f"logits_adv {tuple(logits_adv.shape)} must match logits {tuple(logits.shape)}")
    base = comp_sum_loss(logits, targets, tau, reduction="none")
    diff = _margin_vector(logits_adv, targets) - _margin_vector(logits, targets)
    # sqrt(sum + tiny) keeps the gradient finite when x' = x
    smooth = (diff.pow(2).sum(dim=1) + torch.finfo(diff.dtype).tiny).sqrt()
    return reduce(base + nu * smooth, reduction)


class SmoothAdversarialCompSumLoss(nn.Module):
    """Module form of :func:`smooth_adversarial_comp_sum_loss`."""

    def __init__(self, tau: float = 1.0, nu: float = 1.0, reduction: str = "mean"):
        super().__init__()
        self.tau, self.nu, self.reduction = tau, nu, check_reduction(reduction)

    def forward(self, logits: torch.Tensor, logits_adv: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss from clean logits, logits at the adversarial point, and targets."""
        return smooth_adversarial_comp_sum_loss(
            logits, logits_adv, targets, self.tau, self.nu, self.reduction
        )
