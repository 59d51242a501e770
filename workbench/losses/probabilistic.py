"""Reconstruction, clustering and segmentation losses: APRE/WNLL, DEPICT, SFDA and PULASki.

Betti matching is left out on purpose. The only PyPI package that computes the persistence (Betti)
matching is ``topolosses`` (0.2.0, one release in April 2025 by a single author, an 85 MB wheel that
pulls opencv-python, torchvision, gudhi and POT), which we do not judge a maintained dependency;
gudhi/ripser/cripser compute persistence diagrams but not the Betti matching itself. Users who want
it can ``pip install topolosses`` and use ``topolosses.losses.BettiMatchingLoss`` directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_ndim, check_reduction, check_same_shape, reduce

__all__ = [
    "APRELoss",
    "DEPICTLoss",
    "PULASkiLoss",
    "SFDALoss",
    "apre_loss",
    "depict_loss",
    "depict_targets",
    "sfda_loss",
    "sinkhorn_divergence",
]


def apre_loss(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    target: torch.Tensor,
    beta: float = 0.5,
    weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""APRE / WNLL: adjustable probabilistic reconstruction error, a weighted Gaussian NLL.

    .. math:: L = \mathrm{sg}\big[\sigma^{2\beta}\big]\Big(\frac{(x - \mu)^2}{2\sigma^2} + \tfrac12\log\sigma^2\Big)

    Assumption (the source leaves the weighting open): the adjustable weight is the stop-gradient
    variance power of beta-NLL (Seitzer et al., ICLR 2022): beta = 0 is the plain heteroscedastic NLL,
    beta = 1 gives the mean gradient of MSE, beta = 0.5 (default) interpolates. Constant log(2 pi)/2
    dropped. Pass ``weights`` to hold the weights fixed.
    """
    check_same_shape("mean", mean, "target", target)
    check_same_shape("mean", mean, "log_var", log_var)
    nll = 0.5 * ((target - mean).pow(2) * torch.exp(-log_var) + log_var)
    w = torch.exp(beta * log_var).detach() if weights is None else weights.detach()
    return reduce(w * nll, reduction)


