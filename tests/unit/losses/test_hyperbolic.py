"""Poincaré-ball operations and the Hyp-OC losses, against the official hyp-oc code.

Reference numbers: Kartik-3004/hyp-oc at commit f3345b22ee0c04a2d63ed77fcf4ff5d9d362cc48, run with
torch 2.13 (CPU, float64) on the seeded inputs of ``_inputs``: ``loss.py::TPC_loss_hyp`` (Hyp-PC),
``hyptorch/nn.py::ToPoincare(c, train_x=True, ball_dim=3, clip_r=2)`` and
``hyptorch/nn.py::HyperbolicMLR(3, 2, c)`` with ``nn.CrossEntropyLoss`` (Hyp-CE), c = 0.1, parameters
copied from ``_inputs``. Values are printed to 13 significant digits; we agree to ~1e-15 relative.
"""

from __future__ import annotations

import math

import pytest
import torch

from workbench.losses import (
    HypCELoss,
    HyperbolicMLR,
    HypPCLoss,
    LossShapeError,
    ToPoincare,
    expmap,
    expmap0,
    logmap0,
    mobius_add,
    poincare_distance,
)

C = 0.1
LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
TOL = {"rtol": 1e-10, "atol": 1e-12}

# fmt: off
PC = 1.675133516904
PC_GRAD = [
    -0.165409055333, 0.105315869284, -0.1909866100327, -0.3652586175071, 0.1487395735262,
    -0.03877286994681, 0.112308549505, -0.124642663484, 0.3208995840846, 0.2220523600471,
    -0.2257914141626, -0.125953468103,
]
CE = 3.645427164358
CE_GRAD_Z = [
    -0.5986432381554, 0.3743544124736, 0.6049648423356, -0.7932598273043, 0.4422397770584,
    0.5113809212182, -0.4264250816775, 0.08754631050082, 1.210927116775, -0.009590264069995,
    0.006406708492381, 0.01105474004631, 0.0005879260004521, -0.0005499986669065, -0.0007049378327707,
    5.494679509749e-06, 1.234561968768e-06, -8.88345097445e-06, 2.789784844743e-06, -1.19118859731e-06,
    -1.220127096115e-06, 1.158316151716e-06, 1.372276384251e-07, -2.403856750753e-06,
]
CE_GRAD_A = [
    2.325818997463, 0.6918831780548, -1.904673524048, -3.103025821363, -0.9934491361965,
    2.475260551182,
]
CE_GRAD_P = [
    1.627342859823, -0.3918080828345, -0.8233528398975, 0.1816121051725, -1.273049220762,
    -1.779816851096,
]
FULL = 5.320560681262
FULL_GRAD_X = [
    -0.1432709133008, 0.09018369518268, 0.07963530872472, -0.01734620769793, 0.0110232674064,
    0.01095884377066, -0.01598036013858, -0.002331016620677, 0.1337093259163, 0.01142005730841,
    -0.003101272632184, 0.004623997586865, 0.0001312653688335, -0.0001335067298175, -0.0001627244267211,
    9.003615792932e-08, -8.375882007257e-08, -1.131438630993e-07, 3.228309580334e-08, -4.822316145923e-08,
    -7.627676244795e-08, 8.797522923538e-08, 9.948393806412e-09, -2.229145216912e-07,
]
FULL_GRAD_XP = [
    -0.2969571453668, 0.1716572223223, 0.2870925284769,
]
# fmt: on


def _inputs():
    """Seeded features x (8, 3), base point x_p and MLR parameters a', p' (float64)."""
    g = torch.Generator().manual_seed(19)
    scale = torch.tensor([0.5, 3.0, 1.0, 4.0, 0.2, 2.5, 1.5, 0.8], dtype=torch.float64).unsqueeze(1)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64) * scale
    xp = 0.3 * torch.randn(3, generator=g, dtype=torch.float64)
    a = torch.randn(2, 3, generator=g, dtype=torch.float64)
    p = 0.5 * torch.randn(2, 3, generator=g, dtype=torch.float64)
    return x, xp, a, p


def _modules(riemannian: bool = True):
    x, xp, a, p = _inputs()
    to_ball = ToPoincare(3, c=C, riemannian=riemannian).double()
    hyp_ce = HypCELoss(3, 2, c=C).double()
    with torch.no_grad():
        to_ball.xp.copy_(xp)
        hyp_ce.mlr.a.copy_(a)
        hyp_ce.mlr.p_tangent.copy_(p)
    return x, to_ball, hyp_ce


def _t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_hyp_pc_matches_official_tpc_loss():
    x, to_ball, _ = _modules()
    with torch.no_grad():
        z = to_ball(x)[:4].clone().requires_grad_(True)
    loss = HypPCLoss(c=C)(z)
    torch.testing.assert_close(loss, _t(PC), **TOL)
    loss.backward()
    torch.testing.assert_close(z.grad.flatten(), _t(PC_GRAD), **TOL)


def test_hyp_ce_matches_official_mlr_and_cross_entropy():
    x, to_ball, hyp_ce = _modules()
    with torch.no_grad():
        z = to_ball(x).clone().requires_grad_(True)
    loss = hyp_ce(z, LABELS)
    torch.testing.assert_close(loss, _t(CE), **TOL)
    loss.backward()
    torch.testing.assert_close(z.grad.flatten(), _t(CE_GRAD_Z), **TOL)
    torch.testing.assert_close(hyp_ce.mlr.a.grad.flatten(), _t(CE_GRAD_A), **TOL)
    torch.testing.assert_close(hyp_ce.mlr.p_tangent.grad.flatten(), _t(CE_GRAD_P), **TOL)


