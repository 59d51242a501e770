"""bitsandbytes on in-memory models that bench_scale.py found wanting at real size: a bf16 model must stay
bf16 where bnb does not quantize (it was reloaded in fp32, so "quantizing" OLMoE doubled its memory), and a
model whose weights are mostly not ``nn.Linear`` (fused MoE experts) gets a warning."""

from __future__ import annotations

import logging

import pytest
import torch

from workbench.models.tiny import tiny_model
from workbench.quantization import quant_info, quantize

pytest.importorskip("bitsandbytes")


@pytest.mark.parametrize("method", ["bnb-nf4", "bnb-int8"])
def test_in_memory_bf16_model_keeps_bf16_outside_the_quantized_linears(method):
    lm = tiny_model("olmo2", d_model=64, dtype=torch.bfloat16)
    q = quantize(lm, method)
    assert q.model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert q.model.get_output_embeddings().weight.dtype == torch.bfloat16
    info = quant_info(q)
    assert info.stored_bytes < info.fp_bytes  # smaller than the bf16 model, not larger
    logits = q.model(input_ids=torch.tensor([[0, 5, 9, 17]])).logits
    assert torch.isfinite(logits.float()).all()


def test_fp32_model_stays_fp32():
    q = quantize(tiny_model("olmo2", d_model=64), "bnb-int8")
    assert q.model.get_input_embeddings().weight.dtype == torch.float32


def test_warns_when_most_weights_are_not_linear(caplog):
    with caplog.at_level(logging.WARNING, logger="workbench.quantization.bnb"):
        quantize(tiny_model("olmoe", d_model=64), "bnb-int8")  # experts are fused 3-D tensors
    assert "quantized only" in caplog.text and "MoE" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="workbench.quantization.bnb"):
        quantize(tiny_model("olmo2", d_model=64), "bnb-int8")
    assert "quantized only" not in caplog.text
