"""Activation patching equals TransformerLens's on the same weights; AtP equals its first-order definition."""

from __future__ import annotations

import warnings

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.tracing import attribution_patch, patch
from workbench.tracing.patching import site_name

CLEAN = "Mira Okafor was born in the city of"
CORRUPTED = "Mira Okafor lived in the city of"  # same number of tokens on the tiny tokenizer
ANSWERS = (" Paris", " London")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same tiny OLMo-2 loaded by workbench and booted as a TransformerLens TransformerBridge."""
    from workbench.models import load
    from workbench.models.tiny import tiny_model

    folder = tmp_path_factory.mktemp("tiny_olmo2")
    src = tiny_model("olmo2", layers=2, seed=3)
    src.model.save_pretrained(folder)
    src.tokenizer.save_pretrained(folder)
    lm = load(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(str(folder), device="cpu")
        bridge.enable_compatibility_mode(no_processing=True)  # keep HF weights as they are (no LN folding)
    return lm, bridge


def _tl_metric(lm, metric):
    a, b = (lm.tokenizer(x, add_special_tokens=False)["input_ids"][0] for x in ANSWERS)
    if metric == "logit_diff":
        return lambda logits: logits[0, -1, a] - logits[0, -1, b]
    return lambda logits: torch.softmax(logits[0, -1], -1)[a]


def _tokens(lm):
    c = torch.tensor([lm.tokenizer(CLEAN)["input_ids"]])
    k = torch.tensor([lm.tokenizer(CORRUPTED)["input_ids"]])
    assert c.shape == k.shape
    return c, k


def test_bridge_reproduces_hf_logits(pair):
    lm, bridge = pair
    c, _ = _tokens(lm)
    with torch.no_grad():
        assert torch.allclose(bridge(c), lm.model(input_ids=c).logits, atol=1e-5)


@pytest.mark.parametrize(
    "site,tl_name",
    [
        ("resid_pre", "get_act_patch_resid_pre"),
        ("heads", "get_act_patch_attn_head_out_by_pos"),
        ("attn", "get_act_patch_attn_out"),
        ("mlp", "get_act_patch_mlp_out"),
    ],
)
def test_denoising_equals_transformer_lens(pair, site, tl_name):
    from transformer_lens import patching

    lm, bridge = pair
    c, k = _tokens(lm)
    _, clean_cache = bridge.run_with_cache(c)
    theirs = getattr(patching, tl_name)(bridge, k, clean_cache, _tl_metric(lm, "logit_diff"))
    ours = patch(lm, CLEAN, CORRUPTED, sites=[site], answers=ANSWERS, max_batch_tokens=200, progress=False)
    assert ours.scores[site].shape == theirs.shape
    assert torch.allclose(ours.scores[site], theirs.cpu(), atol=1e-4)
    assert float(theirs.max() - theirs.min()) > 1e-3  # the grid carries signal


@pytest.mark.parametrize("metric", ["logit_diff", "prob"])
def test_noising_and_prob_equal_transformer_lens(pair, metric):
    from transformer_lens import patching

    lm, bridge = pair
    c, k = _tokens(lm)
    _, corrupted_cache = bridge.run_with_cache(k)
    theirs = patching.get_act_patch_resid_pre(bridge, c, corrupted_cache, _tl_metric(lm, metric))
    ours = patch(
        lm,
        CLEAN,
        CORRUPTED,
        sites=["resid"],
        metric=metric,
        answers=ANSWERS,
        direction="noise",
        progress=False,
    )
    assert torch.allclose(ours.scores["resid_pre"], theirs.cpu(), atol=1e-5 if metric == "prob" else 1e-4)


def test_patching_errors(lm3):
    with pytest.raises(WorkbenchError, match="equal lengths"):
        patch(lm3, CLEAN, "Alan Turing was born in the city of", answers=ANSWERS, progress=False)
    with pytest.raises(WorkbenchError, match="unknown patching site"):
        patch(lm3, CLEAN, CORRUPTED, sites=["mlp_out"], answers=ANSWERS, progress=False)
    with pytest.raises(WorkbenchError, match="unknown metric"):
        patch(lm3, CLEAN, CORRUPTED, metric="kl", progress=False)
    with pytest.raises(WorkbenchError, match="same token"):
        patch(lm3, CLEAN, CLEAN, progress=False)
    with pytest.raises(WorkbenchError, match="direction"):
        attribution_patch(lm3, CLEAN, CORRUPTED, answers=ANSWERS, direction="both")


def test_atp_is_the_first_order_estimate():
    """AtP at a cell == corrupted metric + d/dε metric(a_corr + ε (a_clean - a_corr)) at ε = 0."""
    from workbench.hooks import run_with_cache
    from workbench.models.tiny import tiny_model
    from workbench.tracing.patching import metric_values, prepare

    lm = tiny_model("olmo2", layers=2, seed=4, dtype=torch.float64)
    atp = attribution_patch(lm, CLEAN, CORRUPTED, answers=ANSWERS)
    assert all(p.grad is None for p in lm.model.parameters())  # no parameter gradients left behind
    inp = prepare(lm, CLEAN, CORRUPTED, "logit_diff", ANSWERS)
    cells = [
        ("resid_pre", 0, 9, None),
        ("resid_pre", 1, 16, None),
        ("attn", 1, 12, None),
        ("mlp", 0, 9, None),
        ("heads", 1, 16, 2),
        ("heads", 0, 10, 1),
    ]
    nonzero = 0
    for kind, layer, pos, head in cells:
        name = site_name(lm, kind, layer)
        _, cc = run_with_cache(lm, {"input_ids": inp.clean}, [name])
        _, kc = run_with_cache(lm, {"input_ids": inp.corrupted}, [name])
        delta = (cc[name] - kc[name])[0, pos]
        if head is not None:
            mask = torch.zeros_like(delta).view(lm.n_heads, -1)
            mask[head] = 1
            delta = delta * mask.view(-1)

        # the derivative along the patch direction, by autograd through a scalar (not through the captures)
        e = torch.zeros((), dtype=torch.float64, requires_grad=True)
        with lm.hooks() as h, torch.enable_grad():
            h.edit(name, lambda x, delta=delta, e=e: x + e * delta, rows=[0], positions=[pos])
            value = metric_values(lm.model(input_ids=inp.corrupted).logits[:, -1], "logit_diff", inp.answers)[
                0
            ]
            (derivative,) = torch.autograd.grad(value, e)
        got = atp.scores[kind][(layer, pos) if head is None else (layer, pos, head)]
        assert abs(float(got) - (inp.corrupted_metric + float(derivative))) < 1e-7, (kind, layer, pos, head)
        nonzero += abs(float(derivative)) > 1e-4
    assert nonzero >= 4  # the checked cells carry signal
