"""Metric-learning losses equal pytorch-metric-learning on the same inputs; Metrix soft-label formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning import miners

from workbench.losses import (
    ContrastiveLoss,
    LossShapeError,
    MetrixLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    TripletMarginLoss,
)

LABELS = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 0, 2])


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded float64 normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (ContrastiveLoss(), pml.ContrastiveLoss()),
        (
            ContrastiveLoss(pos_margin=0.2, neg_margin=0.8),
            pml.ContrastiveLoss(pos_margin=0.2, neg_margin=0.8),
        ),
        (TripletMarginLoss(), pml.TripletMarginLoss()),
        (TripletMarginLoss(margin=0.5), pml.TripletMarginLoss(margin=0.5)),
        (MultiSimilarityLoss(), pml.MultiSimilarityLoss()),
        (
            MultiSimilarityLoss(alpha=1, beta=20, base=0.2),
            pml.MultiSimilarityLoss(alpha=1, beta=20, base=0.2),
        ),
    ],
)
def test_pair_losses_equal_pml(ours, theirs, seed):
    emb = randn(12, 6, seed=seed)
    torch.testing.assert_close(ours(emb, LABELS), theirs(emb, LABELS))


def test_mined_indices_equal_pml():
    emb = randn(12, 6, seed=4)
    pairs = miners.MultiSimilarityMiner(epsilon=0.5)(emb, LABELS)
    triplets = miners.TripletMarginMiner(margin=0.3, type_of_triplets="all")(emb, LABELS)
    assert len(pairs[0]) and len(triplets[0])
    torch.testing.assert_close(
        ContrastiveLoss()(emb, LABELS, pairs), pml.ContrastiveLoss()(emb, LABELS, pairs)
    )
    torch.testing.assert_close(
        MultiSimilarityLoss()(emb, LABELS, pairs), pml.MultiSimilarityLoss()(emb, LABELS, pairs)
    )
    torch.testing.assert_close(
        TripletMarginLoss()(emb, LABELS, triplets), pml.TripletMarginLoss()(emb, LABELS, triplets)
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_proxy_losses_equal_pml(seed):
    emb = randn(12, 6, seed=seed)
    theirs = pml.ProxyAnchorLoss(num_classes=5, embedding_size=6)
    ours = ProxyAnchorLoss(num_classes=5, embedding_size=6).double()
    ours.proxies.data.copy_(theirs.proxies.data)
    torch.testing.assert_close(ours(emb, LABELS), theirs(emb, LABELS))
    theirs_ns = pml.NormalizedSoftmaxLoss(num_classes=4, embedding_size=6)
    ours_ns = NormalizedSoftmaxLoss(num_classes=4, embedding_size=6).double()
    ours_ns.weight.data.copy_(theirs_ns.W.data.t())
    torch.testing.assert_close(ours_ns(emb, LABELS), theirs_ns(emb, LABELS))


def test_metrix_soft_multi_similarity_by_hand():
    emb, lab = randn(6, 4, seed=5), torch.tensor([0, 0, 1, 1, 2, 2])
    j, k, lam = (
        torch.tensor([0, 2, 5]),
        torch.tensor([3, 4, 1]),
        torch.tensor([0.7, 0.2, 0.5], dtype=torch.float64),
    )
    metrix = MetrixLoss(MultiSimilarityLoss())
    got = metrix.mixed_loss(emb, lab, j, k, lam)
    x = F.normalize(emb, dim=1)
    mixed = F.normalize(lam[:, None] * emb[j] + (1 - lam[:, None]) * emb[k], dim=1)
    total = 0.0
    for a in range(6):
        pos, neg = 1.0, 1.0
        for m in range(3):
            s = float(x[a] @ mixed[m])
            y = float(lam[m]) * bool(lab[a] == lab[j[m]]) + (1 - float(lam[m])) * bool(lab[a] == lab[k[m]])
            pos += y * math.exp(-2 * (s - 0.5))
            neg += (1 - y) * math.exp(50 * (s - 0.5))
        total += math.log(pos) / 2 + math.log(neg) / 50
    assert got.item() == pytest.approx(total / 6, rel=1e-10)


def test_metrix_soft_proxy_anchor_by_hand():
    emb, lab = randn(4, 3, seed=6), torch.tensor([0, 1, 2, 2])
    base = ProxyAnchorLoss(num_classes=3, embedding_size=3).double()
    j, k, lam = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0.6, 0.9], dtype=torch.float64)
    got = MetrixLoss(base).mixed_loss(emb, lab, j, k, lam)
    mixed = F.normalize(lam[:, None] * emb[j] + (1 - lam[:, None]) * emb[k], dim=1)
    prox = F.normalize(base.proxies.detach(), dim=1)
    pos_terms, neg_terms, with_pos = [], [], 0
    for c in range(3):
        pos, neg, has = 1.0, 1.0, False
        for m in range(2):
            s = float(mixed[m] @ prox[c])
            y = float(lam[m]) * bool(lab[j[m]] == c) + (1 - float(lam[m])) * bool(lab[k[m]] == c)
            has = has or y > 0
            pos += y * math.exp(-32 * (s - 0.1))
            neg += (1 - y) * math.exp(32 * (s + 0.1))
        with_pos += has
        pos_terms.append(math.log(pos))
        neg_terms.append(math.log(neg))
    expected = sum(pos_terms) / with_pos + sum(neg_terms) / 3
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_metrix_total_and_sampling():
    emb = randn(12, 6, seed=7)
    for base in (ContrastiveLoss(), MultiSimilarityLoss()):
        torch.testing.assert_close(MetrixLoss(base, weight=0.0)(emb, LABELS), base(emb, LABELS))
    metrix = MetrixLoss(ContrastiveLoss(), seed=3)
    j, k, lam = metrix.sample_mix(LABELS, 50)
    assert bool((LABELS[j] != LABELS[k]).all()) and bool(((lam > 0) & (lam < 1)).all())
    assert abs(float(lam.mean()) - 0.5) < 0.1  # Beta(2, 2) is centred
    j2, k2, lam2 = MetrixLoss(ContrastiveLoss(), seed=3).sample_mix(LABELS, 50)
    assert torch.equal(j, j2) and torch.equal(lam, lam2)
    with pytest.raises(ValueError, match="base"):
        MetrixLoss(TripletMarginLoss())


def test_metric_shape_errors():
    with pytest.raises(LossShapeError, match="one label per row"):
        ContrastiveLoss()(randn(5, 3), LABELS)
    with pytest.raises(ValueError, match="indices_tuple"):
        ProxyAnchorLoss(4, 3)(randn(4, 3), torch.tensor([0, 1, 2, 3]), (torch.tensor([0]),) * 3)
