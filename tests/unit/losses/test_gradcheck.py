"""float64 gradcheck of every differentiable loss (stop-gradient weights held fixed where a loss has them).

The losses whose value is only a surrogate (SFace, EnsLoss, ALDR-KL, iSogCLR, DEPICT, APRE) are checked
with their stop-gradient quantities passed in as constants; their own tests check that the module's
gradient equals that of the fixed-weight form.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch

import workbench.losses as L


def r(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Seeded float64 leaf tensor that requires grad."""
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_(True)


Y5 = torch.tensor([0, 2, 1, 2, 0])
LAB8 = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
GT1 = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
GT2 = torch.randn(2, 2, 4, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
TORCH_SEED = 0


def _module(cls, *args, **kwargs):
    torch.manual_seed(TORCH_SEED)
    return cls(*args, **kwargs).double()


def _proxy_anchor():
    m = _module(L.ProxyAnchorLoss, 3, 4)
    return lambda e, p: torch.func.functional_call(m, {"proxies": p}, (e, LAB8))


def _metrix(base):
    metrix = L.MetrixLoss(base)
    j, k, lam = (
        torch.tensor([0, 2, 4]),
        torch.tensor([3, 6, 1]),
        torch.tensor([0.3, 0.6, 0.8], dtype=torch.float64),
    )
    return lambda e: metrix.mixed_loss(e, LAB8, j, k, lam)


def _sface():
    cos = torch.tanh(r(5, 3, seed=3)).detach()
    w = L.sface_weights(cos, Y5)
    return lambda c: L.sface_loss(c, Y5, weights=w), [cos.clone().requires_grad_(True)]


def _hyp_ce():
    m = _module(L.HypCELoss, 3, 3)
    return lambda x: m(x, Y5)


def _to_poincare():
    m = _module(L.ToPoincare, 3, riemannian=False)
    with torch.no_grad():
        m.xp.copy_(torch.tensor([0.2, -0.1, 0.3]))
    return lambda x: m(x)


def _amcl():
    m = _module(L.AMCLLoss, 2, tau_init=0.5)
    return lambda a, b: m(a, b)


def _dual_head():
    m = L.DualHeadKDLoss()
    t = r(5, 3, seed=9).detach()
    return lambda a, b: m(a, b, t, Y5)


def _depict():
    logits = r(6, 3, seed=4)
    q = L.depict_targets(torch.softmax(logits.detach(), 1))
    return lambda z: L.depict_loss(z, targets=q), [logits]


def _apre():
    lv = r(6, seed=6)
    w = torch.exp(0.5 * lv.detach())
    return lambda m, v: L.apre_loss(m, v, r(6, seed=7).detach(), weights=w), [r(6, seed=5), lv]


def _ens():
    s = r(6, seed=8)
    t = torch.tensor([1, 0, 1, 1, 0, 0])
    g = L.ensloss_derivatives((2 * t - 1).double() * s.detach(), torch.Generator().manual_seed(0))
    return lambda x: L.ensloss(x, t, g=g), [s]


def _comp_sum(x: torch.Tensor, tau: float) -> torch.Tensor:
    return L.comp_sum_loss(x, Y5, tau)


def _ldr(x: torch.Tensor, normalize: str | None) -> torch.Tensor:
    return L.ldr_kl_loss(x, Y5, lam=0.7, normalize=normalize)


CASES: dict[str, tuple[Callable, list[torch.Tensor]]] = {
    "spherical_z": (lambda x: L.spherical_z_loss(x, Y5, a=0.7, b=0.5), [r(5, 3)]),
    "log_z": (lambda x: L.log_z_loss(x), [r(2, 3, 4)]),
    **{f"comp_sum_tau{t}": (functools.partial(_comp_sum, tau=t), [r(5, 3)]) for t in (0, 0.5, 1, 1.7, 2)},
    "smooth_adv": (
        lambda x, xa: L.smooth_adversarial_comp_sum_loss(x, xa, Y5, 1.5, 0.5),
        [r(5, 3), r(5, 3, seed=1)],
    ),
    **{
        f"ldr_kl_{n}": (functools.partial(_ldr, normalize=n), [r(5, 3, seed=2)])
        for n in ("softplus", "l1", None)
    },
    "ldr_kl_per_example_lambda": (
        lambda x: L.ldr_kl_loss(x, Y5, lam=torch.tensor([0.5, 1.0, 2.0, 3.0, 0.7], dtype=torch.float64)),
        [r(5, 3, seed=2)],
    ),
    "ensloss": _ens(),
    "contrastive": (lambda e: L.ContrastiveLoss(neg_margin=1.5)(e, LAB8), [r(8, 4, seed=1)]),
    "triplet": (lambda e: L.TripletMarginLoss(margin=0.3)(e, LAB8), [r(8, 4, seed=1)]),
    "multi_similarity": (lambda e: L.MultiSimilarityLoss()(e, LAB8), [r(8, 4, seed=1)]),
    "proxy_anchor": (_proxy_anchor(), [r(8, 4, seed=1), r(3, 4, seed=2)]),
    "normalized_softmax": (lambda e: _module(L.NormalizedSoftmaxLoss, 3, 4)(e, LAB8), [r(8, 4, seed=1)]),
    "metrix_contrastive": (_metrix(L.ContrastiveLoss(neg_margin=1.5)), [r(8, 4, seed=1)]),
    "metrix_ms": (_metrix(L.MultiSimilarityLoss()), [r(8, 4, seed=1)]),
    "metrix_proxy": (_metrix(_module(L.ProxyAnchorLoss, 3, 4)), [r(8, 4, seed=1)]),
    "sface": _sface(),
    "unpg": (lambda c, e: L.unpg_loss(c, e, LAB8, s=4.0), [r(8, 3, seed=3, scale=0.3), r(8, 4, seed=4)]),
    "arcface": (lambda c: L.arcface_logits(c, LAB8), [r(8, 3, seed=3, scale=0.3)]),
    "cosface": (lambda c: L.cosface_logits(c, LAB8), [r(8, 3, seed=3, scale=0.3)]),
    "proto_triplet": (
        lambda q, p: L.proto_triplet_loss(q, Y5, p, torch.arange(3), margin=2.0),
        [r(5, 2, seed=5), r(3, 2, seed=6)],
    ),
    "icnn": (lambda e: L.ICNNLoss(k=3)(e, LAB8), [r(8, 3, seed=7)]),
    "nt_xent": (lambda a, b: L.nt_xent_loss(a, b), [r(4, 3, seed=1), r(4, 3, seed=2)]),
    "info_nce": (
        lambda q, k, n: L.info_nce_loss(q, k, n, 0.5),
        [r(4, 3, seed=1), r(4, 3, seed=2), r(5, 3, seed=3)],
    ),
    "tempnet_dro": (
        lambda s, t1, t2: L.tempnet_dro_loss(s, t1.abs() + 0.2, t2.abs() + 0.2),
        [r(4, 4, seed=1), r(4, seed=2), r(4, seed=3)],
    ),
    "amcl": (_amcl(), [r(2, 4, 3, seed=1), r(2, 4, 3, seed=2)]),
    "poincare_distance": (
        lambda x, y: L.poincare_distance(L.expmap0(x), L.expmap0(y), c=1.0),
        [r(4, 3, seed=1), r(4, 3, seed=2)],
    ),
    "mobius_add": (lambda x, y: L.mobius_add(0.3 * x, 0.3 * y, 0.8), [r(4, 3, seed=1), r(4, 3, seed=2)]),
    "hyp_ce": (_hyp_ce(), [r(5, 3, seed=3, scale=0.5)]),
    "hyp_pc": (lambda z: L.HypPCLoss()(z), [r(4, 3, seed=1, scale=0.5)]),
    "hyp_pc_artanh": (lambda z: L.HypPCLoss(distance="artanh")(z), [r(4, 3, seed=1, scale=0.5)]),
    "to_poincare": (_to_poincare(), [r(4, 3, seed=2, scale=2.0)]),
    "binary_kl_norm": (lambda s: L.binary_kl_norm(s, r(5, 3, seed=9).detach()), [r(5, 3, seed=8)]),
    "kd": (lambda s: L.kd_loss(s, r(5, 3, seed=9).detach()), [r(5, 3, seed=8)]),
    "dual_head": (_dual_head(), [r(5, 3, seed=1), r(5, 3, seed=2)]),
    "rankme": (lambda z: L.rankme(z), [r(6, 4, seed=1)]),
    "cs_divergence": (lambda x, y: L.cs_divergence(x, y), [r(5, 2, seed=1), r(6, 2, seed=2)]),
    "cs_qmi": (lambda x, t: L.cs_qmi(x, t), [r(6, 2, seed=1), r(6, 3, seed=2)]),
    "cs_ib": (
        lambda t, yh: L.CSIBLoss(beta=0.5)(r(6, 2, seed=3).detach(), t, r(6, seed=4).detach(), yh),
        [r(6, 3, seed=1), r(6, seed=2)],
    ),
    "apre": _apre(),
    "depict": _depict(),
    "sfda": (
        lambda z: L.sfda_loss(z, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)),
        [r(2, 3, 2, 2, seed=1)],
    ),
    "sinkhorn": (lambda x, y: L.sinkhorn_divergence(x, y, blur=0.5), [r(4, 3, seed=1), r(5, 3, seed=2)]),
    "min_ade": (lambda p: L.min_ade(p, GT1), [r(2, 3, 4, 2, seed=1)]),
    "min_fde": (lambda p: L.min_fde(p, GT1), [r(2, 3, 4, 2, seed=1)]),
    "jade": (lambda p: L.jade(p, GT2), [r(2, 3, 2, 4, 2, seed=1)]),
    "jfde": (lambda p: L.jfde(p, GT2), [r(2, 3, 2, 4, 2, seed=1)]),
    "aggregate": (
        lambda p: L.interpolating_loss(p, torch.tensor([0, 0, 1, 1, 1, 2]), r(3, seed=2).detach(), rho=0.3),
        [r(6, seed=1)],
    ),
    "ca": (
        lambda z: L.ca_loss(z, Y5, torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0], dtype=torch.float64)),
        [r(5, 3)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    fn, inputs = CASES[name]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