def test_hyp_oc_step_matches_official_including_riemannian_gradient():
    x, to_ball, hyp_ce = _modules()
    x = x.clone().requires_grad_(True)
    z = to_ball(x)
    loss = hyp_ce(z, LABELS) + HypPCLoss(c=C)(z[:4])
    torch.testing.assert_close(loss, _t(FULL), **TOL)
    loss.backward()
    torch.testing.assert_close(x.grad.flatten(), _t(FULL_GRAD_X), **TOL)
    torch.testing.assert_close(to_ball.xp.grad, _t(FULL_GRAD_XP), **TOL)


def test_riemannian_flag_rescales_only_the_gradient():
    grads = []
    for riemannian in (True, False):
        x, to_ball, _ = _modules(riemannian)
        x = x.clone().requires_grad_(True)
        z = to_ball(x)
        HypPCLoss(c=C)(z[:4]).backward()
        grads.append((z.detach(), x.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    scale = (1 - C * grads[0][0][:4].pow(2).sum(1)).pow(2) / 4
    assert bool((scale < 1).all())
    assert not torch.allclose(grads[0][1], grads[1][1])


def test_hyp_pc_pairs_halves_and_reductions():
    z = 0.5 * torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    d = poincare_distance(z[:3], z[3:], C, variant="atan")
    torch.testing.assert_close(HypPCLoss(c=C, reduction="none")(z), d)
    torch.testing.assert_close(HypPCLoss(c=C)(z), d.sum() / 6)
    geo = HypPCLoss(c=C, distance="artanh", reduction="sum")(z)
    torch.testing.assert_close(geo, poincare_distance(z[:3], z[3:], C).sum())
    assert geo > HypPCLoss(c=C, reduction="sum")(z)  # atan < artanh away from 0
    with pytest.raises(LossShapeError, match="even"):
        HypPCLoss()(z[:5])


def ball(n: int, d: int, seed: int, radius: float = 0.8) -> torch.Tensor:
    """Random points inside the unit ball."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g, dtype=torch.float64)
    r = radius * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return v / v.norm(dim=1, keepdim=True) * r


@pytest.mark.parametrize("c", [1.0, 0.5])
def test_exact_distance_matches_arcosh_form_and_metric_axioms(c):
    x, y, z = (ball(20, 3, s) / math.sqrt(c) for s in (0, 1, 2))
    num = 2 * c * (x - y).pow(2).sum(1)
    den = (1 - c * x.pow(2).sum(1)) * (1 - c * y.pow(2).sum(1))
    expected = torch.acosh(1 + num / den) / math.sqrt(c)
    d_xy = poincare_distance(x, y, c, eps=0.0)
    torch.testing.assert_close(d_xy, expected)
    torch.testing.assert_close(d_xy, poincare_distance(y, x, c, eps=0.0))
    assert bool((poincare_distance(x, x, c) < 1e-6).all())
    d = lambda a, b: poincare_distance(a, b, c, eps=0.0)  # noqa: E731
    assert bool((d_xy <= d(x, z) + d(z, y) + 1e-9).all())
    # the official epsilon changes the distance by ~1e-5 relative
    torch.testing.assert_close(poincare_distance(x, y, c), d_xy, rtol=1e-4, atol=0)


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
    torch.testing.assert_close(mobius_add(x, torch.zeros_like(x), eps=0.0), x)
    torch.testing.assert_close(mobius_add(x, torch.zeros_like(x)), x / (1 + 1e-5))  # official epsilon
    torch.testing.assert_close(mobius_add(-x, x), torch.zeros_like(x))
    v = torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(logmap0(expmap0(v, 0.7), 0.7), v)
    # exp map at the origin is exp_0 (up to the epsilon); distance from 0 is 2 ||log_0(x)|| at c = 1
    torch.testing.assert_close(expmap(torch.zeros_like(v), v, 0.7), expmap0(v, 0.7) / (1 + 1e-5))
    torch.testing.assert_close(poincare_distance(torch.zeros_like(x), x, eps=0.0), 2 * logmap0(x).norm(dim=1))


def test_hyperbolic_mlr_has_the_euclidean_limit():
    mlr = HyperbolicMLR(3, 4, c=1e-10).double()
    x = torch.randn(5, 3, dtype=torch.float64) * 0.1
    p = expmap0(mlr.p_tangent, 1e-10)
    expected = 4 * ((x.unsqueeze(1) - p.unsqueeze(0)) * mlr.a.unsqueeze(0)).sum(-1)
    torch.testing.assert_close(mlr(x), expected, rtol=1e-4, atol=1e-6)


def test_to_poincare_clips_and_stays_in_the_ball():
    x = torch.tensor([[30.0, 40.0, 0.0], [0.3, 0.0, 0.4]], dtype=torch.float64)
    z = ToPoincare(3, c=C, train_x=False, riemannian=False).double()(x)
    # clipped to Euclidean norm 2 (minus the 1e-5 guard), then exp_0: tanh(sqrt(c) * 2) / sqrt(c)
    expected = math.tanh(math.sqrt(C) * 2 * 50 / (50 + 1e-5)) / math.sqrt(C)
    assert z[0].norm().item() == pytest.approx(expected, rel=1e-12)
    assert z[1].norm().item() == pytest.approx(math.tanh(math.sqrt(C) * 0.5) / math.sqrt(C), rel=1e-12)
    assert bool((z.norm(dim=1) < 1 / math.sqrt(C)).all())
    ce = HypCELoss(3, 2, c=C, on_ball=False).double()
    assert torch.isfinite(ce(x, torch.tensor([0, 1])))
