r"""Poincaré-ball operations and the Hyp-OC losses Hyp-PC (hyperbolic pairwise confusion) and Hyp-CE.

Ball of curvature -c (c > 0): {x : c ||x||^2 < 1}. Formulas from Ganea, Bécigneul & Hofmann (NeurIPS
2018, "Hyperbolic Neural Networks"):

- Möbius addition  x ⊕ y = ((1 + 2c<x,y> + c||y||^2) x + (1 - c||x||^2) y) / (1 + 2c<x,y> + c^2||x||^2||y||^2)
- exponential map at 0  exp_0(v) = tanh(sqrt(c)||v||) v / (sqrt(c)||v||)
- distance  d_c(x, y) = (2 / sqrt(c)) artanh(sqrt(c) ||-x ⊕ y||)

The losses are those of Hyp-OC (Narayan & Patel, 2024, "Hyp-OC: Hyperbolic One Class Classification for
Face Anti-Spoofing"; official code Kartik-3004/hyp-oc, which builds on the ``hyptorch`` package of
Khrulkov et al.). The numerical guards follow that code so that values agree with it: Möbius addition
divides by (denominator + 1e-5), norms are clamped at 1e-5, points are projected to radius
(1 - 1e-3)/sqrt(c), and the Hyp-OC defaults are c = 0.1 and a Euclidean clipping radius of 2. A Hyp-OC
training step, as in the official ``train.py``::

    to_ball = ToPoincare(dim)                      # clip to radius 2, exp map at a learned base point
    hyp_ce, hyp_pc = HypCELoss(dim, 2), HypPCLoss()
    z = to_ball(torch.cat([real, pseudo_negative]))  # pseudo-negatives: Gaussian around a running mean
    loss = hyp_ce(z, labels) + hyp_pc(z[: len(real)])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_embeddings_labels, check_ndim, check_reduction

__all__ = [
    "HypCELoss",
    "HypPCLoss",
    "HyperbolicMLR",
    "ToPoincare",
    "expmap",
    "expmap0",
    "logmap0",
    "mobius_add",
    "poincare_distance",
    "project",
]

_MIN_NORM = 1e-5  # hyptorch clamps every norm it divides by at 1e-5
_MOBIUS_EPS = 1e-5  # hyptorch adds 1e-5 to the Möbius-addition denominator
_TANH_CLAMP = 15.0


def _artanh(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(-1 + 1e-7, 1 - 1e-7)
    return 0.5 * (torch.log1p(x) - torch.log1p(-x))


def _tanh(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-_TANH_CLAMP, _TANH_CLAMP).tanh()


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: float = 1.0, eps: float = _MOBIUS_EPS) -> torch.Tensor:
    """Möbius addition x ⊕_c y (broadcasts over leading dims).

    ``eps`` is added to the denominator as in the official Hyp-OC / hyptorch code (default 1e-5); pass
    ``eps=0`` for the exact operation (the denominator is positive for points of the ball).
    """
    xy = (x * y).sum(-1, keepdim=True)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    den = 1 + 2 * c * xy + c * c * x2 * y2
    return num / (den + eps)


def expmap0(v: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Exponential map at the origin: tangent vector -> point of the ball."""
    sc = math.sqrt(c)
    norm = v.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return _tanh(sc * norm) * v / (sc * norm)


