"""Deep metric-learning losses with pytorch-metric-learning's v2 calling convention, and Metrix.

Every loss is called as ``loss(embeddings, labels, indices_tuple=None)`` like pytorch-metric-learning
(PML) v2, with PML's default distance, hyperparameters and reducer, so the values are equal on the
same inputs. Internally each pair/proxy loss is written for *soft* labels y in [0, 1] (1 = same
class), which is what Metrix (mixup for metric learning) needs; hard labels give the classic loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_embeddings_labels, check_reduction

__all__ = [
    "ContrastiveLoss",
    "MetrixLoss",
    "MultiSimilarityLoss",
    "NormalizedSoftmaxLoss",
    "ProxyAnchorLoss",
    "TripletMarginLoss",
    "pairwise_l2",
]


def pairwise_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix of L2-normalised rows (PML's default LpDistance)."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    sq = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    return sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()


def _avg_non_zero(values: torch.Tensor) -> torch.Tensor:
    """PML's AvgNonZeroReducer: mean of the strictly positive entries, 0 if there are none."""
    keep = values > 0
    if not bool(keep.any()):
        return values.sum() * 0.0
    return values[keep].mean()


def _log1p_weighted_sum_exp(x: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    """log(1 + sum_j w_j exp(x_j)) along ``dim`` for weights w >= 0 (w = 0 drops the term)."""
    logw = torch.where(w > 0, w.clamp_min(torch.finfo(x.dtype).tiny).log(), torch.full_like(w, float("-inf")))
    terms = torch.where(w > 0, x + logw, torch.full_like(x, float("-inf")))
    zeros = torch.zeros_like(terms.narrow(dim, 0, 1))
    return torch.logsumexp(torch.cat([terms, zeros], dim=dim), dim=dim)


def _pair_masks(labels: torch.Tensor, indices_tuple: tuple | None, like: torch.Tensor):
    """Soft-label matrix Y (1 = positive pair) and validity mask from labels or mined indices."""
    n = labels.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=labels.device)
    if indices_tuple is None:
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        return same.to(like.dtype), ~eye
    pos = torch.zeros(n, n, dtype=torch.bool, device=labels.device)
    neg = torch.zeros_like(pos)
    if len(indices_tuple) == 3:
        a, p, ng = indices_tuple
        pos[a, p], neg[a, ng] = True, True
    elif len(indices_tuple) == 4:
        a1, p, a2, ng = indices_tuple
        pos[a1, p], neg[a2, ng] = True, True
    else:
        raise LossShapeError("indices_tuple must be (anchors, positives, negatives) or (a1, p, a2, n)")
    return pos.to(like.dtype), (pos | neg) & ~eye


def _reject_indices(indices_tuple: tuple | None, name: str) -> None:
    if indices_tuple is not None:
        raise ValueError(f"{name} is proxy-based and takes no indices_tuple; call it with indices_tuple=None")


