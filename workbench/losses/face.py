"""Face-recognition losses on cosine logits: SFace, the ArcFace / CosFace margin heads, and UNPG."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    LossShapeError,
    check_embeddings_labels,
    check_logits_targets,
    check_reduction,
    one_hot,
    reduce,
)

__all__ = [
    "MarginHead",
    "SFaceLoss",
    "UNPGLoss",
    "arcface_logits",
    "cosface_logits",
    "iqr_filter",
    "negative_pair_similarities",
    "sface_loss",
    "sface_weights",
    "unpg_loss",
]


def _cosine_logits(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.linear(F.normalize(embeddings, dim=1), F.normalize(weight.to(embeddings.dtype), dim=1))


def sface_weights(
    cosine: torch.Tensor, labels: torch.Tensor, k: float = 80.0, a: float = 0.80, b: float = 1.23
) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached SFace re-scaling weights: intra sigma(k(theta_y - a)) (N,), inter sigma(-k(theta_j - b)) (N, C)."""
    with torch.no_grad():
        theta = torch.acos(cosine.clamp(-1.0, 1.0))
        theta_y = theta.gather(1, labels.long().unsqueeze(1)).squeeze(1)
        return torch.sigmoid(k * (theta_y - a)), torch.sigmoid(-k * (theta - b))


def sface_loss(
    cosine: torch.Tensor,
    labels: torch.Tensor,
    s: float = 64.0,
    k: float = 80.0,
    a: float = 0.80,
    b: float = 1.23,
    weights: tuple[torch.Tensor, torch.Tensor] | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""SFace loss (Zhong et al., IEEE TIP 2021, "SFace: Sigmoid-Constrained Hypersphere Loss for
    Robust Face Recognition"; official code zhongyy/SFace ``SFaceLoss``).

    .. math:: L = -\mathrm{sg}\big[\sigma(k(\theta_{y} - a))\big]\, s\cos\theta_y
              + \sum_{j\ne y} \mathrm{sg}\big[\sigma(-k(\theta_j - b))\big]\, s\cos\theta_j

    sg is stop-gradient: the sigmoid weights only shape the gradient (intra-class pull fades once
    theta_y < a, inter-class push fades once theta_j > b). Defaults s = 64, k = 80, a = 0.8, b = 1.23.
    ``cosine`` is the (N, C) matrix cos(x, W_c); pass ``weights`` to hold the weights fixed.
    """
    check_logits_targets(cosine, labels)
    w_intra, w_inter = weights if weights is not None else sface_weights(cosine, labels, k, a, b)
    y = one_hot(labels, cosine.shape[1], cosine)
    intra = -w_intra.detach() * s * (cosine * y).sum(dim=1)
    inter = (w_inter.detach() * (1 - y) * s * cosine).sum(dim=1)
    return reduce(intra + inter, reduction)


class SFaceLoss(nn.Module):
    """SFace head + loss: a (C, D) class-weight matrix and :func:`sface_loss` on the cosines.

    The weights start as in the official code (normal, std = 2 sqrt(2 / C)).
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        s: float = 64.0,
        k: float = 80.0,
        a: float = 0.80,
        b: float = 1.23,
        reduction: str = "mean",
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=2.0 * math.sqrt(2.0 / num_classes))
        self.s, self.k, self.a, self.b = s, k, a, b
        self.reduction = check_reduction(reduction)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: None = None
    ) -> torch.Tensor:
        """SFace loss of (N, D) embeddings against (N,) labels."""
        check_embeddings_labels(embeddings, labels)
        cosine = _cosine_logits(embeddings, self.weight)
        return sface_loss(cosine, labels, self.s, self.k, self.a, self.b, reduction=self.reduction)


