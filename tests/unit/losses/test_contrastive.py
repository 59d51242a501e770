"""Contrastive losses: NT-Xent/InfoNCE by hand, hardness weights, TempNet DRO, AMCL, float32 stability.

TempNet DRO reference gradients: zhqiu/TempNet at commit 35596453e6a432f538bfc1783390765e8e98a814,
``Bimodal_CL/models/losses.py::iSogCLR_TempNet_Loss(N=10, world_size=1, feature_dim=4)`` in its first
epoch (epoch=0), its temperature networks replaced by modules that return the fixed temperatures of
``_tempnet_inputs``; gradients of clip_loss + temp_loss w.r.t. the image and text features and the
temperatures, torch 2.13 CPU float64, 13 significant digits (we agree to ~1e-14 relative).
"""

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
    UnimodalISogCLRLoss,
    hardness_weights,
    info_nce_loss,
    nt_xent_loss,
    tempnet_dro_loss,
)

# fmt: off
TEMPNET_G_IMG = [
    0.2378030163949, -0.01743011277109, -0.088484560536, 0.01835805408056, -0.1748546905676,
    -0.03868511615593, -0.2406779123697, 0.3294429950751, 0.3016782525213, 0.2616639223832,
    0.1210301769947, 0.3650343489722, -0.3784188928187, -0.2102547035536, 0.08560657654819,
    -0.4243004762464, 0.0874732919128, -0.04446156854351, -0.02733679817392, -0.02686508585126,
]
TEMPNET_G_TXT = [
    -0.2559536780225, -0.2379425989063, -0.04297518812967, 0.3268367961584, -0.05350805097733,
    0.3045333192339, 0.04331826841489, -0.3734279664678, -0.2242979133861, -0.07914678443629,
    -0.4197071976329, -0.09910513134307, 0.5290893703787, 0.06913287872565, 0.2727612791591,
    0.3082924542178, -0.153775388091, -0.06488530730938, 0.2145780025692, -0.1254456057527,
]
TEMPNET_G_TAU_I = [
    1.322741127776, 1.353386666979, 1.389774117579, 1.322980683414, 1.322741127776,
]
TEMPNET_G_TAU_T = [
    1.323412563332, 1.322741127777, 1.322741127776, 1.322741127776, 1.322913778194,
]
# fmt: on


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


def test_tempnet_dro_by_hand_and_temperature_gradient():
    sim = randn(3, 3, seed=10)
    tau_r = torch.tensor([0.1, 0.3, 0.2], dtype=torch.float64, requires_grad=True)
    tau_c = torch.tensor([0.5, 0.2, 0.4], dtype=torch.float64)
    s = sim.tolist()
    total = 0.0
    for i in range(3):
        t = tau_r[i].item()
        total += (
            t * math.log(sum(math.exp((s[i][j] - s[i][i]) / t) for j in range(3) if j != i) / 2) + 8.0 * t
        )
        t = tau_c[i].item()
        total += (
            t * math.log(sum(math.exp((s[j][i] - s[i][i]) / t) for j in range(3) if j != i) / 2) + 8.0 * t
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


def _tempnet_inputs():
    g = torch.Generator().manual_seed(61)
    img = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    txt = F.normalize(img + torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    tau_i = 0.005 + 0.045 * torch.rand(5, generator=g, dtype=torch.float64)
    tau_t = 0.005 + 0.045 * torch.rand(5, generator=g, dtype=torch.float64)
    return [v.requires_grad_(True) for v in (img, txt, tau_i, tau_t)]


def test_tempnet_dro_gradients_match_official_first_epoch():
    img, txt, tau_i, tau_t = _tempnet_inputs()
    tempnet_dro_loss(img @ txt.t(), tau_i, tau_t).backward()
    tol = {"rtol": 1e-10, "atol": 1e-12}
    for leaf, ref in (
        (img, TEMPNET_G_IMG),
        (txt, TEMPNET_G_TXT),
        (tau_i, TEMPNET_G_TAU_I),
        (tau_t, TEMPNET_G_TAU_T),
    ):
        torch.testing.assert_close(leaf.grad.flatten(), torch.tensor(ref, dtype=torch.float64), **tol)


def _collapsed_views(n: int = 6, d: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 views whose cosines are ~1: the hardest case for exp(s / tau) at small tau."""
    z = torch.randn(1, d, generator=torch.Generator().manual_seed(3)).expand(n, d).clone()
    z = z + 1e-3 * torch.randn(n, d, generator=torch.Generator().manual_seed(4))
    return z.clone().requires_grad_(True), (z + 1e-4).detach().clone().requires_grad_(True)


def _finite_with_grads(value: torch.Tensor, *leaves: torch.Tensor) -> bool:
    value.backward()
    return bool(torch.isfinite(value)) and all(bool(torch.isfinite(v.grad).all()) for v in leaves)


@pytest.mark.parametrize("tau", [0.01, 0.005])
def test_contrastive_losses_are_finite_in_float32_at_small_temperature(tau):
    ids = torch.arange(6)
    cases = {
        "nt_xent": lambda a, b: nt_xent_loss(a, b, tau),
        "info_nce": lambda a, b: info_nce_loss(a, b, temperature=tau),
        "tempnet_dro": lambda a, b: tempnet_dro_loss(
            F.normalize(a, dim=1) @ F.normalize(b, dim=1).t(), torch.full((6,), tau), torch.full((6,), tau)
        ),
        "amcl": lambda a, b: AMCLLoss(1, tau_init=tau)(a[None], b[None]),
        "isogclr": lambda a, b: ISogCLRLoss(6, tau_init=tau)(a, b, ids),
        "unimodal_isogclr": lambda a, b: UnimodalISogCLRLoss(6, tau_init=tau, tau_min=tau)(a, b, ids),
    }
    for name, fn in cases.items():
        a, b = _collapsed_views()
        assert _finite_with_grads(fn(a, b), a, b), name
    assert bool(torch.isfinite(hardness_weights(*_collapsed_views(), tau)).all())


def test_unimodal_isogclr_float32_nan_regression():
    # the old form took exp(s / tau) of the masked self-similarity (s = 1): inf * 0 = NaN at tau = 0.01
    loss = UnimodalISogCLRLoss(num_samples=6, tau_init=0.01, tau_min=0.005)
    a, b = _collapsed_views()
    for _ in range(3):  # the moving average and the temperatures stay finite over steps too
        out = loss(a, b, torch.arange(6))
        assert _finite_with_grads(out, a, b)
        a.grad = b.grad = None
    assert bool(torch.isfinite(loss.log_u).all()) and bool(torch.isfinite(loss.tau).all())
