"""RankMe of orthonormal bases, and the Cauchy–Schwarz divergence estimators."""

from __future__ import annotations

import pytest
import torch

from workbench.losses import CSIBLoss, conditional_cs_divergence, cs_divergence, cs_qmi, rankme


@pytest.mark.parametrize("d", [1, 4, 16])
def test_rankme_of_orthonormal_basis_is_its_dimension(d):
    q, _ = torch.linalg.qr(torch.randn(32, d, dtype=torch.float64))
    assert rankme(q.t()).item() == pytest.approx(d, rel=1e-5)  # rows: an orthonormal basis
    assert rankme(torch.eye(d, dtype=torch.float64)).item() == pytest.approx(d, rel=1e-5)


def test_rankme_of_rank_one_matrix_is_one():
    u = torch.randn(20, 1, dtype=torch.float64)
    v = torch.randn(1, 8, dtype=torch.float64)
    assert rankme(u @ v).item() == pytest.approx(1.0, rel=1e-4)


def test_cs_divergence_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g, dtype=torch.float64)
    y = torch.randn(40, 2, generator=g, dtype=torch.float64) + 2.0
    assert cs_divergence(x, x).item() == pytest.approx(0.0, abs=1e-12)
    assert cs_divergence(x, y) > 0.5
    torch.testing.assert_close(cs_divergence(x, y), cs_divergence(y, x))


def test_cs_qmi_detects_dependence_and_conditional_divergence_vanishes():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 1, generator=g, dtype=torch.float64)
    noise = torch.randn(60, 1, generator=g, dtype=torch.float64)
    assert cs_qmi(x, x) > cs_qmi(x, noise) + 0.1
    y = torch.sin(x).squeeze(1)
    assert conditional_cs_divergence(x, y, y).item() == pytest.approx(0.0, abs=1e-12)
    assert conditional_cs_divergence(x, y, y + 1.0) > 0.05
    loss = CSIBLoss(beta=0.1)
    torch.testing.assert_close(loss(x, noise, y, y), 0.1 * cs_qmi(x, noise))
