"""APRE vs torch's Gaussian NLL, DEPICT targets by hand, SFDA by hand, Sinkhorn/PULASki properties."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.losses import (
    APRELoss,
    DEPICTLoss,
    LossShapeError,
    PULASkiLoss,
    SFDALoss,
    depict_targets,
    sfda_loss,
    sinkhorn_divergence,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded float64 normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_apre_beta0_is_gaussian_nll_and_beta1_has_mse_gradient():
    mu, log_var, x = randn(8, seed=1), randn(8, seed=2), randn(8, seed=3)
    ref = torch.nn.GaussianNLLLoss(full=False)(mu, x, log_var.exp())
    torch.testing.assert_close(APRELoss(beta=0.0)(mu, log_var, x), ref)
    m = mu.clone().requires_grad_(True)
    APRELoss(beta=1.0, reduction="sum")(m, log_var, x).backward()
    torch.testing.assert_close(m.grad, m.detach() - x)  # d/dmu of (x - mu)^2 / 2


def test_depict_targets_by_hand_and_kl_is_zero_at_targets():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    col = p.sum(0).sqrt()
    q = p / col
    q = q / q.sum(1, keepdim=True)
    torch.testing.assert_close(depict_targets(p), q)
    logits = p.log()
    loss = DEPICTLoss()(logits)
    expected = (q * (q.log() - p.log())).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    assert loss > 0


def test_sfda_by_hand():
    logits = randn(2, 3, 2, 2, seed=4)
    prior = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p = torch.softmax(logits, 1).reshape(2, 3, 4)
    ent = -(p * p.log()).sum(1).mean(1)
    tau = p.mean(2)
    kl = (prior * (prior.log() - tau.log())).sum(1)
    torch.testing.assert_close(sfda_loss(logits, prior, lam=0.7), (ent + 0.7 * kl).mean())
    torch.testing.assert_close(
        SFDALoss(prior.float(), lam=0.7)(logits.float()), (ent + 0.7 * kl).mean().float()
    )
    with pytest.raises(LossShapeError, match="class_prior"):
        sfda_loss(logits, prior[:2])


def test_sinkhorn_divergence_properties():
    x, y = randn(5, 4, seed=5), randn(6, 4, seed=6) + 1.0
    assert sinkhorn_divergence(x, x).abs().item() < 1e-8
    d = sinkhorn_divergence(x, y)
    assert d > 0.1
    torch.testing.assert_close(d, sinkhorn_divergence(y, x), rtol=1e-6, atol=1e-9)
    # with a large blur the debiased divergence tends to the squared mean gap / 2 (energy regime)
    big = sinkhorn_divergence(x, y, blur=30.0)
    gap = (x.mean(0) - y.mean(0)).pow(2).sum() / (2 * 4)
    assert big.item() == pytest.approx(gap.item(), rel=0.05)


def test_pulaski_rewards_matching_the_raters_spread():
    g = torch.Generator().manual_seed(7)
    raters = (torch.rand(3, 2, 4, 4, generator=g) > 0.5).double()
    loss = PULASkiLoss()
    same = loss(raters.clone(), raters)
    collapsed = loss(raters.mean(0, keepdim=True).expand(3, -1, -1, -1), raters)
    assert same.abs() < 1e-6 and collapsed > same + 1e-3
    with pytest.raises(LossShapeError):
        loss(raters, raters[:, :1])
    assert math.isfinite(loss(torch.rand(5, 2, 4, 4, dtype=torch.float64), raters).item())
