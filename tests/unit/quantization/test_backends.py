"""Every registered method on a tiny model: runs, keeps hooks working, and fails clearly on bad input."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.quantization import method_names, quant_info, quantize
from workbench.quantization._common import dequantized_weight, quantizable_linears

pytest.importorskip("bitsandbytes")


def _opts(method, texts):
    if method == "gptq":
        return dict(calib=texts * 4, seq_len=32, n_samples=8, group_size=32)
    return {}


def _kl(a, b):
    la, lb = torch.log_softmax(a.float(), -1), torch.log_softmax(b.float(), -1)
    return float((la.exp() * (la - lb)).sum(-1).mean())


@pytest.mark.parametrize("method", method_names())
def test_method_runs_and_hooks_work(tiny_lm, texts, method):
    ids = tiny_lm.tokenize(["The quick brown fox jumps over", "Mira Okafor was born in"])
    with torch.no_grad():
        ref = tiny_lm.model(**ids).logits
    before = {k: v.clone() for k, v in tiny_lm.model.state_dict().items()}
    q = quantize(tiny_lm, method, **_opts(method, texts))
    info = quant_info(q)
    assert info.method == method and len(info.quantized_layers) == 14
    with q.hooks() as h:
        hidden = h.capture("layers.1.mlp.hidden")
        h.ablate("layers.0.attn", mode="zero")
        with torch.no_grad():
            ablated = q.model(**ids).logits
    assert hidden.value.shape == (2, ids["input_ids"].shape[1], 128)
    with torch.no_grad():
        out = q.model(**ids).logits
    assert not torch.allclose(out, ablated)  # the intervention reached the quantized model
    assert _kl(ref, out) < 0.05  # still the same model
    assert not torch.equal(ref, out)  # ... but quantized
    for k, v in tiny_lm.model.state_dict().items():  # the input model is untouched
        assert torch.equal(v, before[k]), k
    fp = dict(tiny_lm.model.named_modules())
    for name, mod in quantizable_linears(q.model).items():
        w0 = fp[name].weight.float()
        rel = float((dequantized_weight(mod) - w0.detach()).norm() / w0.norm())
        limit = 0.02 if "int8" in method else (0.4 if method == "gptq" else 0.3)  # gptq trades weight error
        assert 0 < rel < limit, (name, rel)


def test_bnb_nf4_equals_native_nf4_rtn(tiny_lm):
    bnb = quantize(tiny_lm, "bnb-nf4")
    rtn = quantize(tiny_lm, "rtn", grid="nf4", group_size=64)
    mods = dict(rtn.model.named_modules())
    for name, mod in quantizable_linears(bnb.model).items():
        assert type(mod).__name__ == "Linear4bit"
        torch.testing.assert_close(dequantized_weight(mod), mods[name].weight, atol=1e-6, rtol=0)


def test_bnb_from_folder_equals_in_memory(tiny_lm, tmp_path):
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    a = quantize(str(tmp_path), "bnb-fp4", double_quant=True, compute_dtype="float32")
    b = quantize(tiny_lm, "bnb-fp4", double_quant=True, compute_dtype="float32")
    w = a.model.model.layers[0].self_attn.q_proj.weight
    assert w.quant_state.nested and w.quant_state.quant_type == "fp4"
    ids = tiny_lm.tokenize("The Eiffel Tower is located in")
    torch.testing.assert_close(a.model(**ids).logits, b.model(**ids).logits)
    assert quant_info(a).packed_bytes < quant_info(a).fp_bytes / 2


def test_unknown_method_and_options():
    lm = None
    with pytest.raises(WorkbenchError, match="unknown quantization method 'nf3'.*bnb-nf4"):
        quantize(lm, "nf3")
    with pytest.raises(WorkbenchError, match="no option bits"):
        quantize(lm, "bnb-nf4", bits=4)
    with pytest.raises(WorkbenchError, match="bits=12 is out of range"):
        quantize(lm, "rtn-12")
    with pytest.raises(WorkbenchError, match="conflicts"):
        quantize(lm, "gptq-4", bits=3)
    with pytest.raises(WorkbenchError, match="compute dtype"):
        quantize(lm, "bnb-nf4", compute_dtype="int3")


def test_4bit_on_cpu_needs_out_features_multiple_of_32():
    from workbench.models.tiny import tiny_model

    lm = tiny_model("olmo2", d_model=48, heads=4)
    with pytest.raises(
        WorkbenchError,
        match=r"bnb-nf4 on the CPU: layer 'model\.layers\.0\.self_attn\.q_proj' "
        r"has out_features=48, not a multiple of 32",
    ):
        quantize(lm, "bnb-nf4")
    assert quant_info(quantize(lm, "bnb-int8")).method == "bnb-int8"  # int8 has no such limit


def test_group_size_must_divide(tiny_lm):
    with pytest.raises(WorkbenchError, match="group_size=48 does not divide in_features=64"):
        quantize(tiny_lm, "rtn-4", group_size=48)
    with pytest.raises(WorkbenchError, match="torchao-int4wo with group_size=48.*in_features=64"):
        quantize(tiny_lm, "torchao-int4wo", group_size=48)


def test_gptq_needs_calibration_text(tiny_lm):
    with pytest.raises(WorkbenchError, match="no calibration text"):
        quantize(tiny_lm, "gptq-4")