class APRELoss(nn.Module):
    """Module form of :func:`apre_loss`: forward(mean, log_var, target)."""

    def __init__(self, beta: float = 0.5, reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.beta, self.reduction = beta, check_reduction(reduction)

    def forward(self, mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted Gaussian NLL of target under N(mean, exp(log_var))."""
        return apre_loss(mean, log_var, target, self.beta, reduction=self.reduction)


def depict_targets(probs: torch.Tensor) -> torch.Tensor:
    """DEPICT auxiliary targets q_ik ∝ p_ik / sqrt(sum_i p_ik) (rows normalised), detached."""
    with torch.no_grad():
        q = probs / probs.sum(dim=0, keepdim=True).sqrt()
        return q / q.sum(dim=1, keepdim=True)


def depict_loss(
    logits: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    r"""DEPICT relative-entropy clustering objective (Dizaji et al., ICCV 2017, "Deep Clustering via
    Joint Convolutional Autoencoder Embedding and Relative Entropy Minimization").

    .. math:: L = \frac1N\sum_i \mathrm{KL}(q_i \Vert p_i),\qquad
              q_{ik} = \frac{p_{ik} / (\sum_{i'} p_{i'k})^{1/2}}{\sum_{k'} p_{ik'} / (\sum_{i'} p_{i'k'})^{1/2}}

    p = softmax(logits) are the soft cluster assignments; the targets q (held fixed, as in the paper's
    alternating optimisation) sharpen p while the division by the square root of the cluster size
    enforces the uniform cluster-size prior. ``targets`` overrides q.
    """
    check_ndim("logits", logits, 2, "(N, K)")
    log_p = F.log_softmax(logits, dim=1)
    q = depict_targets(log_p.exp()) if targets is None else targets.detach()
    check_same_shape("targets", q, "logits", logits)
    per = (q * (torch.log(q.clamp_min(1e-30)) - log_p)).sum(dim=1)
    return reduce(per, reduction)


class DEPICTLoss(nn.Module):
    """Module form of :func:`depict_loss`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """DEPICT loss of (N, K) cluster logits."""
        return depict_loss(logits, reduction=self.reduction)


def sfda_loss(
    logits: torch.Tensor, class_prior: torch.Tensor, lam: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    r"""Source-free domain adaptation loss for segmentation (Bateson, Kervadec, Dolz, Lombaert & Ben
    Ayed, MICCAI 2020, "Source-Relaxed Domain Adaptation for Image Segmentation").

    .. math:: L = \frac1{|\Omega|}\sum_{v\in\Omega} H(p_v) + \lambda\,\mathrm{KL}\big(\tau \,\Vert\, \hat\tau\big),
              \qquad \hat\tau_k = \frac1{|\Omega|}\sum_v p_{vk}

    entropy minimisation on the target images plus a KL between an anatomical class-ratio prior tau
    (C,) (or (N, C) per image) and the predicted class proportions, which stops the entropy term from
    collapsing onto the dominant class. ``logits`` is (N, C, ...) (any spatial dims). lambda = 1.
    'none' returns per-image losses.
    """
    if logits.dim() < 2:
        raise LossShapeError(f"logits must be (N, C, ...), got {tuple(logits.shape)}")
    n, c = logits.shape[:2]
    flat = logits.reshape(n, c, -1)
    log_p = F.log_softmax(flat, dim=1)
    p = log_p.exp()
    entropy = -(p * log_p).sum(1).mean(1)
    prior = class_prior.to(logits.dtype)
    if prior.shape not in ((c,), (n, c)):
        raise LossShapeError(f"class_prior must be ({c},) or ({n}, {c}), got {tuple(prior.shape)}")
    prior = prior.expand(n, c)
    tau_hat = p.mean(2).clamp_min(1e-12)
    kl = (prior * (torch.log(prior.clamp_min(1e-12)) - torch.log(tau_hat))).sum(1)
    return reduce(entropy + lam * kl, reduction)


class SFDALoss(nn.Module):
    """Module form of :func:`sfda_loss` with a fixed class-ratio prior."""

    def __init__(self, class_prior: torch.Tensor, lam: float = 1.0, reduction: str = "mean"):
        super().__init__()
        prior = torch.as_tensor(class_prior, dtype=torch.float32)
        if prior.dim() != 1 or (prior < 0).any() or abs(float(prior.sum()) - 1.0) > 1e-4:
            raise LossShapeError("class_prior must be a 1-D probability vector")
        self.register_buffer("class_prior", prior)
        self.lam, self.reduction = lam, check_reduction(reduction)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """SFDA loss of (N, C, ...) segmentation logits."""
        return sfda_loss(logits, self.class_prior, self.lam, self.reduction)


def _entropic_ot(x: torch.Tensor, y: torch.Tensor, eps: float, iters: int, tol: float) -> torch.Tensor:
    """Entropic OT cost between uniform point clouds x (n, d), y (m, d), cost ||x - y||^2 / (2 d).

    Log-domain Sinkhorn with epsilon-scaling (as geomloss): eps starts at the largest cost and halves
    down to the target, one update per stage; then at most ``iters`` updates at the target eps, stopped
    once the potential f moves by less than ``tol``.
    """
    cost = (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1) / (2.0 * x.shape[1])
    log_a = torch.full((x.shape[0],), -math.log(x.shape[0]), dtype=x.dtype, device=x.device)
    log_b = torch.full((y.shape[0],), -math.log(y.shape[0]), dtype=x.dtype, device=x.device)

    def update(f: torch.Tensor, g: torch.Tensor, e: float) -> tuple[torch.Tensor, torch.Tensor]:
        f = -e * torch.logsumexp(log_b.unsqueeze(0) + (g.unsqueeze(0) - cost) / e, dim=1)
        g = -e * torch.logsumexp(log_a.unsqueeze(1) + (f.unsqueeze(1) - cost) / e, dim=0)
        return f, g

    f, g = torch.zeros_like(log_a), torch.zeros_like(log_b)
    start = max(float(cost.detach().max()), eps)
    for k in range(max(int(math.ceil(math.log2(start / eps))), 0)):
        f, g = update(f, g, start * 0.5**k)
    for i in range(iters):
        f_old = f
        f, g = update(f, g, eps)
        if i % 10 == 9 and float((f - f_old).detach().abs().max()) < tol:
            break
    return (log_a.exp() * f).sum() + (log_b.exp() * g).sum()


def sinkhorn_divergence(
    x: torch.Tensor, y: torch.Tensor, blur: float = 0.05, iters: int = 2000, tol: float = 1e-9
) -> torch.Tensor:
    r"""Debiased Sinkhorn divergence S_eps(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2
    (Feydy et al., AISTATS 2019) between uniform point clouds, eps = blur^2 (geomloss's convention),
    ground cost ||x - y||^2 / (2 d). Non-negative, 0 iff the clouds coincide. Iterates until the
    potentials move by less than ``tol`` (at most ``iters`` updates).
    """
    check_ndim("x", x, 2, "(n, d)")
    check_ndim("y", y, 2, "(m, d)")
    if x.shape[1] != y.shape[1]:
        raise LossShapeError(f"point clouds must share their dimension, got {x.shape[1]} and {y.shape[1]}")
    eps = blur**2
    ot = _entropic_ot(x, y, eps, iters, tol)
    return ot - 0.5 * (_entropic_ot(x, x, eps, iters, tol) + _entropic_ot(y, y, eps, iters, tol))


class PULASkiLoss(nn.Module):
    r"""PULASki statistical-distance loss (Chatterjee et al., 2023, "PULASki: Learning inter-rater
    variability using statistical distances to improve probabilistic segmentation").

    .. math:: L = \frac1B\sum_b S_\epsilon\Big(\tfrac1S\sum_s \delta_{\hat m_{b,s}},\
              \tfrac1R\sum_r \delta_{m_{b,r}}\Big)

    the Sinkhorn divergence between the distribution of S segmentations sampled from the probabilistic
    model and the R raters' masks of the same image, each mask a point of [0, 1]^{pixels}; this
    replaces the single-annotation reconstruction term of the Probabilistic U-Net so that the model
    learns the inter-rater spread. Own log-domain Sinkhorn (geomloss is not a dependency);
    blur = 0.05 (geomloss's default).
    """

    def __init__(self, blur: float = 0.05, iters: int = 2000):
        super().__init__()
        self.blur, self.iters = blur, iters

    def forward(self, samples: torch.Tensor, annotations: torch.Tensor) -> torch.Tensor:
        """samples (S, B, ...) foreground probabilities; annotations (R, B, ...) rater masks in [0, 1]."""
        if samples.dim() < 3 or annotations.dim() < 3 or samples.shape[1:] != annotations.shape[1:]:
            raise LossShapeError(
                f"samples (S, B, ...) and annotations (R, B, ...) must share (B, ...), got "
                f"{tuple(samples.shape)} and {tuple(annotations.shape)}"
            )
        s, b = samples.shape[:2]
        xs = samples.reshape(s, b, -1)
        ys = annotations.to(samples.dtype).reshape(annotations.shape[0], b, -1)
        per = [sinkhorn_divergence(xs[:, i], ys[:, i], self.blur, self.iters) for i in range(b)]
        return torch.stack(per).mean()
