"""Identities of the classification losses: comp-sum, spherical Z-loss, log-Z, smooth adversarial."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.losses import (
    CompSumLoss,
    GCELoss,
    LogZLoss,
    LossShapeError,
    MAELoss,
    SphericalZLoss,
    comp_sum_loss,
    log_z_loss,
    smooth_adversarial_comp_sum_loss,
    spherical_z_loss,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded float64 normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


LOGITS = randn(6, 5, seed=1)
TARGETS = torch.tensor([0, 4, 2, 2, 1, 3])


def test_comp_sum_tau1_is_cross_entropy():
    for red in ("mean", "sum", "none"):
        torch.testing.assert_close(
            comp_sum_loss(LOGITS, TARGETS, 1.0, red), F.cross_entropy(LOGITS, TARGETS, reduction=red)
        )


def test_comp_sum_tau2_is_one_minus_p_y():
    p_y = torch.softmax(LOGITS, 1)[torch.arange(6), TARGETS]
    torch.testing.assert_close(comp_sum_loss(LOGITS, TARGETS, 2.0, "none"), 1 - p_y)
    torch.testing.assert_close(MAELoss(reduction="none")(LOGITS, TARGETS), 1 - p_y)


def test_comp_sum_tau0_is_sum_exponential_and_gce():
    h_y = LOGITS[torch.arange(6), TARGETS].unsqueeze(1)
    mask = F.one_hot(TARGETS, 5).bool()
    u = torch.exp(LOGITS - h_y).masked_fill(mask, 0).sum(1)
    torch.testing.assert_close(comp_sum_loss(LOGITS, TARGETS, 0.0, "none"), u)
    p_y = torch.softmax(LOGITS, 1)[torch.arange(6), TARGETS]
    torch.testing.assert_close(GCELoss(q=0.7, reduction="none")(LOGITS, TARGETS), (1 - p_y**0.7) / 0.7)
    # continuity at tau -> 1
    torch.testing.assert_close(
        comp_sum_loss(LOGITS, TARGETS, 1.0 + 1e-7), comp_sum_loss(LOGITS, TARGETS, 1.0)
    )


def test_spherical_z_loss_shift_and_scale_invariant():
    base = spherical_z_loss(LOGITS, TARGETS, reduction="none")
    moved = spherical_z_loss(3.7 * LOGITS + 100.0, TARGETS, reduction="none")
    torch.testing.assert_close(base, moved)
    # cross-entropy is not scale invariant: the test can tell the two apart
    assert not torch.allclose(F.cross_entropy(LOGITS, TARGETS), F.cross_entropy(3.7 * LOGITS, TARGETS))


def test_spherical_z_loss_value_by_hand():
    o = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    mu = 7 / 3
    sigma = math.sqrt((1 + 4 + 16) / 3 - mu * mu)
    z = (4.0 - mu) / sigma
    expected = math.log1p(math.exp(0.5 * (1.5 - z))) / 0.5
    got = SphericalZLoss(a=0.5, b=1.5)(o, torch.tensor([2]))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_log_z_loss_value():
    z = torch.logsumexp(LOGITS, 1)
    torch.testing.assert_close(log_z_loss(LOGITS), 1e-4 * (z**2).mean())
    torch.testing.assert_close(LogZLoss(coef=2.0, reduction="sum")(LOGITS.view(2, 3, 5)), 2 * (z**2).sum())


def test_smooth_adversarial_reduces_and_penalises():
    clean = comp_sum_loss(LOGITS, TARGETS, 1.0)
    same = smooth_adversarial_comp_sum_loss(LOGITS, LOGITS.clone(), TARGETS, tau=1.0, nu=1.0)
    torch.testing.assert_close(same, clean)
    shifted = LOGITS.clone()
    shifted[:, 0] += 1.0  # label-0 rows: all 4 margins move by 1 (norm 2); other rows: one margin (norm 1)
    got = smooth_adversarial_comp_sum_loss(LOGITS, shifted, TARGETS, tau=1.0, nu=2.0, reduction="none")
    norm = torch.where(TARGETS == 0, 2.0, 1.0).double()
    expected = comp_sum_loss(LOGITS, TARGETS, 1.0, "none") + 2.0 * norm
    torch.testing.assert_close(got, expected)


def test_shape_and_reduction_errors():
    with pytest.raises(LossShapeError, match="targets"):
        comp_sum_loss(LOGITS, TARGETS[:3])
    with pytest.raises(LossShapeError, match="integer"):
        comp_sum_loss(LOGITS, TARGETS.double())
    with pytest.raises(LossShapeError, match=r"\[0, 5\)"):
        comp_sum_loss(LOGITS, torch.full((6,), 5))
    with pytest.raises(LossShapeError, match=r"\(N, C\)"):
        spherical_z_loss(LOGITS[0], TARGETS[:1])
    with pytest.raises(ValueError, match="reduction"):
        CompSumLoss(reduction="avg")
