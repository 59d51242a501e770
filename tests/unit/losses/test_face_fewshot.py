"""SFace and UNPG against hand computation; Proto-Triplet and ICNN behaviour."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.losses import (
    ICNNLoss,
    LossShapeError,
    ProtoTripletLoss,
    SFaceLoss,
    UNPGLoss,
    icnn_score,
    iqr_filter,
    sface_loss,
    unpg_loss,
)


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_sface_fixed_value_by_hand():
    cos = [[0.8, 0.1, -0.3], [0.2, 0.5, 0.6]]
    labels = [0, 2]
    s, k, a, b = 64.0, 80.0, 0.8, 1.23
    per = []
    for row, y in zip(cos, labels):
        intra = -_sig(k * (math.acos(row[y]) - a)) * s * row[y]
        inter = sum(_sig(-k * (math.acos(c) - b)) * s * c for j, c in enumerate(row) if j != y)
        per.append(intra + inter)
    got = sface_loss(torch.tensor(cos, dtype=torch.float64), torch.tensor(labels))
    assert got.item() == pytest.approx(sum(per) / 2, rel=1e-12)


def test_sface_gradient_uses_stopped_weights():
    cos = torch.tensor([[0.3, 0.9, -0.2]], dtype=torch.float64, requires_grad=True)
    sface_loss(cos, torch.tensor([1])).backward()
    w_y = _sig(80 * (math.acos(0.9) - 0.8))
    w_0, w_2 = _sig(-80 * (math.acos(0.3) - 1.23)), _sig(-80 * (math.acos(-0.2) - 1.23))
    expected = torch.tensor([[64 * w_0, -64 * w_y, 64 * w_2]], dtype=torch.float64)
    torch.testing.assert_close(cos.grad, expected)


def test_sface_module_shapes():
    loss = SFaceLoss(embedding_size=4, num_classes=3)
    assert loss(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).shape == ()
    with pytest.raises(LossShapeError):
        loss(torch.randn(5, 4), torch.tensor([0, 1, 2]))


def test_iqr_filter_drops_outliers_like_official_quartiles():
    vals = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.25, 0.15, 5.0])
    kept = iqr_filter(vals, 1.5)
    # sorted: 0, .1, .15, .2, .25, .3, 5 ; Q1 = s[int(1.75)] = .1, Q3 = s[int(5.25)] = .3
    torch.testing.assert_close(kept, torch.tensor([0.0, 0.1, 0.15, 0.2, 0.25, 0.3]))


def test_unpg_fixed_value_by_hand():
    emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    mc = torch.tensor([[0.5, 0.1], [0.4, -0.2], [0.0, 0.3], [0.2, 0.6]], dtype=torch.float64)
    # negative pairs (0,2), (0,3), (1,2), (1,3): cosines 0, -0.6, 0.6, 0 ; sorted -0.6, 0, 0, 0.6
    # Q1 = s[1] = 0, Q3 = s[3] = 0.6, IQR = 0.6, whisker 1.5 -> keep [-0.9, 1.5]: all four
    extra = [-0.6, 0.0, 0.0, 0.6]
    total = 0.0
    for row, y in zip(mc.tolist(), labels.tolist()):
        logits = [64 * v for v in row + extra]
        m = max(logits)
        total += -(logits[y] - m - math.log(sum(math.exp(v - m) for v in logits)))
    got = unpg_loss(mc, emb, labels)
    assert got.item() == pytest.approx(total / 4, rel=1e-10)


def test_unpg_module_uses_arcface_margin():
    loss = UNPGLoss(embedding_size=3, num_classes=4).double()
    emb, labels = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])
    mc = loss.margin_cosine(emb, labels)
    cos = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(loss.weight, dim=1).t()
    rows = torch.arange(6)
    torch.testing.assert_close(mc[rows, labels], torch.cos(torch.acos(cos[rows, labels]) + 0.5))
    off = torch.ones_like(cos, dtype=torch.bool)
    off[rows, labels] = False
    torch.testing.assert_close(mc[off], cos[off])
    assert torch.isfinite(loss(emb, labels))


def test_proto_triplet_by_hand():
    queries = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    protos = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
    q_lab, p_lab = torch.tensor([0, 2]), torch.tensor([0, 1, 2])
    d = lambda a, b: math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)) + 1e-6)  # noqa: E731
    l0 = max(0.0, d([0, 0], [1, 0]) - min(d([0, 0], [0, 2]), d([0, 0], [3, 1])) + 0.5)
    l1 = max(0.0, d([3, 0], [3, 1]) - min(d([3, 0], [1, 0]), d([3, 0], [0, 2])) + 0.5)
    got = ProtoTripletLoss()(queries, q_lab, protos, p_lab)
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-12)


def test_icnn_rewards_separated_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]], dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(6)
    tight = centres[labels] + 0.1 * torch.randn(18, 2, generator=g, dtype=torch.float64)
    score_tight = icnn_score(tight, labels)
    shuffled = labels[torch.randperm(18, generator=g)]
    score_mixed = icnn_score(tight, shuffled)
    assert score_tight > 0.95
    assert score_mixed < score_tight - 0.2
    loss = ICNNLoss()
    assert loss(tight, labels) < loss(tight, shuffled)
    with pytest.raises(LossShapeError, match="reference points"):
        icnn_score(tight[:2], labels[:2])
