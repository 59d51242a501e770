"""Poincaré-ball operations: closed forms, metric axioms, the atan variant, and the MLR's Euclidean limit."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.losses import (
    HypCELoss,
    HyperbolicMLR,
    HypPCLoss,
    LossShapeError,
    expmap0,
    logmap0,
    mobius_add,
    poincare_distance,
)


def ball(n: int, d: int, seed: int, radius: float = 0.8) -> torch.Tensor:
    """Random points inside the unit ball."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g, dtype=torch.float64)
    r = radius * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return v / v.norm(dim=1, keepdim=True) * r


@pytest.mark.parametrize("c", [1.0, 0.5])
def test_distance_matches_arcosh_form_and_metric_axioms(c):
    x, y, z = (ball(20, 3, s) / math.sqrt(c) for s in (0, 1, 2))
    num = 2 * c * (x - y).pow(2).sum(1)
    den = (1 - c * x.pow(2).sum(1)) * (1 - c * y.pow(2).sum(1))
    expected = torch.acosh(1 + num / den) / math.sqrt(c)
    d_xy = poincare_distance(x, y, c)
    torch.testing.assert_close(d_xy, expected)
    torch.testing.assert_close(d_xy, poincare_distance(y, x, c))
    assert bool((poincare_distance(x, x, c) < 1e-6).all())
    assert bool((d_xy <= poincare_distance(x, z, c) + poincare_distance(z, y, c) + 1e-9).all())


def test_atan_variant_agrees_near_origin_and_saturates_at_the_boundary():
    x, y = ball(10, 3, 3, radius=0.01), ball(10, 3, 4, radius=0.01)
    torch.testing.assert_close(
        poincare_distance(x, y, variant="atan"), poincare_distance(x, y), rtol=1e-3, atol=0
    )
    far = torch.tensor([[0.999, 0.0]], dtype=torch.float64)
    origin = torch.zeros(1, 2, dtype=torch.float64)
    assert poincare_distance(origin, far).item() > 7.0
    assert poincare_distance(origin, far, variant="atan").item() < math.pi / 2


def test_mobius_and_maps():
    x = ball(6, 4, 5)
    torch.testing.assert_close(mobius_add(x, torch.zeros_like(x)), x)
    torch.testing.assert_close(mobius_add(-x, x), torch.zeros_like(x))
    v = torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(logmap0(expmap0(v, 0.7), 0.7), v)
    # distance from the origin is 2 ||v|| for v = log_0(x) with c = 1
    torch.testing.assert_close(poincare_distance(torch.zeros_like(x), x), 2 * logmap0(x).norm(dim=1))


def test_hyperbolic_mlr_has_the_euclidean_limit():
    mlr = HyperbolicMLR(3, 4, c=1e-10).double()
    x = torch.randn(5, 3, dtype=torch.float64) * 0.1
    p = expmap0(mlr.p_tangent, 1e-10)
    expected = 4 * ((x.unsqueeze(1) - p.unsqueeze(0)) * mlr.a.unsqueeze(0)).sum(-1)
    torch.testing.assert_close(mlr(x), expected, rtol=1e-5, atol=1e-6)


def test_hyp_pc_and_hyp_ce_behave():
    t = torch.randn(6, 3, dtype=torch.float64)
    pc = HypPCLoss()
    good = pc(t, t)
    bad = pc(t, t[torch.tensor([1, 2, 3, 4, 5, 0])])
    assert good < bad
    ce = HypCELoss(3, 4).double()
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.isfinite(ce(t, labels))
    with pytest.raises(LossShapeError):
        pc(t, t[:3])
