"""Robust surrogate losses: label-distributionally robust LDR-KL / ALDR-KL and the EnsLoss ensemble."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_logits_targets, check_ndim, check_reduction, one_hot, reduce

__all__ = [
    "ALDRKLLoss",
    "EnsLoss",
    "LDRKLLoss",
    "ensloss",
    "ensloss_derivatives",
    "ldr_kl_loss",
    "normalize_scores",
]

_NORMALIZERS = ("softplus", "l1", None)


def normalize_scores(logits: torch.Tensor, normalize: str | None) -> torch.Tensor:
    """Score normalisation of the official LDR code (Optimization-AI/ICML2023_LDR).

    'softplus': f = softplus(z) / mean_k softplus(z_k) (LDRLoss_V1); 'l1': f = z / (||z||_1 / K)
    (ALDRLoss_V1 without softplus); None: raw logits.
    """
    if normalize not in _NORMALIZERS:
        raise ValueError(f"normalize must be one of {_NORMALIZERS}, got {normalize!r}")
    if normalize is None:
        return logits
    k = logits.shape[1]
    if normalize == "softplus":
        f = F.softplus(logits)
        return f / f.mean(dim=1, keepdim=True)
    return logits / (logits.abs().sum(dim=1, keepdim=True) / k)


def _ldr_margins(scores: torch.Tensor, targets: torch.Tensor, margin: float) -> torch.Tensor:
    """d_k = f_k - f_y + c * 1[k != y] as an (N, K) matrix."""
    y = one_hot(targets, scores.shape[1], scores)
    target_score = (scores * y).sum(dim=1, keepdim=True)
    return scores - target_score + margin * (1.0 - y)


def ldr_kl_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    lam: float | torch.Tensor = 10.0,
    margin: float = 0.1,
    normalize: str | None = "softplus",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""LDR-KL loss (Zhu, Ying & Yang, ICML 2023, "Label Distributionally Robust Losses for
    Multi-class Classification"; official code Optimization-AI/ICML2023_LDR).

    .. math:: \psi_\lambda(f, y) = \max_{p\in\Delta_K} \sum_k p_k (f_k - f_y + c\,1[k\ne y])
              - \lambda\,\mathrm{KL}(p, \tfrac1K\mathbf 1)
              = \lambda \log \tfrac1K \sum_k \exp\!\big((f_k - f_y + c\,1[k\ne y])/\lambda\big)

    Limits: lambda -> 0 gives the Crammer-Singer hinge max_k(...); lambda -> inf gives the mean
    (Weston-Watkins-like) margin; at lambda = 1, c = 0 on raw scores it is cross-entropy - log K.
    ``lam`` may be an (N,) tensor of per-example temperatures (held fixed, as ALDR-KL uses them).
    Defaults are the official experiment script's: lambda = 10, margin c = 0.1, scores normalised
    with softplus / mean (``LDRLoss_V1``).
    """
    check_logits_targets(logits, targets)
    lam_t = torch.as_tensor(lam, dtype=logits.dtype, device=logits.device)
    if lam_t.dim() not in (0, 1) or (lam_t.dim() == 1 and lam_t.shape[0] != logits.shape[0]):
        raise LossShapeError(
            f"lam must be a float or a ({logits.shape[0]},) tensor of per-example temperatures"
        )
    if bool((lam_t <= 0).any()):
        raise ValueError("lam must be > 0")
    lam_t = lam_t.detach().unsqueeze(-1) if lam_t.dim() == 1 else lam_t
    d = _ldr_margins(normalize_scores(logits, normalize), targets, margin)
    per = lam_t * (torch.logsumexp(d / lam_t, dim=1, keepdim=True) - math.log(d.shape[1]))
    return reduce(per.squeeze(1), reduction)


class LDRKLLoss(nn.Module):
    """Module form of :func:`ldr_kl_loss`."""

    def __init__(
        self,
        lam: float = 10.0,
        margin: float = 0.1,
        normalize: str | None = "softplus",
        reduction: str = "mean",
    ):
        super().__init__()
        if lam <= 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        if normalize not in _NORMALIZERS:
            raise ValueError(f"normalize must be one of {_NORMALIZERS}, got {normalize!r}")
        self.lam, self.margin, self.normalize = lam, margin, normalize
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """LDR-KL loss of (N, K) logits against (N,) targets."""
        return ldr_kl_loss(logits, targets, self.lam, self.margin, self.normalize, self.reduction)


