"""Parameter selection: frozen parameters stay bit-for-bit, selected ones move; filters; LoRA."""

from __future__ import annotations

import pytest
import torch

from workbench.config import from_dict
from workbench.errors import WorkbenchError
from workbench.models import load
from workbench.unlearning import SelectConfig, UnlearnConfig, apply_selection, unlearn


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "method,select",
    [
        ("constrained", {"layers": [1], "kind": "mlp"}),
        ("npo", {"layers": [0, 2], "kind": "attn"}),
        ("rmu", {"layers": [0, 1], "kind": "mlp.down"}),
        ("grad_diff", {"layers": [1], "kind": "mlp", "lora_rank": 2}),
    ],
)
def test_frozen_unchanged_selected_changed(tiny_model_dir, semeval_dir, tmp_path, method, select):
    before = _snapshot(load(tiny_model_dir).model)
    cfg = from_dict(
        UnlearnConfig,
        {
            "model": str(tiny_model_dir),
            "out": str(tmp_path / "run"),
            "method": method,
            "data": {"path": str(semeval_dir)},
            "select": select,
            "train": {"max_steps": 3, "batch_size": 2, "lr": 1e-3, "eval_every": 0, "keep_best": False,
                      "progress": False},
        },
    )  # fmt: skip
    result = unlearn(cfg)
    after = _snapshot(load(result.model_dir).model)
    tag = {"mlp": ".mlp.", "attn": ".self_attn.", "mlp.down": ".mlp.down_proj."}[select["kind"]]
    selected = {n for n in before if any(f"layers.{i}{tag}" in n for i in select["layers"])}
    assert selected
    if "lora_rank" not in select:
        assert result.trainable == sum(before[n].numel() for n in selected)
    for n in before:
        if n in selected:  # with LoRA: the merged factors changed every selected weight
            assert not torch.equal(before[n], after[n]), f"{n} should have changed"
        else:
            assert torch.equal(before[n], after[n]), f"{n} is frozen but changed"
    assert (result.out / "metrics.json").is_file() and (result.out / "curves.png").is_file()


def test_filters_and_share(tiny_olmo2):
    sel = apply_selection(tiny_olmo2, SelectConfig(layers=[1], kind="all"))
    assert all(n.startswith("model.layers.1.") for n in sel.names)
    assert sel.trainable == sum(p.numel() for p in tiny_olmo2.model.model.layers[1].parameters())
    assert 0 < sel.share < 1 and "layers [1]" in sel.describe()
    trainable = {n for n, p in tiny_olmo2.model.named_parameters() if p.requires_grad}
    assert trainable == set(sel.names)
    glob = apply_selection(tiny_olmo2, SelectConfig(layers="all", kind="*.q_proj.weight"))
    assert glob.names == ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight"]
    with pytest.raises(WorkbenchError, match="matches no parameter"):
        apply_selection(tiny_olmo2, SelectConfig(layers=[0], kind="*.nothing"))
    with pytest.raises(WorkbenchError, match="give select.layers"):
        apply_selection(tiny_olmo2, SelectConfig())


@pytest.mark.parametrize(
    "family,module", [("gpt2", "transformer.h.0.mlp."), ("gpt_neox", "gpt_neox.layers.0.mlp.")]
)
def test_mlp_filter_on_other_families(family, module):
    from workbench.models.tiny import tiny_model

    lm = tiny_model(family)
    sel = apply_selection(lm, SelectConfig(layers=[0], kind="mlp"))
    assert sel.names and all(n.startswith(module) for n in sel.names)


def test_lora_on_exactly_the_selected_modules(tiny_olmo2):
    sel = apply_selection(tiny_olmo2, SelectConfig(layers=[1], kind="mlp", lora_rank=2))
    assert sel.names and all("lora_" in n and ".layers.1.mlp." in n for n in sel.names)
    targets = {n.split(".lora_")[0] for n in sel.names}
    assert targets == {f"model.layers.1.mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj")}
    base = [p for n, p in tiny_olmo2.model.named_parameters() if "lora_" not in n]
    assert not any(p.requires_grad for p in base)


def test_layers_from_a_causal_trace(tiny_model_dir, tmp_path):
    from workbench.tracing import TraceResult, causal_trace

    lm = load(tiny_model_dir)
    facts = [{"prompt": "Mira Okafor was born in the city of", "subject": "Mira Okafor"},
             {"prompt": "The Eiffel Tower is located in the city of", "subject": "The Eiffel Tower"}]  # fmt: skip
    causal_trace(lm, facts, kinds=("mlp",), samples=2, keep_unknown=True, progress=False).save(
        tmp_path / "trace"
    )
    trace = TraceResult.load(tmp_path / "trace")
    top = apply_selection(lm, SelectConfig(trace=str(tmp_path / "trace"), top_n=2, kind="mlp"))
    assert top.layers == sorted(trace.top_layers("mlp", 2))
    assert all(any(f"layers.{i}.mlp." in n for i in top.layers) for n in top.names)
    block = apply_selection(lm, SelectConfig(trace=str(tmp_path / "trace"), peak_width=2, kind="mlp"))
    assert block.layers == trace.peak_block("mlp", 2)
    with pytest.raises(WorkbenchError, match="either select.layers or select.trace"):
        apply_selection(lm, SelectConfig(layers=[0], trace=str(tmp_path / "trace")))


def test_full_parameter_glob_includes_embeddings(tiny_olmo2):
    sel = apply_selection(tiny_olmo2, SelectConfig(layers="all", kind="*"))
    assert sel.trainable == sel.total and "model.embed_tokens.weight" in sel.names