class ContrastiveLoss(nn.Module):
    r"""Contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006), PML defaults.

    .. math:: L = \mathrm{avg}_{>0}\big\{ y_{ij}[d_{ij} - m_p]_+ \big\}
                + \mathrm{avg}_{>0}\big\{ (1 - y_{ij})[m_n - d_{ij}]_+ \big\}

    with d the L2 distance of normalised embeddings, m_p = 0, m_n = 1, and avg_{>0} PML's
    AvgNonZeroReducer (mean of the non-zero pair losses). Soft y in [0, 1] (Metrix) weights both terms.
    reduction 'mean' is that PML reduction; 'sum' sums all pair losses; 'none' returns the (N, M)
    matrix of pair losses.
    """

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 1.0, reduction: str = "mean"):
        super().__init__()
        self.pos_margin, self.neg_margin = pos_margin, neg_margin
        self.reduction = check_reduction(reduction)

    def soft_forward(
        self, anchors: torch.Tensor, refs: torch.Tensor, y: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Loss between anchors (N, D) and references (M, D) with soft labels y (N, M)."""
        d = pairwise_l2(anchors, refs)
        pos = torch.where(valid & (y > 0), y * F.relu(d - self.pos_margin), torch.zeros_like(d))
        neg = torch.where(valid & (y < 1), (1 - y) * F.relu(self.neg_margin - d), torch.zeros_like(d))
        if self.reduction == "none":
            return pos + neg
        if self.reduction == "sum":
            return pos.sum() + neg.sum()
        return _avg_non_zero(pos[valid & (y > 0)]) + _avg_non_zero(neg[valid & (y < 1)])

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: tuple | None = None
    ) -> torch.Tensor:
        """PML-style call on (N, D) embeddings and (N,) labels."""
        check_embeddings_labels(embeddings, labels)
        y, valid = _pair_masks(labels, indices_tuple, embeddings)
        return self.soft_forward(embeddings, embeddings, y, valid)


class TripletMarginLoss(nn.Module):
    r"""Triplet margin loss (Weinberger & Saul 2009; Schroff et al. 2015), PML defaults.

    .. math:: L = \mathrm{avg}_{>0}\,[d_{ap} - d_{an} + m]_+

    over all triplets of the batch (or the mined ``indices_tuple``), L2 distance of normalised
    embeddings, margin m = 0.05. 'none' returns the per-triplet losses.
    """

    def __init__(self, margin: float = 0.05, reduction: str = "mean"):
        super().__init__()
        self.margin, self.reduction = margin, check_reduction(reduction)

    @staticmethod
    def _triplets(labels: torch.Tensor, indices_tuple: tuple | None):
        if indices_tuple is None:
            same = labels.unsqueeze(0) == labels.unsqueeze(1)
            pos = same & ~torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
            return torch.where(pos.unsqueeze(2) & ~same.unsqueeze(1))
        if len(indices_tuple) == 3:
            return indices_tuple
        if len(indices_tuple) == 4:
            a1, p, a2, n = indices_tuple
            pi, ni = torch.where(a1.unsqueeze(1) == a2)
            return a1[pi], p[pi], n[ni]
        raise LossShapeError("indices_tuple must be (anchors, positives, negatives) or (a1, p, a2, n)")

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: tuple | None = None
    ) -> torch.Tensor:
        """PML-style call on (N, D) embeddings and (N,) labels."""
        check_embeddings_labels(embeddings, labels)
        a, p, n = self._triplets(labels, indices_tuple)
        d = pairwise_l2(embeddings, embeddings)
        losses = F.relu(d[a, p] - d[a, n] + self.margin)
        if self.reduction == "none":
            return losses
        return losses.sum() if self.reduction == "sum" else _avg_non_zero(losses)


class MultiSimilarityLoss(nn.Module):
    r"""Multi-similarity loss (Wang et al., CVPR 2019), PML defaults alpha = 2, beta = 50, base = 0.5.

    .. math:: L_i = \frac1\alpha \log\Big(1 + \sum_{j} y_{ij} e^{-\alpha (S_{ij} - \lambda)}\Big)
              + \frac1\beta \log\Big(1 + \sum_{j} (1 - y_{ij}) e^{\beta (S_{ij} - \lambda)}\Big)

    with S the cosine similarity, averaged over anchors ('none' returns the per-anchor L_i). No
    mining inside the loss (PML puts it in MultiSimilarityMiner).
    """

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, reduction: str = "mean"):
        super().__init__()
        self.alpha, self.beta, self.base = alpha, beta, base
        self.reduction = check_reduction(reduction)

    def soft_forward(
        self, anchors: torch.Tensor, refs: torch.Tensor, y: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Loss between anchors (N, D) and references (M, D) with soft labels y (N, M)."""
        s = _cosine(anchors, refs)
        zero = torch.zeros_like(s)
        w_pos = torch.where(valid, y, zero)
        w_neg = torch.where(valid, 1 - y, zero)
        pos = _log1p_weighted_sum_exp(self.alpha * (self.base - s), w_pos, dim=1) / self.alpha
        neg = _log1p_weighted_sum_exp(self.beta * (s - self.base), w_neg, dim=1) / self.beta
        per = pos + neg
        if self.reduction == "none":
            return per
        return per.mean() if self.reduction == "mean" else per.sum()

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: tuple | None = None
    ) -> torch.Tensor:
        """PML-style call on (N, D) embeddings and (N,) labels."""
        check_embeddings_labels(embeddings, labels)
        y, valid = _pair_masks(labels, indices_tuple, embeddings)
        return self.soft_forward(embeddings, embeddings, y, valid)