def negative_pair_similarities(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cosine similarities of all different-label pairs i < j of the batch (1-D)."""
    x = F.normalize(embeddings, dim=1)
    sim = x @ x.t()
    neg = (labels.unsqueeze(0) != labels.unsqueeze(1)).triu(diagonal=1)
    return sim[neg]


def iqr_filter(values: torch.Tensor, whisker: float = 1.5) -> torch.Tensor:
    """Box-and-whisker filter of the official UNPG code: keep v in [Q1 - w IQR, Q3 + w IQR].

    Q1, Q3 are the sorted values at positions int(0.25 l) and int(0.75 l), as in the official code.
    """
    if values.numel() == 0:
        return values
    sorted_v = torch.sort(values).values
    n = sorted_v.numel()
    q1, q3 = sorted_v[int(0.25 * n)], sorted_v[int(0.75 * n)]
    iqr = q3 - q1
    keep = (sorted_v >= q1 - whisker * iqr) & (sorted_v <= q3 + whisker * iqr)
    return sorted_v[keep]


def unpg_loss(
    margin_cosine: torch.Tensor,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    s: float = 64.0,
    whisker: float = 1.5,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""UNPG: unified negative pair generation (Jung et al., 2022, "Unified Negative Pair Generation toward
    Well-discriminative Feature Space for Face Recognition"; official code Jung-Jun-Uk/UNPG).

    .. math:: L_i = -\log \frac{e^{s\,\phi(\theta_{y_i})}}{\sum_{c} e^{s\,\psi_c} + \sum_{n\in N'} e^{s\,\cos_n}}

    The margin logits of a face head (``margin_cosine``, (N, C), e.g. :class:`MarginHead`: ArcFace's
    cos(theta_y + m) or CosFace's cos(theta_y) - m at the label) are extended by the cosines N' of the batch's negative pairs that survive the box-and-whisker
    (IQR) filter; every row gets the same extra columns. s = 64, whisker = 1.5 (``unpg`` in the
    official head.zoo.yaml).
    """
    check_logits_targets(margin_cosine, labels)
    check_embeddings_labels(embeddings, labels)
    extra = iqr_filter(negative_pair_similarities(embeddings, labels), whisker).to(margin_cosine.dtype)
    logits = torch.cat([margin_cosine, extra.unsqueeze(0).expand(margin_cosine.shape[0], -1)], dim=1)
    return F.cross_entropy(s * logits, labels.long(), reduction=reduction)


_DEFAULT_MARGIN = {"arcface": 0.5, "cosface": 0.35}


def arcface_logits(cosine: torch.Tensor, labels: torch.Tensor, m: float = 0.5) -> torch.Tensor:
    """ArcFace margin (Deng et al., CVPR 2019): cos(theta_y + m) at the label column, cos(theta_c) elsewhere.

    As the official UNPG ``ArcFace`` head: no easy-margin or threshold fallback; cosines are clamped to
    [-1 + 1e-7, 1 - 1e-7] before acos so that the gradient stays finite at |cos| = 1.
    """
    check_logits_targets(cosine, labels)
    theta = torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
    return torch.cos(theta + m * one_hot(labels, cosine.shape[1], cosine))


def cosface_logits(cosine: torch.Tensor, labels: torch.Tensor, m: float = 0.35) -> torch.Tensor:
    """CosFace / large-margin cosine margin (Wang et al., CVPR 2018): cos(theta_y) - m at the label column.

    m = 0.35 is the CosFace paper's margin and the default of the reference ``CosFace`` classes of the
    official UNPG (Jung-Jun-Uk/UNPG) and SFace (zhongyy/SFace) code.
    """
    check_logits_targets(cosine, labels)
    return cosine - m * one_hot(labels, cosine.shape[1], cosine)


class MarginHead(nn.Module):
    """Cosine classifier with an ArcFace or CosFace margin: a (C, D) weight matrix, returns margin cosines.

    Multiply by the scale s and apply cross-entropy for the plain ArcFace / CosFace loss, or pass the
    output to :func:`unpg_loss`. ``m=None`` takes the margin of ``kind`` (ArcFace 0.5, CosFace 0.35).
    Weights start Xavier-uniform, as in the official heads.
    """

    def __init__(self, embedding_size: int, num_classes: int, kind: str = "arcface", m: float | None = None):
        super().__init__()
        if kind not in _DEFAULT_MARGIN:
            raise ValueError(f"kind must be 'arcface' or 'cosface', got {kind!r}")
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.xavier_uniform_(self.weight)
        self.kind, self.m = kind, _DEFAULT_MARGIN[kind] if m is None else m

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, C) margin cosines of (N, D) embeddings with (N,) labels."""
        check_embeddings_labels(embeddings, labels)
        if embeddings.shape[1] != self.weight.shape[1]:
            raise LossShapeError(
                f"embeddings have {embeddings.shape[1]} dims, the head {self.weight.shape[1]}"
            )
        cosine = _cosine_logits(embeddings, self.weight)
        fn = arcface_logits if self.kind == "arcface" else cosface_logits
        return fn(cosine, labels, self.m)


class UNPGLoss(nn.Module):
    """UNPG on an ArcFace (default) or CosFace margin head: :class:`MarginHead` + :func:`unpg_loss`.

    Defaults as the official UNPG code (``head.zoo.yaml``): s = 64, whisker 1.5, ArcFace m = 0.5. For
    ``head='cosface'`` the margin defaults to 0.35 (the CosFace paper and the official ``CosFace`` class
    default); the official yaml sets m = 0.5 for CosFace too, so pass ``m=0.5`` to reproduce that run.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        s: float = 64.0,
        m: float | None = None,
        whisker: float = 1.5,
        head: str = "arcface",
        reduction: str = "mean",
    ):
        super().__init__()
        self.head = MarginHead(embedding_size, num_classes, head, m)
        self.s, self.whisker = s, whisker
        self.reduction = check_reduction(reduction)

    @property
    def weight(self) -> nn.Parameter:
        """The head's (C, D) class-weight matrix."""
        return self.head.weight

    @property
    def m(self) -> float:
        """The head's margin."""
        return self.head.m

    def margin_cosine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The head's margin logits (cos(theta_y + m) for ArcFace, cos(theta_y) - m for CosFace)."""
        return self.head(embeddings, labels)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: None = None
    ) -> torch.Tensor:
        """UNPG loss of (N, D) embeddings against (N,) labels."""
        mc = self.margin_cosine(embeddings, labels)
        return unpg_loss(mc, embeddings, labels, self.s, self.whisker, self.reduction)
