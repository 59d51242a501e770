"""Family adapters resolve every site on a tiny model of each family; load() errors are one line."""

from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.hooks import run_with_cache
from workbench.models.tiny import TINY_FAMILIES, tiny_model


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_site_resolves_and_captures_the_right_shape(family):
    lm = tiny_model(family)
    batch = lm.tokenize(["Mira Okafor was born in", "The quick"])
    B, T = batch["input_ids"].shape
    out, cache = run_with_cache(lm, batch, lm.sites())
    assert set(cache) == set(lm.sites())
    inner = {".mlp.hidden": None}
    for site, act in cache.items():
        assert act.shape[:2] == (B, T), site
        if site == "logits":
            assert act.shape[-1] == lm.model.config.vocab_size
            torch.testing.assert_close(act, out.logits)
        elif site.endswith(".mlp.hidden"):
            inner[".mlp.hidden"] = act.shape[-1]
        elif site.endswith((".attn.q", ".attn.k")):
            assert act.shape[-1] % lm.d_head == 0
        else:
            assert act.shape[-1] == lm.d_model, site
    assert f"layers.{lm.n_layers - 1}" in cache
    if family != "olmoe":
        assert inner[".mlp.hidden"] is not None and inner[".mlp.hidden"] > lm.d_model


def test_resid_after_last_block_feeds_final_norm():
    lm = tiny_model("olmo2")
    batch = lm.tokenize(["hello there"])
    _, c = run_with_cache(lm, batch, [f"layers.{lm.n_layers - 1}", "final_norm"])
    torch.testing.assert_close(lm.model.model.norm(c[f"layers.{lm.n_layers - 1}"]), c["final_norm"])


def test_olmo2_attn_site_is_what_is_added_to_the_residual():
    lm = tiny_model("olmo2")
    batch = lm.tokenize(["hello there"])
    _, c = run_with_cache(lm, batch, ["embed", "layers.0.attn", "layers.0.mlp", "layers.0"])
    torch.testing.assert_close(
        c["embed"] + c["layers.0.attn"] + c["layers.0.mlp"], c["layers.0"], rtol=1e-5, atol=1e-5
    )


def test_load_roundtrip_and_errors(tmp_path):
    lm = tiny_model("olmo2")
    lm.model.save_pretrained(tmp_path / "m")
    lm.tokenizer.save_pretrained(tmp_path / "m")
    loaded = wb.load(tmp_path / "m")
    assert loaded.family == "olmo2" and loaded.n_layers == 2
    batch = loaded.tokenize(["hello"])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(**batch).logits, lm.model(**batch).logits)
    with pytest.raises(WorkbenchError, match="does not exist"):
        wb.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkbenchError, match="no config.json"):
        wb.load(tmp_path / "empty")
    with pytest.raises(WorkbenchError, match="hub"):
        wb.load("someone/not-a-cached-model")
    (tmp_path / "m" / "model.safetensors").rename(tmp_path / "m" / "weights.bak")
    torch.save({}, tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(WorkbenchError, match="safetensors"):
        wb.load(tmp_path / "m")


def test_family_without_adapter_is_a_clear_error():
    from workbench.models import adapter_for

    with pytest.raises(WorkbenchError, match="no family adapter"):
        adapter_for("t5")


def test_glob_expansion():
    lm = tiny_model("llama-like", layers=3)
    assert lm.expand("layers.*.mlp") == ["layers.0.mlp", "layers.1.mlp", "layers.2.mlp"]
    assert lm.expand("model.layers.*.self_attn") == [f"model.layers.{i}.self_attn" for i in range(3)]
    with pytest.raises(WorkbenchError):
        lm.expand("nothing.*")