def expmap(x: torch.Tensor, u: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Exponential map at the point ``x`` of the ball: x ⊕ tanh(sqrt(c) lambda_x ||u|| / 2) u / (sqrt(c)||u||)."""
    sc = math.sqrt(c)
    u_norm = u.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    lam = 2.0 / (1 - c * (x * x).sum(-1, keepdim=True))
    return mobius_add(x, _tanh(sc / 2 * lam * u_norm) * u / (sc * u_norm), c)


def logmap0(x: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Logarithmic map at the origin (inverse of :func:`expmap0`)."""
    sc = math.sqrt(c)
    norm = x.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return _artanh(sc * norm) * x / (sc * norm)


def project(x: torch.Tensor, c: float = 1.0, eps: float = 1e-3) -> torch.Tensor:
    """Pull points back inside the ball of radius (1 - eps)/sqrt(c) (hyptorch's eps = 1e-3)."""
    max_norm = (1 - eps) / math.sqrt(c)
    norm = x.norm(dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return torch.where(norm > max_norm, x / norm * max_norm, x)


def poincare_distance(
    x: torch.Tensor, y: torch.Tensor, c: float = 1.0, variant: str = "artanh", eps: float = _MOBIUS_EPS
) -> torch.Tensor:
    """Geodesic distance (2/sqrt(c)) artanh(sqrt(c)||-x ⊕ y||).

    ``variant='atan'`` puts atan where the formula has artanh, as the official Hyp-OC ``TPC_loss_hyp``
    does; it agrees with the geodesic distance to first order near 0 but is bounded by pi/sqrt(c), so it
    is not the metric of the ball. ``eps`` is that of :func:`mobius_add`.
    """
    if variant not in ("artanh", "atan"):
        raise ValueError(f"variant must be 'artanh' or 'atan', got {variant!r}")
    sc = math.sqrt(c)
    r = sc * mobius_add(-x, y, c, eps).norm(dim=-1)
    inner = _artanh(r) if variant == "artanh" else torch.atan(r)
    return 2.0 / sc * inner


class _RiemannianGradient(torch.autograd.Function):
    """Identity whose backward rescales the gradient by the inverse metric (1 - c||x||^2)^2 / 4."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, c: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.c = c
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        scale = (1 - ctx.c * x.pow(2).sum(-1, keepdim=True)).pow(2) / 4
        return grad * scale, None


class ToPoincare(nn.Module):
    """Map Euclidean features (N, D) to the Poincaré ball as Hyp-OC does (hyptorch ``ToPoincare``).

    Features are first clipped to Euclidean norm ``clip_r`` (Guo et al., CVPR 2022, "Clipped hyperbolic
    classifiers are super-hyperbolic classifiers"; x * min(1, r / (||x|| + 1e-5))), then mapped by the
    exponential map at a learned base point exp_0(x_p) (``train_x``; x_p starts at 0, so the map starts
    as exp_0) and projected into the ball. With ``riemannian`` the backward pass rescales the gradient
    by (1 - c||z||^2)^2 / 4 (a Riemannian gradient step, as hyptorch does): the forward value is
    unchanged but the gradient is deliberately not the Euclidean one. Defaults are Hyp-OC's: c = 0.1,
    clip_r = 2, train_x and riemannian on.
    """

    def __init__(
        self,
        dim: int,
        c: float = 0.1,
        clip_r: float | None = 2.0,
        train_x: bool = True,
        riemannian: bool = True,
    ):
        super().__init__()
        self.c, self.clip_r, self.riemannian = c, clip_r, riemannian
        self.xp = nn.Parameter(torch.zeros(dim)) if train_x else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Points (N, D) of the ball for Euclidean features (N, D)."""
        if self.clip_r is not None:
            norm = x.norm(dim=-1, keepdim=True) + 1e-5
            x = x * torch.clamp(self.clip_r / norm, max=1.0)
        if self.xp is not None:
            base = project(expmap0(self.xp.to(x.dtype), self.c), self.c)
            z = project(expmap(base, x, self.c), self.c)
        else:
            z = project(expmap0(x, self.c), self.c)
        return _RiemannianGradient.apply(z, self.c) if self.riemannian else z


class HyperbolicMLR(nn.Module):
    r"""Hyperbolic multinomial logistic regression (Ganea et al., NeurIPS 2018), hyptorch parametrisation.

    .. math:: \zeta_k(x) = \frac{\lambda_{p_k}\lVert a_k\rVert}{\sqrt c}
              \operatorname{asinh}\!\Big(\frac{2\sqrt c\,\langle -p_k \oplus x, a_k\rangle}
              {(1 - c\lVert -p_k\oplus x\rVert^2)\lVert a_k\rVert}\Big),\qquad
              \lambda_p = \frac{2}{1 - c\lVert p\rVert^2}

    p_k = exp_0(p'_k) is the class hyperplane's offset on the ball and a_k = (1 - c||p_k||^2) a'_k its
    normal, the tangent vector a'_k at the origin transported to p_k; p' and a' are the parameters
    (``p_tangent``, ``a``; both start Kaiming-uniform as in hyptorch). Möbius addition carries the
    official 1e-5 epsilon; asinh is torch's (hyptorch's log(x + sqrt(1 + x^2)) loses precision for
    large negative arguments).
    """

    def __init__(self, dim: int, num_classes: int, c: float = 1.0):
        super().__init__()
        self.c = c
        self.p_tangent = nn.Parameter(torch.empty(num_classes, dim))
        self.a = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.kaiming_uniform_(self.p_tangent, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) of points x (N, D) on the ball."""
        c, sc = self.c, math.sqrt(self.c)
        p = expmap0(self.p_tangent.to(x.dtype), c)  # (C, D)
        p2 = (p * p).sum(-1)
        a = self.a.to(x.dtype) * (1 - c * p2).unsqueeze(1)
        diff = mobius_add(-p.unsqueeze(0), x.unsqueeze(1), c)  # (N, C, D)
        a_norm = a.norm(dim=-1)  # (C,)
        lam_p = 2.0 / (1 - c * p2)
        num = 2 * sc * (diff * a).sum(-1)
        den = (1 - c * (diff * diff).sum(-1)) * a_norm
        return lam_p * a_norm / sc * torch.asinh(num / den)


class HypCELoss(nn.Module):
    """Hyp-CE (Hyp-OC): cross-entropy on the hyperbolic-MLR logits of points of the ball.

    In Hyp-OC the points are :class:`ToPoincare` images of the real features (label 0) and of the
    pseudo-negatives (label 1), so ``num_classes`` = 2 and c = 0.1 by default. Pass ``on_ball=False``
    to map Euclidean features by exp_0 (and project) first.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int = 2,
        c: float = 0.1,
        on_ball: bool = True,
        reduction: str = "mean",
    ):
        super().__init__()
        self.mlr, self.c, self.on_ball = HyperbolicMLR(dim, num_classes, c), c, on_ball
        self.reduction = check_reduction(reduction)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Hyperbolic cross-entropy of (N, D) points (or features) against (N,) labels."""
        check_embeddings_labels(features, labels)
        x = features if self.on_ball else project(expmap0(features, self.c), self.c)
        return F.cross_entropy(self.mlr(x), labels.long(), reduction=self.reduction)


class HypPCLoss(nn.Module):
    r"""Hyp-PC: hyperbolic pairwise confusion loss of Hyp-OC (official ``TPC_loss_hyp``).

    .. math:: L = \frac1N \sum_{i=1}^{N/2} d(z_i, z_{i+N/2})

    The N real-face points of the batch (points of the ball, e.g. :class:`ToPoincare` outputs; the
    pseudo-negatives are not passed) are split into a first and a second half and each point is pulled
    towards its partner in the other half, which makes the real class compact (pairwise confusion,
    Dubey et al., ECCV 2018). N must be even. 'mean' divides the sum over the N/2 pairs by N, the batch
    size, as the official code does; 'none' returns the N/2 pair distances.

    ``distance='atan'`` (default) is the official code's 2/sqrt(c) atan(sqrt(c)||-x ⊕ y||);
    ``distance='artanh'`` uses the geodesic distance instead (see :func:`poincare_distance`).
    """

    def __init__(self, c: float = 0.1, distance: str = "atan", on_ball: bool = True, reduction: str = "mean"):
        super().__init__()
        if distance not in ("atan", "artanh"):
            raise ValueError(f"distance must be 'atan' or 'artanh', got {distance!r}")
        self.c, self.distance, self.on_ball = c, distance, on_ball
        self.reduction = check_reduction(reduction)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Pairwise-confusion loss of (N, D) points of the ball, N even."""
        check_ndim("features", features, 2, "(N, D)")
        n = features.shape[0]
        if n < 2 or n % 2:
            raise LossShapeError(
                f"Hyp-PC pairs the first and second half of the batch: N must be even, got {n}"
            )
        z = features if self.on_ball else project(expmap0(features, self.c), self.c)
        d = poincare_distance(z[: n // 2], z[n // 2 :], self.c, self.distance)
        if self.reduction == "none":
            return d
        return d.sum() / n if self.reduction == "mean" else d.sum()
