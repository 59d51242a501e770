r"""Poincaré-ball operations and the hyperbolic losses Hyp-PC (predictive coding) and Hyp-CE.

Ball of curvature -c (c > 0): {x : c ||x||^2 < 1}. Formulas from Ganea, Bécigneul & Hofmann (NeurIPS
2018, "Hyperbolic Neural Networks"):

- Möbius addition  x ⊕ y = ((1 + 2c<x,y> + c||y||^2) x + (1 - c||x||^2) y) / (1 + 2c<x,y> + c^2||x||^2||y||^2)
- exponential map at 0  exp_0(v) = tanh(sqrt(c)||v||) v / (sqrt(c)||v||)
- distance  d_c(x, y) = (2 / sqrt(c)) artanh(sqrt(c) ||-x ⊕ y||)

Note on the official code: the issue reports that the official Hyp-PC code computes the distance with
``atan`` where the formula has ``artanh`` (we could not locate that file; cvlab-columbia/hyperfuture's
``poincare_distance`` uses the equivalent, correct arcosh form). Both agree to first order near 0, but
2 atan(r) is bounded by pi/2 while 2 artanh(r) diverges at the boundary, so the atan variant is not a
metric of the ball and flattens exactly the region hyperbolic embeddings use for hierarchy. We
implement the correct artanh distance; ``poincare_distance(..., variant="atan")`` reproduces the other
one for comparison only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_embeddings_labels, check_ndim, check_reduction, check_same_shape

__all__ = [
    "HypCELoss",
    "HypPCLoss",
    "HyperbolicMLR",
    "expmap0",
    "logmap0",
    "mobius_add",
    "poincare_distance",
    "project",
]

_MIN_NORM = 1e-15


def _artanh(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(-1 + 1e-7, 1 - 1e-7)
    return 0.5 * (torch.log1p(x) - torch.log1p(-x))


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Möbius addition x ⊕_c y (broadcasts over leading dims)."""
    xy = (x * y).sum(-1, keepdim=True)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    den = 1 + 2 * c * xy + c * c * x2 * y2
    return num / den.clamp_min(_MIN_NORM)


def expmap0(v: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Exponential map at the origin: tangent vector -> point of the ball."""
    sc = math.sqrt(c)
    norm = v.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return torch.tanh(sc * norm) * v / (sc * norm)


def logmap0(x: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Logarithmic map at the origin (inverse of :func:`expmap0`)."""
    sc = math.sqrt(c)
    norm = x.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return _artanh(sc * norm) * x / (sc * norm)


def project(x: torch.Tensor, c: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """Pull points back inside the ball of radius (1 - eps)/sqrt(c)."""
    max_norm = (1 - eps) / math.sqrt(c)
    norm = x.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return torch.where(norm > max_norm, x / norm * max_norm, x)


def poincare_distance(
    x: torch.Tensor, y: torch.Tensor, c: float = 1.0, variant: str = "artanh"
) -> torch.Tensor:
    """Geodesic distance (2/sqrt(c)) artanh(sqrt(c)||-x ⊕ y||); ``variant='atan'`` is the flawed one."""
    if variant not in ("artanh", "atan"):
        raise ValueError(f"variant must be 'artanh' or 'atan', got {variant!r}")
    sc = math.sqrt(c)
    r = sc * mobius_add(-x, y, c).norm(dim=-1)
    inner = _artanh(r) if variant == "artanh" else torch.atan(r)
    return 2.0 / sc * inner


class HyperbolicMLR(nn.Module):
    r"""Hyperbolic multinomial logistic regression (Ganea et al., NeurIPS 2018).

    .. math:: \zeta_k(x) = \frac{\lambda_{p_k}\lVert a_k\rVert}{\sqrt c}
              \operatorname{asinh}\!\Big(\frac{2\sqrt c\,\langle -p_k \oplus x, a_k\rangle}
              {(1 - c\lVert -p_k\oplus x\rVert^2)\lVert a_k\rVert}\Big),\qquad
              \lambda_p = \frac{2}{1 - c\lVert p\rVert^2}

    p_k = exp_0(p'_k) is the class hyperplane's offset on the ball, a_k its normal.
    """

    def __init__(self, dim: int, num_classes: int, c: float = 1.0):
        super().__init__()
        self.c = c
        self.p_tangent = nn.Parameter(torch.empty(num_classes, dim))
        self.a = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.p_tangent, std=0.01)
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) of points x (N, D) on the ball."""
        c, sc = self.c, math.sqrt(self.c)
        p = expmap0(self.p_tangent.to(x.dtype), c)  # (C, D)
        a = self.a.to(x.dtype)
        diff = mobius_add(-p.unsqueeze(0), x.unsqueeze(1), c)  # (N, C, D)
        a_norm = a.norm(dim=-1).clamp_min(_MIN_NORM)  # (C,)
        lam_p = 2.0 / (1 - c * (p * p).sum(-1)).clamp_min(_MIN_NORM)
        num = 2 * sc * (diff * a).sum(-1)
        den = (1 - c * (diff * diff).sum(-1)).clamp_min(_MIN_NORM) * a_norm
        return lam_p * a_norm / sc * torch.asinh(num / den)


class HypCELoss(nn.Module):
    """Hyp-CE: cross-entropy on hyperbolic-MLR logits of features mapped to the ball by exp_0.

    Set ``on_ball=True`` when the features already are points of the ball.
    """

    def __init__(
        self, dim: int, num_classes: int, c: float = 1.0, on_ball: bool = False, reduction: str = "mean"
    ):
        super().__init__()
        self.mlr, self.c, self.on_ball = HyperbolicMLR(dim, num_classes, c), c, on_ball
        self.reduction = check_reduction(reduction)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Hyperbolic cross-entropy of (N, D) features against (N,) labels."""
        check_embeddings_labels(features, labels)
        x = features if self.on_ball else expmap0(features, self.c)
        x = project(x, self.c)
        return F.cross_entropy(self.mlr(x), labels.long(), reduction=self.reduction)