class ProxyAnchorLoss(nn.Module):
    r"""Proxy-Anchor loss (Kim et al., CVPR 2020), PML defaults margin delta = 0.1, alpha = 32.

    .. math:: L = \frac{1}{|P^+|}\sum_{p\in P^+} \log\Big(1 + \sum_x y_{xp} e^{-\alpha (s(x,p) - \delta)}\Big)
              + \frac{1}{|P|}\sum_{p\in P} \log\Big(1 + \sum_x (1 - y_{xp}) e^{\alpha (s(x,p) + \delta)}\Big)

    with one learnable proxy per class (kaiming-normal, fan_out, as PML), s the cosine similarity and
    P+ the proxies with a positive in the batch. 'none' returns the per-proxy terms (C,).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.1,
        alpha: float = 32.0,
        reduction: str = "mean",
    ):
        super().__init__()
        self.proxies = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")
        self.num_classes, self.margin, self.alpha = num_classes, margin, alpha
        self.reduction = check_reduction(reduction)

    def soft_forward(self, embeddings: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of (N, D) embeddings with soft class memberships y (N, C)."""
        s = _cosine(embeddings, self.proxies.to(embeddings.dtype))
        pos = _log1p_weighted_sum_exp(self.alpha * (self.margin - s), y, dim=0)
        neg = _log1p_weighted_sum_exp(self.alpha * (s + self.margin), 1 - y, dim=0)
        if self.reduction == "none":
            return pos + neg
        n_pos = int((y.sum(dim=0) > 0).sum())
        if self.reduction == "sum":
            return pos.sum() + neg.sum()
        return pos.sum() / max(n_pos, 1) + neg.sum() / self.num_classes

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: tuple | None = None
    ) -> torch.Tensor:
        """PML-style call on (N, D) embeddings and (N,) labels in [0, num_classes)."""
        check_embeddings_labels(embeddings, labels)
        _reject_indices(indices_tuple, "ProxyAnchorLoss")
        if embeddings.shape[1] != self.proxies.shape[1]:
            raise LossShapeError(
                f"embeddings have {embeddings.shape[1]} dims, proxies {self.proxies.shape[1]}"
            )
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise LossShapeError(f"labels must lie in [0, {self.num_classes})")
        y = F.one_hot(labels.long(), self.num_classes).to(embeddings.dtype)
        return self.soft_forward(embeddings, y)


