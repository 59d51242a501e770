"""Few-shot metric losses: Proto-Triplet and the ICNN (inter/intra-class nearest-neighbour) loss.

Both come from "SuSana Distancia is all you need: enforcing class
separability in metric learning via two novel distance-based loss functions for few-shot image
classification" (arXiv:2305.09062); formulas follow the authors' code (``proto_triplet_loss``,
``modified_score``, ``get_icnn_loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import LossShapeError, check_embeddings_labels, check_reduction, reduce

__all__ = ["ICNNLoss", "ProtoTripletLoss", "icnn_score", "proto_triplet_loss"]

_EPS = 1e-6


def _dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances sqrt(||x - y||^2 + 1e-6), as the authors' code."""
    return ((x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1) + _EPS).sqrt()


def proto_triplet_loss(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    prototypes: torch.Tensor,
    prototype_labels: torch.Tensor,
    margin: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Proto-Triplet loss: a triplet loss whose positive is the query's class prototype and whose
    negative is the nearest prototype of another class.

    .. math:: L_q = \big[d(q, c_{y_q}) - \min_{c\ne y_q} d(q, c) + m\big]_+,\qquad m = 0.5
    """
    check_embeddings_labels(queries, query_labels)
    check_embeddings_labels(prototypes, prototype_labels)
    if queries.shape[1] != prototypes.shape[1]:
        raise LossShapeError(f"queries have {queries.shape[1]} dims but prototypes {prototypes.shape[1]}")
    same = query_labels.unsqueeze(1) == prototype_labels.unsqueeze(0)
    if not bool(same.any(dim=1).all()) or not bool((~same).any(dim=1).all()):
        raise LossShapeError("every query needs its own class prototype and at least one other prototype")
    d = _dist(queries, prototypes)
    inf = torch.full_like(d, float("inf"))
    pos = torch.where(same, d, -inf).max(dim=1).values
    neg = torch.where(~same, d, inf).min(dim=1).values
    return reduce(F.relu(pos - neg + margin), reduction)


class ProtoTripletLoss(nn.Module):
    """Module form of :func:`proto_triplet_loss`; call with (queries, labels, prototypes, prototype_labels)."""

    def __init__(self, margin: float = 0.5, reduction: str = "mean"):
        super().__init__()
        self.margin, self.reduction = margin, check_reduction(reduction)

    def forward(
        self,
        queries: torch.Tensor,
        query_labels: torch.Tensor,
        prototypes: torch.Tensor,
        prototype_labels: torch.Tensor,
    ) -> torch.Tensor:
        """Proto-Triplet loss of the queries against the class prototypes."""
        return proto_triplet_loss(
            queries, query_labels, prototypes, prototype_labels, self.margin, self.reduction
        )


def icnn_score(
    features: torch.Tensor,
    labels: torch.Tensor,
    ref: torch.Tensor | None = None,
    ref_labels: torch.Tensor | None = None,
    k: int = 4,
) -> torch.Tensor:
    r"""ICNN score in (0, 1]: high when each point's k nearest neighbours share its class and lie
    closer than its nearest other-class neighbour.

    score = (lambda + gamma) / 2 with gamma = mean_i (#same-class among the k NN) / k and
    lambda = (lambda_same + lambda_diff) / 2, where lambda_same = 1 - mean of same-class NN distances
    divided by the nearest other-class distance (capped to 1 per row) and lambda_diff = mean of
    other-class NN distances divided by the largest of them (the authors' ``modified_score``).
    With ``ref`` None the neighbours are taken in ``features`` itself (the point is excluded);
    otherwise among ``ref`` (e.g. queries against support points or prototypes).
    """
    check_embeddings_labels(features, labels)
    self_ref = ref is None
    ref = features if self_ref else ref
    ref_labels = labels if ref_labels is None else ref_labels
    check_embeddings_labels(ref, ref_labels)
    n_ref = ref.shape[0]
    k = min(k, n_ref - 2) if self_ref else min(k, n_ref - 1)
    if k < 1:
        raise LossShapeError(f"ICNN needs at least {3 if self_ref else 2} reference points, got {n_ref}")
    n_nb = k + 1
    dist, idx = _dist(features, ref).topk(n_nb + int(self_ref), dim=1, largest=False)
    if self_ref:
        dist, idx = dist[:, 1:], idx[:, 1:]
    same = (labels.unsqueeze(1) == ref_labels[idx]).to(dist.dtype)
    diff = 1.0 - same
    inf = torch.full_like(dist, float("inf"))
    nn_diff = torch.where(diff > 0, dist, inf).min(dim=1).values
    nd = torch.where(
        torch.isinf(nn_diff).unsqueeze(1), torch.zeros_like(dist), dist / (nn_diff.unsqueeze(1) + _EPS)
    )
    nd = nd[:, :k]
    nd = nd / nd.max(dim=1, keepdim=True).values.clamp_min(1.0)
    same_k, diff_k = same[:, :k], diff[:, :k]
    sc_counts, dc_counts = same_k.sum(1), diff_k.sum(1)
    sc_mean = (nd * same_k).sum(1) / (sc_counts + _EPS)
    lam_same = 1.0 - sc_mean.sum() / ((sc_counts > 0).sum() + _EPS)
    dcd = (dist * diff)[:, :k]
    dcd = dcd / (dcd.max() + _EPS)
    dc_mean = dcd.sum(1) / (dc_counts + _EPS)
    lam_diff = dc_mean.sum() / ((dc_counts > 0).sum() + _EPS)
    if not bool((diff_k > 0).any()):
        lam_diff = (lam_diff - 1.0).abs()
    lam = (lam_same + lam_diff) / 2
    # the authors' code sets gamma = 1 when the batch is too small for k neighbours
    gamma = (sc_counts / k).mean() if k + 2 < n_ref else torch.ones((), dtype=dist.dtype, device=dist.device)
    return (lam + gamma) / 2


class ICNNLoss(nn.Module):
    r"""ICNN loss: -log(icnn_score), k = 4 neighbours (the authors' default).

    Called PML-style as ``loss(embeddings, labels)`` (neighbours within the batch), or with
    ``ref``/``ref_labels`` to score queries against support points.
    """

    def __init__(self, k: int = 4):
        super().__init__()
        self.k = k

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: None = None,
        ref: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return -log of the ICNN score of the embeddings."""
        if indices_tuple is not None:
            raise ValueError("ICNNLoss uses all neighbours; call it with indices_tuple=None")
        return -torch.log(icnn_score(embeddings, labels, ref, ref_labels, self.k))
