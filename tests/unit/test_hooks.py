"""The hook engine's contract (DESIGN.md): exact patching, batched independence, cleanup, errors."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.hooks import run_with_cache
from workbench.models.tiny import tiny_model


@pytest.fixture(scope="module")
def lm():
    return tiny_model("olmo2", layers=3)


def _inputs(lm, texts):
    return lm.tokenize(texts)


def _logits(lm, inputs):
    with torch.no_grad():
        return lm.model(**inputs).logits


def test_patching_clean_resid_at_every_position_reproduces_clean_logits(lm):
    clean = _inputs(lm, ["Mira Okafor was born in the city of"])
    corrupt = _inputs(lm, ["Alan Turing worked in the field of"])
    assert clean["input_ids"].shape == corrupt["input_ids"].shape or True
    T = min(clean["input_ids"].shape[1], corrupt["input_ids"].shape[1])
    clean = {k: v[:, :T] for k, v in clean.items()}
    corrupt = {k: v[:, :T] for k, v in corrupt.items()}
    _, cache = run_with_cache(lm, clean, ["layers.*"])
    clean_logits = _logits(lm, clean)
    assert not torch.allclose(clean_logits, _logits(lm, corrupt))
    for i in range(lm.n_layers):
        with lm.hooks() as h:
            h.patch(f"layers.{i}", source=cache[f"layers.{i}"])
            patched = _logits(lm, corrupt)
        torch.testing.assert_close(patched, clean_logits, rtol=0, atol=0)


def test_two_patches_on_two_rows_equal_two_single_row_runs(lm):
    texts = ["The quick brown fox jumps", "Mira Okafor was born in"]
    batch = _inputs(lm, texts)
    T = batch["input_ids"].shape[1]
    v1 = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(1))
    with lm.hooks() as h:
        h.add("layers.0", v1, rows=[0], positions=[2], scale=3.0)
        h.ablate("layers.1.mlp", rows=[1], positions=[1, 3])
        both = _logits(lm, batch)
    singles = []
    for row in range(2):
        one = {k: v[row : row + 1] for k, v in batch.items()}
        with lm.hooks() as h:
            if row == 0:
                h.add("layers.0", v1, positions=[2], scale=3.0)
            else:
                h.ablate("layers.1.mlp", positions=[1, 3])
            singles.append(_logits(lm, one))
    mask = batch["attention_mask"].bool()
    for row in range(2):
        torch.testing.assert_close(both[row][mask[row]], singles[row][0][mask[row]], rtol=1e-5, atol=1e-5)
    assert T > 3


def test_cells_patch_equals_grid_of_separate_patches(lm):
    batch = _inputs(lm, ["Mira Okafor was born in the city of"] * 4)
    rows = torch.tensor([1, 2, 3])
    pos = torch.tensor([1, 3, 5])
    noise = torch.randn(
        4, batch["input_ids"].shape[1], lm.d_model, generator=torch.Generator().manual_seed(0)
    )
    with lm.hooks() as h:
        h.add("embed", noise[1:], rows=[1, 2, 3], positions=None)
        h.patch("layers.1", source_row=0, cells=(rows, pos))
        fast = _logits(lm, batch)
    for r, p in zip(rows.tolist(), pos.tolist()):
        with lm.hooks() as h:
            h.add("embed", noise[1:], rows=[1, 2, 3])
            h.patch("layers.1", source_row=0, rows=[r], positions=[p])
            slow = _logits(lm, batch)
        torch.testing.assert_close(fast[r], slow[r], rtol=1e-5, atol=1e-5)


def test_hooks_removed_after_exception(lm):
    batch = _inputs(lm, ["hello world"])
    before = _logits(lm, batch)
    with pytest.raises(RuntimeError, match="boom"):
        with lm.hooks() as h:
            h.ablate("layers.0")
            h.capture("layers.1")
            raise RuntimeError("boom")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())
    torch.testing.assert_close(_logits(lm, batch), before)


def test_unknown_site_lists_valid_sites(lm):
    with pytest.raises(WorkbenchError) as err:
        with lm.hooks() as h:
            h.capture("layers.0.mlpp")
    assert "layers.0.mlp.hidden" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(WorkbenchError, match="out of range"):
        lm.site("layers.9")


def test_capture_before_patch_sees_clean_value_and_grad_capture(lm):
    batch = _inputs(lm, ["The quick brown fox"])
    with lm.hooks() as h:
        before = h.capture("layers.0")
        h.ablate("layers.0")
        after = h.capture("layers.0")
        _logits(lm, batch)
    assert before.value.abs().sum() > 0 and after.value.abs().sum() == 0
    with lm.hooks() as h:
        cap = h.capture("layers.1.mlp", grad=True)
        out = lm.model(**batch).logits
        out[0, -1].logsumexp(-1).backward()
    assert cap.grad.shape == cap.value.shape and cap.grad.abs().sum() > 0
    lm.model.zero_grad()


def test_head_patch_only_touches_that_head(lm):
    batch = _inputs(lm, ["The quick brown fox jumps"])
    with lm.hooks() as h:
        h.ablate("layers.0.attn.heads", heads=[2])
        z = h.capture("layers.0.attn.heads")
        _logits(lm, batch)
    zz = z.value.view(*z.value.shape[:-1], lm.n_heads, lm.d_head)
    assert zz[..., 2, :].abs().sum() == 0 and zz[..., 1, :].abs().sum() > 0
    with pytest.raises(WorkbenchError):
        with lm.hooks() as h:
            h.ablate("layers.0.mlp", heads=[1])