class NormalizedSoftmaxLoss(nn.Module):
    r"""Normalised-softmax loss (Zhai & Wu, BMVC 2019; used as the hypersphere constraint for novel
    classes by Pereira et al., 2021, "Hyperspherical embedding for novel class classification").

    .. math:: L = -\log \frac{\exp(\cos(x, w_y)/T)}{\sum_c \exp(\cos(x, w_c)/T)}, \quad T = 0.05

    Embeddings and class weights live on the unit hypersphere, so a class is a direction; novel
    classes are then classified by the nearest class mean on the sphere (``logits`` with new weights).
    Same values as PML's NormalizedSoftmaxLoss; weights are (C, D) here ((D, C) in PML).
    """

    def __init__(
        self, num_classes: int, embedding_size: int, temperature: float = 0.05, reduction: str = "mean"
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight)
        self.temperature, self.reduction = temperature, check_reduction(reduction)

    def logits(self, embeddings: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine logits / T against the class directions (or against ``weight``, e.g. novel means)."""
        w = self.weight if weight is None else weight
        return _cosine(embeddings, w.to(embeddings.dtype)) / self.temperature

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: tuple | None = None
    ) -> torch.Tensor:
        """PML-style call on (N, D) embeddings and (N,) labels."""
        check_embeddings_labels(embeddings, labels)
        _reject_indices(indices_tuple, "NormalizedSoftmaxLoss")
        return F.cross_entropy(self.logits(embeddings), labels.long(), reduction=self.reduction)


class MetrixLoss(nn.Module):
    r"""Metrix: mixup for deep metric learning (Venkataramanan et al., ICLR 2022, "It takes two to
    tango: Mixup for deep metric learning"), embedding-mixup variant.

    .. math:: L = L(X, Y) + w\, L(\tilde X, \tilde Y),\qquad
              \tilde x = \lambda x_j + (1 - \lambda) x_k,\ \lambda \sim \mathrm{Beta}(2, 2)

    for pairs (j, k) of different classes; the mixed point belongs to class(j) with weight lambda and
    to class(k) with weight 1 - lambda, and the base loss is its soft-label generalisation (Metrix
    Eqs. for contrastive, multi-similarity and Proxy-Anchor). ``base`` is a :class:`ContrastiveLoss`,
    :class:`MultiSimilarityLoss` or :class:`ProxyAnchorLoss`. Assumptions: mixing happens on the
    embeddings (the paper also mixes inputs and features, which needs the model), ``num_mix`` pairs
    (default: batch size) are drawn uniformly among different-class pairs, and w = 1.
    """

    def __init__(
        self,
        base: nn.Module,
        weight: float = 1.0,
        alpha: float = 2.0,
        num_mix: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if not isinstance(base, ContrastiveLoss | MultiSimilarityLoss | ProxyAnchorLoss):
            raise ValueError("Metrix base must be ContrastiveLoss, MultiSimilarityLoss or ProxyAnchorLoss")
        if base.reduction != "mean":
            raise ValueError("Metrix needs a base loss with reduction='mean'")
        self.base, self.weight, self.num_mix, self.alpha = base, weight, num_mix, alpha
        self.rng = np.random.default_rng(seed)

    def sample_mix(self, labels: torch.Tensor, num_mix: int):
        """Draw ``num_mix`` different-class pairs (j, k) and their mixing weights lambda ~ Beta."""
        j, k = torch.where(labels.unsqueeze(1).cpu() != labels.unsqueeze(0).cpu())
        if j.numel() == 0:
            raise LossShapeError("Metrix needs at least two classes in the batch")
        pick = torch.from_numpy(self.rng.integers(0, j.numel(), size=num_mix))
        lam = torch.from_numpy(self.rng.beta(self.alpha, self.alpha, size=num_mix))
        return j[pick].to(labels.device), k[pick].to(labels.device), lam

    def mixed_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        j: torch.Tensor,
        k: torch.Tensor,
        lam: torch.Tensor,
    ) -> torch.Tensor:
        """The soft-label base loss of the mixed embeddings lam x_j + (1 - lam) x_k."""
        lam = lam.to(embeddings.dtype).to(embeddings.device)
        mixed = lam.unsqueeze(1) * embeddings[j] + (1 - lam).unsqueeze(1) * embeddings[k]
        if isinstance(self.base, ProxyAnchorLoss):
            c = self.base.num_classes
            y = lam.unsqueeze(1) * F.one_hot(labels[j].long(), c) + (1 - lam).unsqueeze(1) * F.one_hot(
                labels[k].long(), c
            )
            return self.base.soft_forward(mixed, y.to(embeddings.dtype))
        same_j = (labels.unsqueeze(1) == labels[j].unsqueeze(0)).to(embeddings.dtype)
        same_k = (labels.unsqueeze(1) == labels[k].unsqueeze(0)).to(embeddings.dtype)
        y = lam.unsqueeze(0) * same_j + (1 - lam).unsqueeze(0) * same_k
        valid = torch.ones_like(y, dtype=torch.bool)
        return self.base.soft_forward(embeddings, mixed, y, valid)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: tuple | None = None
    ) -> torch.Tensor:
        """Clean base loss plus w times the loss on mixed embeddings."""
        check_embeddings_labels(embeddings, labels)
        clean = self.base(embeddings, labels, indices_tuple)
        j, k, lam = self.sample_mix(labels, self.num_mix or embeddings.shape[0])
        return clean + self.weight * self.mixed_loss(embeddings, labels, j, k, lam)
