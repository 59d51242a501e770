"""Contrastive losses: NT-Xent/InfoNCE by hand, hardness weights, iSogCLR's gradient, TempNet, AMCL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.losses import (
    AMCLLoss,
    ISogCLRLoss,
    LossShapeError,
    TempNetDROLoss,
    hardness_weights,
    info_nce_loss,
    nt_xent_loss,
    tempnet_dro_loss,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded float64 normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_nt_xent_by_hand():
    z1, z2, t = randn(3, 4, seed=1), randn(3, 4, seed=2), 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1).tolist()
    total = 0.0
    for i in range(6):
        p = (i + 3) % 6
        sims = [sum(a * b for a, b in zip(z[i], z[k])) / t for k in range(6)]
        total += -(sims[p] - math.log(sum(math.exp(sims[k]) for k in range(6) if k != i)))
    assert nt_xent_loss(z1, z2, t).item() == pytest.approx(total / 6, rel=1e-12)


def test_info_nce_with_explicit_negatives():
    q, kp, kn = randn(4, 3, seed=3), randn(4, 3, seed=4), randn(5, 3, seed=5)
    qn, kpn, knn = (F.normalize(v, dim=1) for v in (q, kp, kn))
    logits = torch.cat([(qn * kpn).sum(1, keepdim=True), qn @ knn.t()], 1) / 0.07
    expected = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(info_nce_loss(q, kp, kn), expected)
    in_batch = F.cross_entropy(qn @ kpn.t() / 0.07, torch.arange(4))
    torch.testing.assert_close(info_nce_loss(q, kp), in_batch)


def test_hardness_weights_are_the_negative_softmax():
    z1, z2 = randn(4, 3, seed=6), randn(4, 3, seed=7)
    w = hardness_weights(z1, z2, 0.5)
    torch.testing.assert_close(w.sum(1), torch.ones(8, dtype=torch.float64))
    rows = torch.arange(8)
    pos = torch.cat([torch.arange(4, 8), torch.arange(0, 4)])
    assert bool((w[rows, rows] == 0).all()) and bool((w[rows, pos] == 0).all())
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    s = (z @ z.t()).tolist()
    num = math.exp(s[0][1] / 0.5)
    den = sum(math.exp(s[0][k] / 0.5) for k in range(8) if k not in (0, 4))
    assert w[0, 1].item() == pytest.approx(num / den, rel=1e-12)
    # colder temperature concentrates the penalty on the hardest negative
    assert hardness_weights(z1, z2, 0.05).max(1).values.mean() > w.max(1).values.mean()


def test_isogclr_first_step_gradient_is_the_rgcl_gradient():
    z1 = randn(5, 4, seed=8).requires_grad_(True)
    z2 = randn(5, 4, seed=9).requires_grad_(True)
    idx = torch.tensor([3, 0, 7, 2, 9])
    loss = ISogCLRLoss(num_samples=10).double()
    loss(z1, z2, idx).backward()
    # objective: sum over both views of tau log mean_{negatives} exp((s_iz - s_pos) / tau)
    y1, y2 = z1.detach().clone().requires_grad_(True), z2.detach().clone().requires_grad_(True)
    a, b = F.normalize(y1, dim=1), F.normalize(y2, dim=1)
    eye = torch.eye(5, dtype=torch.bool)
    pos = (a * b).sum(1, keepdim=True)
    tau = 0.1
    obj = 0.0
    for s in (torch.cat([a @ b.t(), a @ a.t()], 1), torch.cat([b @ a.t(), b @ b.t()], 1)):
        h = ((s - pos) / tau).masked_fill(torch.cat([eye, eye], 1), float("-inf"))
        obj = obj + tau * (torch.logsumexp(h, 1) - math.log(8))
    obj.mean().backward()
    torch.testing.assert_close(z1.grad, y1.grad)
    torch.testing.assert_close(z2.grad, y2.grad)
    # state: u stored for the batch, temperatures moved by -eta * beta * g and clipped
    assert bool((loss.u[idx] > 0).all()) and bool((loss.u[[1, 4, 5, 6, 8]] == 0).all())
    assert bool((loss.tau[idx] != 0.1).all()) and bool(((loss.tau >= 0.05) & (loss.tau <= 0.7)).all())


def test_tempnet_dro_by_hand_and_temperature_gradient():
    sim = randn(3, 3, seed=10)
    tau_r = torch.tensor([0.1, 0.3, 0.2], dtype=torch.float64, requires_grad=True)
    tau_c = torch.tensor([0.5, 0.2, 0.4], dtype=torch.float64)
    s = sim.tolist()
    total = 0.0
    for i in range(3):
        t = tau_r[i].item()
        total += (
            t * math.log(sum(math.exp((s[i][j] - s[i][i]) / t) for j in range(3) if j != i) / 2) + 6.0 * t
        )
        t = tau_c[i].item()
        total += (
            t * math.log(sum(math.exp((s[j][i] - s[i][i]) / t) for j in range(3) if j != i) / 2) + 6.0 * t
        )
    got = tempnet_dro_loss(sim, tau_r, tau_c)
    assert got.item() == pytest.approx(total / 3, rel=1e-12)
    got.backward()
    assert tau_r.grad is not None and bool((tau_r.grad != 0).all())
    with pytest.raises(LossShapeError, match="temperatures"):
        TempNetDROLoss()(sim, tau_r[:2])


def test_amcl_reduces_to_nt_xent_and_regularises():
    z1, z2 = randn(4, 3, seed=11), randn(4, 3, seed=12)
    one = AMCLLoss(num_heads=1, tau_init=0.5).double()
    torch.testing.assert_close(one(z1[None], z2[None]), nt_xent_loss(z1, z2, 0.5))
    two = AMCLLoss(num_heads=2, tau_init=0.5).double()
    torch.testing.assert_close(two(torch.stack([z1, z1]), torch.stack([z2, z2])), nt_xent_loss(z1, z2, 0.5))
    with torch.no_grad():
        one.log_tau_pos.fill_(math.log(0.5) + 1.0)
    assert one(z1[None], z2[None]) != nt_xent_loss(z1, z2, 0.5)
    with pytest.raises(LossShapeError, match="heads"):
        two(z1[None], z2[None])
