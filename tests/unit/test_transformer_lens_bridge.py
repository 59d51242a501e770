"""lm.to_transformer_lens(): a TransformerBridge over the workbench model's own weights."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.models.transformer_lens import TL_HOOKS, tl_hook_name


@pytest.fixture(scope="module")
def lm_and_bridge(tmp_path_factory):
    from workbench.models import load
    from workbench.models.tiny import tiny_model

    folder = tmp_path_factory.mktemp("tiny")
    src = tiny_model("olmo2", layers=2, seed=5)
    src.model.save_pretrained(folder)
    src.tokenizer.save_pretrained(folder)
    lm = load(folder)
    return lm, lm.to_transformer_lens()


def _ids(lm):
    return torch.tensor([lm.tokenizer("Mira Okafor was born in the city of")["input_ids"]])


def test_bridge_logits_equal_and_weights_are_shared(lm_and_bridge):
    lm, bridge = lm_and_bridge
    names = [n for n, _ in lm.model.named_parameters()]
    assert all("_original_component" not in n for n in names)  # the workbench model keeps its tree
    ids = _ids(lm)
    with torch.no_grad():
        assert torch.allclose(bridge(ids), lm.model(input_ids=ids).logits, atol=1e-5)
        ours = {p.data_ptr() for p in lm.model.parameters()}
        assert ours <= {p.data_ptr() for p in bridge.parameters()}  # (the bridge adds a zero unembed bias)
        w = lm.model.model.layers[0].mlp.down_proj.weight
        w.add_(0.5)  # an in-place edit of the workbench model is what the bridge runs
        assert torch.allclose(bridge(ids), lm.model(input_ids=ids).logits, atol=1e-5)
        w.sub_(0.5)


@pytest.mark.parametrize("site", ["embed", "layers.1", "layers.0.attn", "layers.1.mlp", "layers.0.mlp.hidden",
                                  "layers.1.attn.heads", "final_norm"])  # fmt: skip
def test_transformer_lens_hook_sees_the_workbench_capture(lm_and_bridge, site):
    lm, bridge = lm_and_bridge
    ids = _ids(lm)
    with torch.no_grad(), lm.hooks() as h:
        cap = h.capture(site)
        lm.model(input_ids=ids)
    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids, names_filter=[tl_hook_name(site)])
    theirs = cache[tl_hook_name(site)]
    assert torch.allclose(theirs.reshape(cap.value.shape), cap.value, atol=1e-6)


def test_site_table():
    assert tl_hook_name("layers.12.mlp") == "blocks.12.hook_mlp_out" and "layers.{i}" in TL_HOOKS
    with pytest.raises(WorkbenchError, match="no TransformerLens hook"):
        tl_hook_name("layers.0.attn.q")
