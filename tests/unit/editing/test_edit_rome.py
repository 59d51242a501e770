"""ROME: the update is rank one and maps k* to v*; specificity; every family's weight layout."""

from __future__ import annotations

import pytest
import torch

from workbench.editing import edit
from workbench.editing.keys import at_subject, bare_rows
from workbench.editing.requests import load_requests
from workbench.editing.rome import rank_one_update
from workbench.editing.weights import down_proj, weight_out_in
from workbench.errors import WorkbenchError


def test_rank_one_update_maps_the_key():
    g = torch.Generator().manual_seed(0)
    u, k, delta = torch.randn(12, generator=g), torch.randn(12, generator=g), torch.randn(7, generator=g)
    dW = rank_one_update(u, k, delta)
    assert torch.linalg.matrix_rank(dW) == 1
    torch.testing.assert_close(dW @ k.double(), delta.double())


def _down_out(lm, layer, req):
    """Down-projection output at the subject's last token of the bare prompt."""
    dp = down_proj(lm, layer)
    return at_subject(lm, bare_rows(lm.tokenizer, load_requests([req])), [dp.output_site])[dp.output_site][0]


@pytest.mark.parametrize("family", ["olmo2", "gpt2", "gpt_neox", "llama-like"])
def test_rome_rank_one_and_value(family, request_dict, source, fast):
    from workbench.models.tiny import tiny_model

    lm = tiny_model(family, layers=3, seed=0)
    res = edit(lm, [request_dict], method="rome", layers=[1], stats_source=source, progress=False, **fast)
    dW = res.deltas[1].double()
    s = torch.linalg.svdvals(dW)
    assert s[1] < 1e-5 * s[0]  # rank one (up to float32 rounding of W + ΔW)
    k, v = res.keys[1][0], res.values[1][0]
    dp = down_proj(lm, 1)
    bias = getattr(lm.model.get_submodule(dp.module), "bias", None)
    wk = weight_out_in(lm, dp).double() @ k + (0 if bias is None else bias.double())
    assert float((wk - v).norm() / v.norm()) <= 1e-4  # W' k* (+ bias) = v*
    out = _down_out(lm, 1, request_dict)  # and the forward pass agrees
    assert float((out - v).norm() / v.norm()) <= 1e-4
    assert res.keys[1].shape == (1, dW.shape[1]) and res.values[1].shape == (1, dW.shape[0])


def test_rome_moves_the_edit_not_an_unrelated_subject(lm3, request_dict, other_dict, source, fast):
    # A random model answers near-uniformly; a sharper unembedding gives its predictions something to lose.
    with torch.no_grad():
        lm3.model.get_output_embeddings().weight.mul_(10.0)

    def dist(prompt):
        with torch.no_grad():
            return torch.softmax(lm3.model(**lm3.tokenize(prompt)).logits[0, -1].double(), -1)

    edited0, other0 = dist(request_dict["prompt"]), dist(other_dict["prompt"])
    edit(lm3, [request_dict], method="rome", layers=[0], stats_source=source, progress=False, **fast)
    edited1, other1 = dist(request_dict["prompt"]), dist(other_dict["prompt"])
    moved = float((edited1 - edited0).abs().sum() / 2)  # total variation
    drift = float((other1 - other0).abs().sum() / 2)
    assert drift < 0.02 and moved > 10 * drift, (moved, drift)
    assert int(other1.argmax()) == int(other0.argmax())


def test_olmoe_is_refused(request_dict, source):
    from workbench.models.tiny import tiny_model

    lm = tiny_model("olmoe", layers=2, seed=0)
    with pytest.raises(WorkbenchError, match="MoE MLPs is not supported"):
        edit(lm, [request_dict], method="rome", layers=[0], stats_source=source, progress=False)


def test_layer_errors(lm3, request_dict, source):
    with pytest.raises(WorkbenchError, match=r"layers \[3\] out of range; this model has layers 0..2") as e:
        edit(lm3, [request_dict], method="rome", layers=[3], stats_source=source)
    assert "\n" not in str(e.value)
    with pytest.raises(WorkbenchError, match="either layers= .* or trace="):
        edit(lm3, [request_dict], method="rome", stats_source=source)
    with pytest.raises(WorkbenchError, match="unknown editing method 'remi'"):
        edit(lm3, [request_dict], method="remi", layers=[0])
