"""SURE saliency selection: the most forget-salient rows stay trainable, the rest get no gradient."""

from __future__ import annotations

import pytest
import torch

from workbench.unlearning.objectives.sure import Sure, SureParams, row_saliency, top_masks


def test_top_masks_keep_the_global_top_fraction():
    sal = {"a": torch.tensor([0.1, 5.0, 0.2, 0.3]), "b": torch.tensor([4.0, 0.0, 3.0, 0.05, 0.01, 0.02])}
    masks = top_masks(sal, 0.3)  # 3 of 10 rows
    assert masks["a"].tolist() == [False, True, False, False]
    assert masks["b"].tolist() == [True, False, True, False, False, False]


def test_masked_rows_get_no_gradient(tiny_olmo2):
    lm = tiny_olmo2
    ids = lm.tokenize(["The quick brown fox jumps over the lazy dog"])["input_ids"]
    trainable = {n: p for n, p in lm.model.named_parameters() if n.endswith("mlp.down_proj.weight")}
    for n, p in lm.model.named_parameters():
        p.requires_grad_(n in trainable)
    loss = lm.model(input_ids=ids, labels=ids).loss
    sal = row_saliency(loss, trainable)
    manual = torch.autograd.grad(loss, [trainable[n] for n in sal], retain_graph=True)
    for s, g in zip(sal.values(), manual):
        torch.testing.assert_close(s, g.norm(dim=1))
    sure = Sure.__new__(Sure)
    sure.params, sure._lm, sure._handles = SureParams(base="grad_diff", top_fraction=0.1), lm, []
    sure.masks = top_masks(sal, 0.1)
    sure._install()
    loss.backward()
    for n, p in trainable.items():
        keep = sure.masks[n]
        assert torch.all(p.grad[~keep] == 0)
        assert torch.all(p.grad[keep].norm(dim=1) > 0)
    kept = sum(int(m.sum()) for m in sure.masks.values())
    assert kept == round(0.1 * sum(m.numel() for m in sure.masks.values()))


def test_bad_params():
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="top_fraction"):
        SureParams(top_fraction=0.0)
    with pytest.raises(WorkbenchError, match="not a usable objective"):
        SureParams(base="sure")
