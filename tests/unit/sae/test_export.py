"""SAELens round trip: our export loads in sae_lens.SAE.load_from_disk and encodes/decodes identically."""

from __future__ import annotations

import json

import pytest
import torch

from workbench import sae
from workbench.errors import WorkbenchError


def _trained_like(arch: str) -> sae.SparseAutoencoder:
    m = sae.build(sae.SAEConfig(arch=arch, d_in=16, d_sae=48, k=5, site="layers.1", model="tiny"), seed=2)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    m.train()
    for _ in range(3):  # learn inference thresholds
        pre = m.pre_acts(torch.randn(64, 16, generator=gen))
        m.after_step(m.select(pre), pre)
    return m.eval()


@pytest.mark.parametrize(
    "arch,expected",
    [
        ("relu", "standard"),
        ("topk", "topk"),
        ("batchtopk", "jumprelu"),
        ("mutual_choice", "jumprelu"),
        ("feature_choice", "jumprelu"),
    ],
)
def test_saelens_round_trip(tmp_path, arch, expected):
    from sae_lens import SAE

    ours = _trained_like(arch)
    sae.export_saelens(ours, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == expected and cfg["metadata"]["hook_name"] == "layers.1"
    theirs = SAE.load_from_disk(tmp_path)
    x = torch.randn(2, 7, 16)
    z_ours, z_theirs = ours.encode(x), theirs.encode(x)
    assert (z_ours != 0).sum() > 0
    assert torch.equal(z_ours != 0, z_theirs != 0)
    assert torch.allclose(z_ours, z_theirs, atol=1e-5)
    assert torch.allclose(ours.decode(z_ours), theirs.decode(z_theirs), atol=1e-5)
    # ... and back: a SAELens folder loads as one of ours with the same behaviour
    back = sae.load(tmp_path)
    assert back.arch_name == ("batchtopk" if arch == "mutual_choice" else arch)
    assert torch.allclose(back.encode(x), z_theirs, atol=1e-5)


def test_load_saelens_folds_options(tmp_path):
    """A SAELens TopK trained with rescale_acts_by_decoder_norm and no b_dec input shift loads exactly."""
    from sae_lens import SAE
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    theirs = TopKSAE(
        TopKSAEConfig(d_in=16, d_sae=40, k=6, rescale_acts_by_decoder_norm=True, apply_b_dec_to_input=False)
    )
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.2 * torch.randn_like(p))
        theirs.W_dec.mul_(torch.rand(40, 1) + 0.5)
    theirs.save_model(tmp_path)
    theirs = SAE.load_from_disk(tmp_path)
    ours = sae.load_saelens(tmp_path)
    x = torch.randn(9, 16)
    assert torch.allclose(ours.decode(ours.encode(x)), theirs.decode(theirs.encode(x)), atol=1e-5)


def test_unsupported_saelens_architecture(tmp_path):
    from workbench.io import save_tensors, write_json

    write_json(tmp_path / "cfg.json", {"architecture": "gated", "d_in": 4, "d_sae": 8})
    save_tensors(tmp_path / "sae_weights.safetensors", {"W_enc": torch.zeros(4, 8)})
    with pytest.raises(WorkbenchError, match="not supported"):
        sae.load_saelens(tmp_path)