class ALDRKLLoss(nn.Module):
    r"""Adaptive LDR-KL loss with an individual temperature per training example (Zhu, Ying & Yang,
    ICML 2023, §5; official ``ALDRLoss_V1`` of Optimization-AI/ICML2023_LDR).

    .. math:: \psi_i = \max_{p\in\Delta}\max_{\lambda_i}\ \sum_k p_k d_k - \lambda_i \mathrm{KL}(p, u)
              - \frac{\alpha \log K}{2\lambda_0}(\lambda_i - \lambda_0)^2

    solved as the official code does, by one alternating step per visit: p = softmax(f / lambda_i^{old})
    of the normalised scores f (without the margin), plus 1e-5 and renormalised; then
    lambda_i = lambda_0 (1 - KL(p, u) / (alpha log K)), and the loss
    lambda_i log mean_k exp(d_k / lambda_i) - alpha log K (lambda_i - lambda_0)^2 / (2 lambda_0).
    Noisy labels (large d) get a peaked p, a large KL and hence a small lambda_i, i.e. a hinge-like
    loss on that example. Each example's lambda_i is kept in the buffer ``lambdas`` (indexed by the
    ``indices`` given to forward) and updated while the module is in training mode.

    The exact maximiser over p (margin inside, no smoothing) was tried and dropped: it gave the same
    accuracy as this update in ``analyses/losses_noisy_labels.py`` (79.0 vs 79.2 % at 40 % noise). The
    floor ``lambda_min`` * lambda_0 never binds for alpha > 1 (KL < log K keeps lambda_i above
    lambda_0 (1 - 1/alpha)); it only guards alpha <= 1, where the official code can reach lambda <= 0.
    Defaults follow the official script: lambda_0 = 10, alpha = 2, margin 0.1, scores divided by
    ||z||_1 / K (``normalize='softplus'`` is the official ``softplus=True``).
    """

    def __init__(
        self,
        num_samples: int,
        lam0: float = 10.0,
        alpha: float = 2.0,
        margin: float = 0.1,
        normalize: str | None = "l1",
        lambda_min: float = 1e-3,
        reduction: str = "mean",
    ):
        super().__init__()
        if num_samples < 1 or lam0 <= 0 or alpha <= 0:
            raise ValueError("num_samples >= 1, lam0 > 0 and alpha > 0 are required")
        if normalize not in _NORMALIZERS:
            raise ValueError(f"normalize must be one of {_NORMALIZERS}, got {normalize!r}")
        self.lam0, self.alpha, self.margin, self.normalize = lam0, alpha, margin, normalize
        self.lambda_min, self.reduction = lambda_min, check_reduction(reduction)
        self.register_buffer("lambdas", torch.full((num_samples,), float(lam0)))

    def _new_lambdas(self, scores: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Detached (N, 1) temperatures from the official step over p at the stored lambdas."""
        k = scores.shape[1]
        lam_old = self.lambdas[indices].to(scores.dtype).unsqueeze(1)
        p = torch.softmax(scores / lam_old, dim=1) + 1e-5
        p = p / p.sum(dim=1, keepdim=True)
        kl = (p * torch.log(p * k)).sum(dim=1, keepdim=True)
        lam = self.lam0 * (1.0 - kl / (self.alpha * math.log(k)))
        return lam.clamp_min(self.lambda_min * self.lam0)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Loss of (N, K) logits for examples with dataset ``indices`` (N,) and ``targets`` (N,)."""
        check_logits_targets(logits, targets)
        check_ndim("indices", indices, 1, "(N,)")
        if indices.shape[0] != logits.shape[0]:
            raise LossShapeError(f"indices has {indices.shape[0]} entries for {logits.shape[0]} rows")
        if int(indices.min()) < 0 or int(indices.max()) >= self.lambdas.numel():
            raise LossShapeError(f"indices must lie in [0, {self.lambdas.numel()}) (the num_samples given)")
        log_k = math.log(logits.shape[1])
        scores = normalize_scores(logits, self.normalize)
        d = _ldr_margins(scores, targets, self.margin)
        with torch.no_grad():
            lam = self._new_lambdas(scores, indices)
            if self.training:
                self.lambdas[indices] = lam.squeeze(1).to(self.lambdas.dtype)
        extra = -self.alpha * log_k / (2.0 * self.lam0) * (lam - self.lam0).pow(2)
        per = lam * (torch.logsumexp(d / lam, dim=1, keepdim=True) - log_k) + extra
        return reduce(per.squeeze(1), self.reduction)


def ensloss_derivatives(
    margins: torch.Tensor, generator: torch.Generator | None = None, boxcox_lambda: float = 0.0
) -> torch.Tensor:
    r"""Random calibrated loss-derivatives of EnsLoss for the given margins z = y f(x) (1-D).

    Following the official code (statmlben/ensLoss ``ensLoss.forward``): draw g = -BC^{-1}(e) with
    e ~ N(0, 1) and BC^{-1} the inverse Box-Cox map (exp for lambda = 0), sort the draws ascending and
    hand them to the margins in ascending order (so g is non-decreasing in z: the implied loss is
    convex), clip at -1, divide by z where z > 1 (decaying tail) and subtract 1e-6 (so that
    phi'(0) < 0: calibration). Returns detached g of the shape of ``margins``.

    As the official code, the draws are made on the CPU in float32 (``generator`` must be a CPU
    generator; None uses torch's global CPU generator) and g is kept in float32 through the tail
    division and the 1e-6 shift, whatever the dtype and device of ``margins``; g is returned in the
    wider of float32 and the margins' dtype, on their device.
    """
    check_ndim("margins", margins, 1, "(M,)")
    with torch.no_grad():
        z = margins.detach().cpu()
        e = torch.randn(z.shape[0], generator=generator, dtype=torch.float32)
        if boxcox_lambda == 0.0:
            draws = -torch.exp(e)
        else:
            draws = -F.relu(1.0 + boxcox_lambda * e).pow(1.0 / boxcox_lambda)
        draws = torch.sort(draws).values.clamp_min(-1.0)
        g = torch.empty_like(draws)
        g[torch.sort(z).indices] = draws
        tail = z > 1.0
        wide = torch.promote_types(z.dtype, torch.float32)  # g *= 1 / z in the wider dtype, kept float32
        g[tail] = (g[tail].to(wide) * (1.0 / z[tail])).to(torch.float32)
        g = g - 1e-6
        return g.to(device=margins.device, dtype=torch.promote_types(margins.dtype, torch.float32))


def _ensloss_margins(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Flatten scores/targets to margins z = (2t - 1) f: binary (N,) or one-vs-rest (N, C)."""
    if scores.dim() == 2 and scores.shape[1] == 1:
        scores = scores.squeeze(1)
    if scores.dim() == 1:
        if targets.shape != scores.shape:
            raise LossShapeError(
                f"binary targets {tuple(targets.shape)} must match scores {tuple(scores.shape)}"
            )
        if bool(((targets != 0) & (targets != 1)).any()):
            raise LossShapeError("binary targets must be 0 or 1")
        return (2.0 * targets.to(scores.dtype) - 1.0) * scores
    check_logits_targets(scores, targets)
    signs = 2.0 * one_hot(targets, scores.shape[1], scores) - 1.0
    return (signs * scores).reshape(-1)


def ensloss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    g: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    boxcox_lambda: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""EnsLoss (Dai, 2024, "EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting
    in Classification"; official code statmlben/ensLoss).

    .. math:: L = \frac1n \sum_i \mathrm{sg}(g_i)\, z_i,\qquad z_i = y_i f(x_i),\ y_i\in\{-1, 1\}

    Its gradient is that of a fresh random convex, classification-calibrated loss phi with
    phi'(z_i) = g_i (see :func:`ensloss_derivatives`), drawn anew at each call: SGD on it is SGD on an
    ensemble of losses. The value itself is only a surrogate. ``scores`` of shape (N,) with 0/1
    ``targets`` is the paper's binary setting; (N, C) scores with class targets use one-vs-rest
    margins (our extension for multi-class use: z = +f_y for the label column, -f_k elsewhere).
    Pass ``g`` to reuse fixed derivatives (then the loss is a plain linear function of the scores).
    """
    z = _ensloss_margins(scores, targets)
    if g is None:
        g = ensloss_derivatives(z.detach(), generator, boxcox_lambda)
    elif g.shape != z.shape:
        raise LossShapeError(f"g must have shape {tuple(z.shape)} (one derivative per margin)")
    return reduce(g.detach() * z, reduction)


class EnsLoss(nn.Module):
    """Module form of :func:`ensloss`; ``seed`` makes the random loss-derivatives reproducible.

    With a seed the draws come from the module's own CPU generator (the same numbers on every device);
    without one, from torch's global CPU generator, as the official code.
    """

    def __init__(self, boxcox_lambda: float = 0.0, seed: int | None = None, reduction: str = "mean"):
        super().__init__()
        self.boxcox_lambda, self.reduction = boxcox_lambda, check_reduction(reduction)
        self.seed = seed
        self._gen: torch.Generator | None = None

    def _generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self.seed)
        return self._gen

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """EnsLoss of binary (N,) or one-vs-rest (N, C) scores."""
        return ensloss(
            scores,
            targets,
            generator=self._generator(),
            boxcox_lambda=self.boxcox_lambda,
            reduction=self.reduction,
        )
