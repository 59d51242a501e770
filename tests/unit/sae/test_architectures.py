"""Encode/decode shapes and the sparsity rule of every architecture; sparse decode == dense decode."""

from __future__ import annotations

import pytest
import torch

from workbench import sae
from workbench.errors import WorkbenchError


def _make(arch: str, **kw) -> sae.SparseAutoencoder:
    return sae.build(sae.SAEConfig(arch=arch, d_in=16, d_sae=64, k=4, **kw), seed=1)


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "mutual_choice", "feature_choice"])
def test_shapes_and_dense_equals_sparse_decode(arch):
    m = _make(arch).train()
    x = torch.randn(37, 16)
    codes = m.encode_codes(x)
    dense = codes.dense()
    assert dense.shape == (37, 64)
    assert torch.allclose(m.decode_codes(codes), m.decode(dense), atol=1e-5)
    m.eval()
    z = m.encode(torch.randn(2, 5, 16))
    assert z.shape == (2, 5, 64)
    assert m.decode(z).shape == (2, 5, 16)


def test_topk_exactly_k_per_token():
    m = _make("topk").train()
    pre = torch.randn(50, 64) + 5  # all positive: ReLU zeroes nothing
    codes = m.select(pre)
    assert (codes.dense() != 0).sum(-1).tolist() == [4] * 50
    top = pre.topk(4, dim=-1).indices.sort(-1).values
    assert torch.equal(codes.idx.sort(-1).values, top)


def test_mutual_choice_exactly_kB_per_batch_and_variable_per_token():
    m = _make("mutual_choice").train()
    pre = torch.randn(40, 64) + 3
    pre[0] += 10  # token 0 should take many latents
    codes = m.select(pre)
    per_token = (codes.dense() != 0).sum(-1)
    assert int(per_token.sum()) == 4 * 40
    assert per_token[0] > 4 and per_token.min() < 4
    # the chosen entries are the global top k*B
    thresh = pre.flatten().topk(160).values.min()
    assert bool((codes.dense()[codes.dense() != 0] >= thresh).all())


@pytest.mark.parametrize("capacities", ["uniform", "zipf"])
def test_feature_choice_at_most_m_per_feature(capacities):
    m = _make("feature_choice", capacities=capacities).train()
    pre = torch.randn(64, 64) + 1
    codes = m.select(pre)
    per_feature = (codes.dense() != 0).sum(0)
    cap = m.capacities(64)
    assert bool((per_feature <= cap).all())
    assert int(cap.sum()) >= 4 * 64 - 64  # total budget ~ k*B
    if capacities == "uniform":
        assert int(cap[0]) == 4 and bool((per_feature == 4).all())  # all pre > 0 here: full capacity
    else:
        assert cap[0] > cap[-1]


def test_inference_thresholds_encode_single_tokens():
    for arch in ("batchtopk", "feature_choice"):
        m = _make(arch).train()
        for _ in range(5):
            pre = torch.randn(128, 64)
            m.after_step(m.select(pre), pre)
        assert bool((m.threshold > 0).all())
        m.eval()
        x = torch.randn(1, 16)
        z = m.encode(x)
        pre = m.pre_acts(x)
        assert torch.equal(z != 0, pre > m.threshold)
        assert torch.allclose(z[z != 0], pre[z != 0])


def test_unknown_arch_is_a_user_error():
    with pytest.raises(WorkbenchError, match="unknown SAE arch"):
        sae.SAEConfig(arch="nope")


def test_geometric_median_resists_outliers():
    pts = torch.zeros(101, 3)
    pts[:60] = 1.0
    pts[60:] = torch.randn(41, 3) * 0.01 + 1.0
    pts[0] = 1000.0
    med = sae.base.geometric_median(pts)
    assert torch.allclose(med, torch.ones(3), atol=0.05)
    assert float(pts.mean(0)[0]) > 10
