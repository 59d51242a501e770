"""LDR-KL, ALDR-KL and EnsLoss: hand-computed values, the paper's limits, and the state updates."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.losses import ALDRKLLoss, EnsLoss, LDRKLLoss, LossShapeError, ensloss, ldr_kl_loss


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded float64 normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_ldr_kl_fixed_value_by_hand():
    z, y, lam, c = [0.5, -1.0, 2.0], 2, 10.0, 0.1
    f = [_softplus(v) for v in z]
    mean_f = sum(f) / 3
    f = [v / mean_f for v in f]
    d = [f[k] - f[y] + (c if k != y else 0.0) for k in range(3)]
    expected = lam * math.log(sum(math.exp(v / lam) for v in d) / 3)
    got = LDRKLLoss()(torch.tensor([z], dtype=torch.float64), torch.tensor([y]))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_ldr_kl_limits():
    logits, targets = randn(7, 4, seed=2), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    # lambda = 1, no margin, raw scores: cross-entropy minus log K (the CE-like member of the family)
    got = ldr_kl_loss(logits, targets, lam=1.0, margin=0.0, normalize=None, reduction="none")
    torch.testing.assert_close(got, F.cross_entropy(logits, targets, reduction="none") - math.log(4))
    h_y = logits.gather(1, targets.unsqueeze(1))
    d = logits - h_y + 0.3 * (1 - F.one_hot(targets, 4).double())
    # lambda -> 0: Crammer-Singer max; lambda -> infinity: mean margin
    small = ldr_kl_loss(logits, targets, lam=1e-4, margin=0.3, normalize=None, reduction="none")
    torch.testing.assert_close(small, d.max(1).values, atol=2e-4, rtol=0)
    large = ldr_kl_loss(logits, targets, lam=1e5, margin=0.3, normalize=None, reduction="none")
    torch.testing.assert_close(large, d.mean(1), atol=1e-4, rtol=0)


def test_aldr_kl_fixed_value_and_state():
    z = torch.tensor([[2.0, -0.5, 0.3], [1.0, 3.0, -2.0]], dtype=torch.float64)
    y, idx = torch.tensor([0, 2]), torch.tensor([4, 1])
    lam0, alpha, c, k = 10.0, 2.0, 0.1, 3
    loss = ALDRKLLoss(num_samples=6, lam0=lam0, alpha=alpha, margin=c).double()
    expected, lams = [], []
    for row, t in zip(z.tolist(), y.tolist()):
        scale = sum(abs(v) for v in row) / k
        f = [v / scale for v in row]
        d = [f[j] - f[t] + (c if j != t else 0.0) for j in range(k)]
        w = [math.exp(v / lam0) for v in f]  # the official p: scores without the margin, + 1e-5
        p = [v / sum(w) + 1e-5 for v in w]
        p = [v / sum(p) for v in p]
        kl = sum(pi * math.log(k * pi) for pi in p)
        lam = lam0 * (1 - kl / (alpha * math.log(k)))
        val = lam * math.log(sum(math.exp(v / lam) for v in d) / k)
        expected.append(val - alpha * math.log(k) / (2 * lam0) * (lam - lam0) ** 2)
        lams.append(lam)
    got = loss(z, y, idx)
    assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-10)
    assert loss.lambdas[4].item() == pytest.approx(lams[0], rel=1e-6)
    assert loss.lambdas[1].item() == pytest.approx(lams[1], rel=1e-6)
    assert loss.lambdas[0].item() == lam0  # untouched
    # a second call starts p from the stored temperatures, not from lambda_0
    loss.eval()
    again = loss(z, y, idx)
    assert again.item() != pytest.approx(got.item(), rel=1e-15)


def test_aldr_kl_gradient_is_ldr_kl_at_the_adapted_temperatures():
    z = randn(5, 4, seed=3).requires_grad_(True)
    y, idx = torch.tensor([0, 1, 3, 2, 1]), torch.arange(5)
    loss = ALDRKLLoss(num_samples=5).double().eval()
    loss(z, y, idx).backward()
    with torch.no_grad():
        loss.train()
        loss(z, y, idx)  # stores the adapted temperatures
    z2 = z.detach().clone().requires_grad_(True)
    ldr_kl_loss(z2, y, lam=loss.lambdas.double(), margin=0.1, normalize="l1").backward()
    torch.testing.assert_close(z.grad, z2.grad)


def test_aldr_kl_index_errors():
    loss = ALDRKLLoss(num_samples=3)
    with pytest.raises(LossShapeError, match="indices"):
        loss(torch.randn(2, 3), torch.tensor([0, 1]), torch.tensor([0, 7]))


def _ensloss_by_hand(scores: list[float], targets: list[int], seed: int) -> tuple[float, list[float]]:
    z = [(2 * t - 1) * s for s, t in zip(scores, targets)]
    e = torch.randn(len(z), generator=torch.Generator().manual_seed(seed), dtype=torch.float32).tolist()
    draws = sorted(-math.exp(v) for v in e)
    draws = [max(v, -1.0) for v in draws]
    order = sorted(range(len(z)), key=lambda i: z[i])
    g = [0.0] * len(z)
    for rank, i in enumerate(order):
        g[i] = draws[rank]
    g = [gi / zi if zi > 1 else gi for gi, zi in zip(g, z)]
    g = [gi - 1e-6 for gi in g]
    return sum(gi * zi for gi, zi in zip(g, z)) / len(z), g


def test_ensloss_fixed_value_and_gradient_by_hand():
    scores, targets = [0.3, -1.2, 2.5, 0.9, -0.1, 1.7], [1, 1, 1, 0, 0, 1]
    expected, g = _ensloss_by_hand(scores, targets, seed=7)
    s = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(targets)
    got = ensloss(s, t, generator=torch.Generator().manual_seed(7))
    # g is kept in float32 (as the official code), this hand computation in double: agree to float32 rounding
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got.backward()
    expected_grad = [gi * (2 * ti - 1) / len(g) for gi, ti in zip(g, targets)]
    torch.testing.assert_close(s.grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=1e-6, atol=1e-9)
    # calibrated and convex: every derivative negative, non-decreasing in the margin below z = 1
    z = [(2 * ti - 1) * si for si, ti in zip(scores, targets)]
    below = sorted((zi, gi) for zi, gi in zip(z, g) if zi <= 1)
    assert all(gi < 0 for gi in g)
    assert all(a[1] <= b[1] for a, b in zip(below, below[1:]))


def test_ensloss_module_is_seeded_and_one_vs_rest_shapes():
    scores = randn(4, 3, seed=5)
    targets = torch.tensor([0, 2, 1, 1])
    a = EnsLoss(seed=3)(scores, targets)
    b = EnsLoss(seed=3)(scores, targets)
    torch.testing.assert_close(a, b)
    assert EnsLoss(reduction="none")(scores, targets).shape == (12,)
    with pytest.raises(LossShapeError, match="0 or 1"):
        ensloss(torch.zeros(3), torch.tensor([0, 2, 1]))