class HypPCLoss(nn.Module):
    r"""Hyp-PC: hyperbolic predictive coding (Surís, Liu & Vondrick, CVPR 2021, "Learning the
    Predictability of the Future"; code cvlab-columbia/hyperfuture).

    .. math:: \ell_i = -\log\frac{\exp(-\phi(d_c(\hat z_i, z_i)))}{\sum_j \exp(-\phi(d_c(\hat z_i, z_j)))}

    a contrastive (CPC) loss whose score is minus a function phi of the Poincaré distance between the
    predicted future ẑ_i and the true futures z_j (the true one is the positive). phi is 'squared'
    (d^2), 'plain' (d) or 'cosh' (cosh(d)^2), the options of the official code; default 'squared'.
    Inputs are Euclidean features mapped by exp_0 unless ``on_ball``.
    """

    def __init__(
        self,
        c: float = 1.0,
        score: str = "squared",
        on_ball: bool = False,
        variant: str = "artanh",
        reduction: str = "mean",
    ):
        super().__init__()
        if score not in ("squared", "plain", "cosh"):
            raise ValueError(f"score must be 'squared', 'plain' or 'cosh', got {score!r}")
        self.c, self.score, self.on_ball, self.variant = c, score, on_ball, variant
        self.reduction = check_reduction(reduction)

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of (N, D) predictions against their (N, D) targets (row i is the positive of row i)."""
        check_ndim("predicted", predicted, 2, "(N, D)")
        check_same_shape("predicted", predicted, "target", target)
        if predicted.shape[0] < 2:
            raise LossShapeError("Hyp-PC needs at least 2 rows (the other rows are the negatives)")
        p = predicted if self.on_ball else expmap0(predicted, self.c)
        t = target if self.on_ball else expmap0(target, self.c)
        p, t = project(p, self.c), project(t, self.c)
        d = poincare_distance(p.unsqueeze(1), t.unsqueeze(0), self.c, self.variant)
        phi = {"squared": d.pow(2), "plain": d, "cosh": torch.cosh(d).pow(2)}[self.score]
        labels = torch.arange(p.shape[0], device=p.device)
        return F.cross_entropy(-phi, labels, reduction=self.reduction)
