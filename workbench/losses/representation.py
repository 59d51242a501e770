"""Representation metrics and information-theoretic losses: RankMe and Cauchy–Schwarz divergences."""

from __future__ import annotations

import torch
from torch import nn

from ._common import LossShapeError, check_ndim

__all__ = [
    "CSIBLoss",
    "conditional_cs_divergence",
    "cs_divergence",
    "cs_qmi",
    "gaussian_gram",
    "rankme",
]


def rankme(embeddings: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""RankMe effective rank (Garrido et al., ICML 2023, "RankMe: Assessing the downstream performance
    of pretrained self-supervised representations by their rank").

    .. math:: \mathrm{RankMe}(Z) = \exp\Big(-\sum_k p_k \log p_k\Big),\qquad
              p_k = \frac{\sigma_k(Z)}{\lVert\sigma(Z)\rVert_1} + \epsilon

    for an (N, D) embedding matrix; eps = 1e-7 as in the paper. An orthonormal basis of R^d gives d.
    """
    check_ndim("embeddings", embeddings, 2, "(N, D)")
    s = torch.linalg.svdvals(embeddings)
    p = s / s.sum().clamp_min(torch.finfo(s.dtype).tiny) + eps
    return torch.exp(-(p * torch.log(p)).sum())


def gaussian_gram(a: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian kernel matrix exp(-||a_i - b_j||^2 / (2 sigma^2)); 1-D inputs are treated as (N, 1)."""
    a = a.unsqueeze(1) if a.dim() == 1 else a
    b = b.unsqueeze(1) if b.dim() == 1 else b
    sq = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    return torch.exp(-sq / (2.0 * sigma**2))


def cs_divergence(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    r"""Cauchy–Schwarz divergence between two samples, Parzen-window estimate (Principe, 2010).

    .. math:: D_{CS}(p\Vert q) = -2\log\int pq + \log\int p^2 + \log\int q^2
              \approx \log \overline{K_{xx}} + \log \overline{K_{yy}} - 2\log \overline{K_{xy}}

    Non-negative, symmetric, 0 when the samples coincide.
    """
    return (
        gaussian_gram(x, x, sigma).mean().log()
        + gaussian_gram(y, y, sigma).mean().log()
        - 2 * gaussian_gram(x, y, sigma).mean().log()
    )


def cs_qmi(x: torch.Tensor, t: torch.Tensor, sigma_x: float = 1.0, sigma_t: float = 1.0) -> torch.Tensor:
    r"""Cauchy–Schwarz quadratic mutual information I_CS(x; t) = D_CS(p(x, t) || p(x)p(t)), estimated as

    .. math:: \log\frac1{N^2}\sum_{ij}K^x_{ij}K^t_{ij} + \log\frac1{N^4}\sum_{ij}K^x_{ij}\sum_{ij}K^t_{ij}
              - 2\log\frac1{N^3}\sum_i\Big(\sum_j K^x_{ij}\Big)\Big(\sum_j K^t_{ij}\Big)
    """
    kx, kt = gaussian_gram(x, x, sigma_x), gaussian_gram(t, t, sigma_t)
    if kx.shape != kt.shape:
        raise LossShapeError("x and t must have the same number of rows")
    n = kx.shape[0]
    joint = (kx * kt).sum() / n**2
    marg = kx.sum() * kt.sum() / n**4
    cross = (kx.sum(1) * kt.sum(1)).sum() / n**3
    return joint.log() + marg.log() - 2 * cross.log()


def conditional_cs_divergence(
    x: torch.Tensor, y: torch.Tensor, y_hat: torch.Tensor, sigma_x: float = 1.0, sigma_y: float = 1.0
) -> torch.Tensor:
    r"""Conditional CS divergence D_CS(p(y|x) || q(ŷ|x)) between the data's and the model's conditionals,
    with the kernel estimator of Yu et al. (2023, "The conditional Cauchy-Schwarz divergence"):

    .. math:: \log\sum_j\frac{\sum_i K^x_{ji}K^{y}_{ji}}{(\sum_i K^x_{ji})^2}
            + \log\sum_j\frac{\sum_i K^x_{ji}K^{\hat y}_{ji}}{(\sum_i K^x_{ji})^2}
            - \log\sum_j\frac{\sum_i K^x_{ji}K^{y\hat y}_{ji}}{(\sum_i K^x_{ji})^2}
            - \log\sum_j\frac{\sum_i K^x_{ji}K^{\hat y y}_{ji}}{(\sum_i K^x_{ji})^2}

    with K^{y ŷ}_{ji} = kappa(y_j - ŷ_i). It vanishes when ŷ = y.
    """
    kx = gaussian_gram(x, x, sigma_x)
    denom = kx.sum(1).pow(2)

    def term(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((kx * gaussian_gram(a, b, sigma_y)).sum(1) / denom).sum().log()

    return term(y, y) + term(y_hat, y_hat) - term(y, y_hat) - term(y_hat, y)


class CSIBLoss(nn.Module):
    r"""Cauchy–Schwarz divergence information bottleneck for regression (Yu et al., ICLR 2024,
    "Cauchy-Schwarz Divergence Information Bottleneck for Regression").

    .. math:: L = D_{CS}\big(p(y|x)\,\Vert\,q_\theta(\hat y|x)\big) + \beta\, I_{CS}(x; t)

    prediction term by :func:`conditional_cs_divergence`, compression term by :func:`cs_qmi` on the
    bottleneck representation t. beta = 0.01 (the paper tunes it per data set); kernel widths are
    fixed arguments (the paper uses Silverman-style rules of thumb).
    """

    def __init__(self, beta: float = 0.01, sigma_x: float = 1.0, sigma_t: float = 1.0, sigma_y: float = 1.0):
        super().__init__()
        self.beta, self.sigma_x, self.sigma_t, self.sigma_y = beta, sigma_x, sigma_t, sigma_y

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        """Loss from inputs x (N, Dx), bottleneck t (N, Dt), targets y and predictions y_hat (N,) or (N, Dy)."""
        if not (x.shape[0] == t.shape[0] == y.shape[0] == y_hat.shape[0]):
            raise LossShapeError("x, t, y and y_hat must have the same number of rows")
        if y.shape != y_hat.shape:
            raise LossShapeError(
                f"y {tuple(y.shape)} and y_hat {tuple(y_hat.shape)} must have the same shape"
            )
        pred = conditional_cs_divergence(x, y, y_hat, self.sigma_x, self.sigma_y)
        return pred + self.beta * cs_qmi(x, t, self.sigma_x, self.sigma_t)
