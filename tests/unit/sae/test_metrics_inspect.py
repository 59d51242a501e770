"""Metrics definitions, splicing through the hook engine, the inspection API and the dashboard."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from workbench import sae
from workbench.sae.metrics import reconstruction_metrics, splice_metrics

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris London Berlin Rome",
    "Alan Turing worked in the field of computing.",
    "Question: What is the capital of Norland?",
]


def test_fvu_uses_total_variance_not_raw_energy():
    m = sae.build(sae.SAEConfig(arch="topk", d_in=8, d_sae=16, k=2), seed=0).eval()
    x = torch.randn(500, 8) * 0.5 + 3.0  # large mean: FVU would be tiny against E||x||^2
    z = m.encode(x)
    xh = m.decode(z)
    r = reconstruction_metrics(m, [x[:200], x[200:]])
    err = (x - xh).pow(2).sum(-1).mean()
    var = x.pow(2).sum(-1).mean() - x.mean(0).pow(2).sum()
    assert r.fvu == pytest.approx(float(err / var), rel=1e-4)
    assert r.explained_variance == pytest.approx(1 - r.fvu)
    assert r.l0 == pytest.approx(2.0) and r.n_tokens == 500
    assert r.mse == pytest.approx(float(err) / 8, rel=1e-4)
    assert r.dead_frac == pytest.approx(float(((z != 0).sum(0) == 0).float().mean()))
    assert sum(r.log10_density_hist[1]) == int(((z != 0).sum(0) > 0).sum())


def test_splice_metrics_identity_and_zero(tiny_olmo2):
    lm = tiny_olmo2
    site = "layers.0"
    m = sae.build(
        sae.SAEConfig(arch="topk", d_in=lm.d_model, d_sae=4 * lm.d_model, k=lm.d_model, site=site), seed=0
    ).eval()
    # a perfect "SAE": with k = d_in and a ±identity dictionary every activation is reconstructed exactly
    with torch.no_grad():
        eye = torch.eye(lm.d_model)
        m.W_dec.zero_()
        m.W_dec[: lm.d_model] = eye
        m.W_dec[lm.d_model : 2 * lm.d_model] = -eye
        m.W_enc.copy_(m.W_dec.T)
        m.b_enc.zero_()
        m.b_dec.zero_()
    s = splice_metrics(m, lm, None, TEXTS)
    assert s.ce_sae == pytest.approx(s.ce_clean, abs=1e-4) and s.kl_sae == pytest.approx(0, abs=1e-5)
    assert s.ce_recovered == pytest.approx(1.0, abs=1e-3) and s.kl_score == pytest.approx(1.0, abs=1e-3)
    assert s.ce_zero != pytest.approx(s.ce_clean) and s.kl_zero > 0
    # a useless SAE (reconstructs only b_dec = 0) is as bad as zero ablation
    with torch.no_grad():
        m.W_dec.zero_()
    s0 = splice_metrics(m, lm, site, TEXTS)
    assert s0.ce_recovered == pytest.approx(0.0, abs=1e-4) and s0.delta_lm_loss == pytest.approx(
        s0.ce_zero - s0.ce_clean
    )


def _toy(lm, arch="topk"):
    return sae.build(
        sae.SAEConfig(arch=arch, d_in=lm.d_model, d_sae=128, k=8, site="layers.1", model="tiny"), seed=0
    ).eval()


def test_encode_prompt_ablate_and_steer(tiny_olmo2):
    lm = tiny_olmo2
    m = _toy(lm)
    pf = sae.encode_prompt(lm, m, TEXTS[0])
    assert len(pf.tokens) == len(pf.features) == pf.acts.shape[0]
    assert all(len(f) == 8 for f in pf.features) and pf.tokens[0] == "<|bos|>"
    f, _ = pf.features[3][0]
    enc = lm.tokenize(TEXTS[0])
    with lm.hooks() as h:
        sae.ablate_feature(h, m, f)
        cap = h.capture("layers.1")
        lm.model(**enc)
    with lm.hooks() as h:
        clean = h.capture("layers.1")
        lm.model(**enc)
    z = m.encode(cap.value[0])
    assert float(z[3, f]) < 0.5 * pf.features[3][0][1]  # the feature's own activation is (mostly) removed
    expected = clean.value[0] - pf.acts[:, f, None] * m.W_dec[f].detach()
    assert torch.allclose(cap.value[0], expected, atol=1e-5)
    with lm.hooks() as h:
        sae.steer_feature(h, m, f, scale=5.0, positions=[2])
        cap2 = h.capture("layers.1")
        lm.model(**enc)
    assert torch.allclose(cap2.value[0, 2] - clean.value[0, 2], 5.0 * m.W_dec[f].detach(), atol=1e-5)


def test_dashboard_html(tmp_path, tiny_olmo2):
    lm = tiny_olmo2
    m = _toy(lm, "batchtopk")
    path = sae.dashboard(m, lm, TEXTS * 2, tmp_path, n_features=5, progress=False)
    page = path.read_text()
    assert page.count("class=feat") == 5 and "background:rgba(255,110,0," in page
    assert (
        "Top promoted tokens" in page
        and "<script" not in page
        and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    )
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if shutil.os.path.exists("/usr/bin/chromium") else None
    )
    if chromium is None:
        pytest.skip("Chromium is not installed; the HTML was checked without rendering")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            path.as_uri(),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
