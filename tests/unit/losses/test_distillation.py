"""Dual-head KD: BinaryKLNorm by hand, its minimum, and the combined loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.losses import BinaryKLNormLoss, DualHeadKDLoss, LossShapeError, binary_kl_norm, kd_loss


def test_binary_kl_norm_by_hand_and_minimum():
    s = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    t = torch.tensor([[0.0, 1.0, 0.5]], dtype=torch.float64)
    T = 2.0
    total = 0.0
    for a, b in zip(s[0].tolist(), t[0].tolist()):
        q = 1 / (1 + math.exp(-(a - b) / T))
        total += 0.5 * math.log(0.5 / q) + 0.5 * math.log(0.5 / (1 - q))
    assert binary_kl_norm(s, t).item() == pytest.approx(T**2 * total, rel=1e-12)
    assert binary_kl_norm(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert BinaryKLNormLoss(reduction="none")(s.repeat(3, 1), t.repeat(3, 1)).shape == (3,)


def test_dual_head_is_ce_plus_aux_and_kd_matches_hinton():
    g = torch.Generator().manual_seed(0)
    main, aux, teacher = (torch.randn(4, 5, generator=g, dtype=torch.float64) for _ in range(3))
    y = torch.tensor([0, 3, 1, 4])
    got = DualHeadKDLoss(kd_weight=0.5)(main, aux, teacher, y)
    torch.testing.assert_close(got, F.cross_entropy(main, y) + 0.5 * binary_kl_norm(aux, teacher))
    p_t = torch.softmax(teacher / 4, 1)
    hinton = 16 * (p_t * (p_t.log() - torch.log_softmax(main / 4, 1))).sum(1).mean()
    torch.testing.assert_close(kd_loss(main, teacher), hinton)
    with pytest.raises(LossShapeError, match="teacher"):
        binary_kl_norm(main, teacher[:2])
