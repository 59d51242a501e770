"""The layer-skipping trace (cells start at their first restored block, from the cached corrupted run)
equals the full-forward trace and ROME's per-cell ``trace_with_patch``."""

from __future__ import annotations

import pytest
import torch

from workbench.models.tiny import tiny_model
from workbench.tracing.causal_trace import fact_noise, trace_with_patch, window_layers
from workbench.tracing.restore import fact_baseline, restored_grid
from workbench.tracing.resume import resumer, run_from
from workbench.tracing.subject import as_fact, encode_fact

KINDS = ["hidden", "mlp", "attn"]
LAYERS = 3
FACT = {"prompt": "Mira Okafor was born in", "subject": "Mira Okafor"}


def _sharp(lm, seed: int = 0):
    """Larger random weights, so that restoring a state moves the answer's probability visibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.model.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 2.4 / p.shape[-1] ** 0.5)
    return lm


def _fact(lm, samples: int = 3):
    ids, span = encode_fact(lm.tokenizer, as_fact(FACT, 0), 0)
    eps = fact_noise(5, 0, samples, span[1] - span[0], lm.d_model) * 0.5
    return ids, span, eps


def _reference(lm, ids, span, eps, answer, window):
    """ROME: one forward per cell, restoring the cell's states from the clean row."""
    L, T = lm.n_layers, len(ids)
    out = {}
    for kind in KINDS:
        grid = torch.empty(T, L)
        for t in range(T):
            for layer in range(L):
                if kind == "hidden":
                    sites = [f"layers.{layer}"]
                else:
                    sites = [f"layers.{w}.{kind}" for w in window_layers(layer, window, L)]
                grid[t, layer] = trace_with_patch(lm, ids, span, eps, [(s, t) for s in sites], answer)
        out[kind] = grid
    return out


def _worst(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in KINDS)


@pytest.mark.parametrize("family", ["olmo2", "llama-like", "gpt2", "olmoe", "gpt_neox"])
@pytest.mark.parametrize("window", [2, 7])  # 7 > depth: every window is clipped to the model
def test_layer_skipping_equals_full_forwards_and_rome(family, window):
    lm = _sharp(tiny_model(family, layers=LAYERS, seed=1))
    assert resumer(lm) is not None
    ids, span, eps = _fact(lm)
    ref, with_rome = None, window > LAYERS or family == "olmo2"  # ROME's loop is the slow part
    for reuse in (True, False):
        base = fact_baseline(lm, ids, span, eps, reuse_prefix=reuse)
        kw = dict(window=window, max_batch_tokens=200, reuse_prefix=reuse)
        fast = restored_grid(lm, ids, span, eps, base.answer, KINDS, resume_layers=True, base=base, **kw)
        full = restored_grid(lm, ids, span, eps, base.answer, KINDS, resume_layers=False, **kw)
        assert _worst(fast, full) <= 1e-5
        if with_rome:
            ref = ref or _reference(lm, ids, span, eps, base.answer, window)
            assert _worst(fast, ref) <= 1e-5
    # the grids are not flat: a wrong restoration would show
    assert max(float(full[k].max() - full[k].min()) for k in KINDS) > 0.01


def test_eager_attention_and_one_cell_per_chunk():
    lm = _sharp(tiny_model("olmo2", layers=LAYERS, seed=2))
    lm.model.set_attn_implementation("eager")
    assert lm.model.config._attn_implementation == "eager"
    ids, span, eps = _fact(lm)
    base = fact_baseline(lm, ids, span, eps)
    fast = restored_grid(lm, ids, span, eps, base.answer, KINDS, window=3, max_batch_tokens=1, base=base)
    ref = _reference(lm, ids, span, eps, base.answer, 3)
    assert _worst(fast, ref) <= 1e-5


def test_sliding_window_family_falls_back_to_full_forwards():
    lm = _sharp(tiny_model("olmo3", layers=LAYERS, seed=3))
    assert resumer(lm) is None
    ids, span, eps = _fact(lm)
    base = fact_baseline(lm, ids, span, eps)
    assert base.states is None and base.kv is None
    fast = restored_grid(lm, ids, span, eps, base.answer, KINDS, window=2, base=base)
    ref = _reference(lm, ids, span, eps, base.answer, 2)
    assert _worst(fast, ref) <= 1e-5


@pytest.mark.parametrize("family", ["olmo2", "gpt2"])
@pytest.mark.parametrize("start", [0, 4])
def test_rows_starting_at_any_block_reproduce_the_corrupted_run(family, start):
    """Without restorations, a row gives its cached run's logits whatever block it starts at."""
    lm = _sharp(tiny_model(family, layers=LAYERS, seed=4))
    ids, span, eps = _fact(lm)
    base = fact_baseline(lm, ids, span, eps)
    S = eps.shape[0]
    src = torch.tensor([0, 1, 2, 3, 1, 2, 3, 2])
    first = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    logits = run_from(resumer(lm), base.states, src, first, {}, start=start, kv=base.kv)
    x = torch.tensor([ids] * (S + 1))
    with lm.hooks() as h, torch.no_grad():
        h.add("embed", eps, rows=range(1, S + 1), positions=range(*span))
        want = lm.model(input_ids=x).logits[:, -1]
    assert torch.allclose(logits, want[src], atol=1e-5)
    assert not torch.allclose(want[0], want[1], atol=1e-3)  # clean and corrupted rows differ


def test_baseline_keeps_states_and_cache_only_when_asked():
    lm = tiny_model("olmo2", layers=LAYERS, seed=5)
    ids, span, eps = _fact(lm)
    both = fact_baseline(lm, ids, span, eps)
    assert len(both.states) == LAYERS and both.states[0].shape == (eps.shape[0] + 1, len(ids), lm.d_model)
    assert len(both.kv) == LAYERS
    neither = fact_baseline(lm, ids, span, eps, reuse_prefix=False, resume_layers=False)
    assert neither.states is None and neither.kv is None
    assert (neither.answer, neither.clean) == (both.answer, pytest.approx(both.clean, abs=1e-6))
