"""GPTQ: beats round-to-nearest on its own objective, reduces to it when H is the identity."""

from __future__ import annotations

import pytest
import torch

from workbench.quantization import quant_info, quantize
from workbench.quantization.calib import token_chunks
from workbench.quantization.gptq import gptq_quantize_weight
from workbench.quantization.grid import IntGrid, fake_quant_int

_CACHE: dict[str, torch.Tensor] = {}


def _inputs(lm, texts, name):
    if name in _CACHE:
        return _CACHE[name]
    chunks = token_chunks(lm.tokenizer, texts * 4, seq_len=32, n_calib=16).calib
    with lm.hooks() as h:
        cap = h.capture(f"input:{name}")
        with torch.no_grad():
            lm.model(input_ids=chunks)
    _CACHE[name] = cap.value.reshape(-1, cap.value.shape[-1]).float()
    return _CACHE[name]


def test_input_site_is_the_linear_input(tiny_lm):
    ids = tiny_lm.tokenize("The quick brown fox")
    with tiny_lm.hooks() as h:
        a = h.capture("input:model.layers.1.mlp.down_proj")
        b = h.capture("layers.1.mlp.hidden")
        out = h.capture("model.layers.1.mlp.down_proj")
        tiny_lm.model(**ids)
    torch.testing.assert_close(a.value, b.value)
    w = tiny_lm.model.model.layers[1].mlp.down_proj.weight
    torch.testing.assert_close(a.value @ w.T, out.value)


@pytest.mark.parametrize(
    "name",
    ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.down_proj"],
)
@pytest.mark.parametrize("bits,group", [(2, None), (3, 32), (4, 32)])
def test_gptq_layer_output_error_below_rtn(tiny_lm, texts, name, bits, group):
    X = _inputs(tiny_lm, texts, name)
    W = dict(tiny_lm.model.named_modules())[name].weight.detach()
    H = 2 * X.T @ X / len(X)
    grid = IntGrid(bits, sym=True)
    q = gptq_quantize_weight(W, H, grid, group)
    r = fake_quant_int(W, grid, group)
    err_gptq = float(((X @ (q - W).T) ** 2).sum())
    err_rtn = float(((X @ (r - W).T) ** 2).sum())
    assert err_gptq < 0.9 * err_rtn
    # the GPTQ weights lie on the grid: at most 2^bits distinct values per row (and group)
    g = group or W.shape[1]
    per_group = q.reshape(W.shape[0], -1, g)
    assert (
        max(len(torch.unique(per_group[i, j])) for i in range(4) for j in range(per_group.shape[1]))
        <= 2**bits
    )


def test_gptq_with_identity_hessian_is_rtn():
    torch.manual_seed(0)
    W = torch.randn(16, 64)
    grid = IntGrid(3, sym=False)
    q = gptq_quantize_weight(W, torch.eye(64), grid, None, damp=0.0)
    torch.testing.assert_close(q, fake_quant_int(W, grid, None))


def test_gptq_model_runs_and_reports_packed_size(tiny_lm, texts):
    q = quantize(tiny_lm, "gptq-4", calib=texts * 4, group_size=32, seq_len=32, n_samples=8)
    info = quant_info(q)
    assert info.method == "gptq" and info.options["bits"] == 4
    assert info.stored_bytes == info.fp_bytes  # fake-quantized: floats kept
    assert info.packed_bytes < 0.5 * info.fp_bytes
    w0 = tiny_lm.model.model.layers[0].mlp.up_proj.weight
    w1 = q.model.model.layers[0].mlp.up_proj.weight
    assert not torch.equal(w0, w1)
    assert w0.data_ptr() != w1.data_ptr()  # the input model is untouched
    assert torch.equal(q.model.lm_head.weight, tiny_lm.model.lm_head.weight)  # output embedding skipped
