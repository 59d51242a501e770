"""Key statistics: C = E[k kᵀ] over the source's tokens, cached, and invalidated when the weights change."""

from __future__ import annotations

import torch

import workbench.editing.stats as stats
from workbench.editing import second_moments
from workbench.editing.sources import read_texts, sample_texts
from workbench.hooks import run_with_cache


def test_matches_a_direct_computation(lm3, source):
    texts = sample_texts(read_texts(source), 50, 0)
    C = second_moments(lm3, [1], source, n_samples=50, progress=False, use_cache=False)[1]
    ks = []
    for t in texts:
        _, acts = run_with_cache(lm3, lm3.tokenize(t), ["layers.1.mlp.hidden"])
        ks.append(acts["layers.1.mlp.hidden"][0].double())
    k = torch.cat(ks)
    torch.testing.assert_close(C, k.T @ k / k.shape[0], rtol=1e-6, atol=1e-9)


def test_cache_is_reused_and_invalidated_by_weight_changes(lm3, source, monkeypatch):
    calls = []
    real = stats._accumulate
    monkeypatch.setattr(stats, "_accumulate", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    first = second_moments(lm3, [0, 1], source, n_samples=30, progress=False)
    again = second_moments(lm3, [0, 1], source, n_samples=30, progress=False)
    assert calls == [[0, 1]] and all(torch.equal(first[i], again[i]) for i in (0, 1))
    with torch.no_grad():  # layer 1's own down projection and later layers do not change layer 1's keys
        lm3.model.model.layers[1].mlp.down_proj.weight.mul_(1.5)
        lm3.model.model.layers[2].mlp.up_proj.weight.mul_(1.5)
    second_moments(lm3, [1], source, n_samples=30, progress=False)
    assert calls == [[0, 1]]
    with torch.no_grad():  # an earlier layer's weights do
        lm3.model.model.layers[0].mlp.up_proj.weight.mul_(1.5)
    changed = second_moments(lm3, [0, 1], source, n_samples=30, progress=False)
    assert calls == [[0, 1], [0, 1]] and not torch.equal(changed[1], first[1])
    second_moments(lm3, [1], source, n_samples=31, progress=False)  # another sample count: another entry
    assert calls[-1] == [1]
