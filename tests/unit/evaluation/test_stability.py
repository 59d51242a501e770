"""Stability proxies: attention-logit maxima vs a direct computation, logit stats, optimizer stats, LR sensitivity."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from workbench.evaluation.stability import (
    attention_logit_max,
    logit_stats,
    lr_sensitivity,
    optimizer_diagnostics,
    z_loss,
)

TEXTS = ["The quick brown fox jumps over the lazy dog. Mira Okafor was born", "Paris", "Alan Turing worked"]


def _gqa_olmo2():
    from transformers import Olmo2Config, Olmo2ForCausalLM

    from workbench.models import wrap
    from workbench.models.tiny import tiny_tokenizer

    torch.manual_seed(1)
    cfg = Olmo2Config(
        vocab_size=384,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return wrap(Olmo2ForCausalLM(cfg).eval(), tiny_tokenizer())


def _direct(lm, texts) -> torch.Tensor:
    """Max |q·k|/sqrt(d_h) from the attention modules called by hand (norms, projections, RoPE)."""
    model = lm.model
    rope = importlib.import_module(type(model).__module__).apply_rotary_pos_emb
    batch = lm.tokenize(texts)
    mask = batch["attention_mask"].bool()
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states
        rows = []
        for i, layer in enumerate(model.model.layers):
            x = hidden[i]
            if hasattr(layer, "input_layernorm"):  # pre-norm families normalise before attention
                x = layer.input_layernorm(x)
            a = layer.self_attn
            q, k = a.q_proj(x), a.k_proj(x)
            if hasattr(a, "q_norm"):
                q, k = a.q_norm(q), a.k_norm(k)
            b, t, _ = q.shape
            q = q.view(b, t, -1, a.head_dim).transpose(1, 2)
            k = k.view(b, t, -1, a.head_dim).transpose(1, 2)
            cos, sin = model.model.rotary_emb(x, torch.arange(t)[None].expand(b, -1))
            q, k = rope(q, k, cos, sin)
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            scores = (q @ k.transpose(-1, -2)).abs() / math.sqrt(a.head_dim)
            allowed = (
                torch.ones(t, t, dtype=torch.bool).tril()[None, None]
                & mask[:, None, :, None]
                & mask[:, None, None, :]
            )
            rows.append(scores.masked_fill(~allowed, 0).amax(dim=(0, 2, 3)))
    return torch.stack(rows)


@pytest.mark.parametrize("which", ["olmo2", "olmo2-gqa", "llama-like", "olmo"])
def test_attention_logit_max_equals_direct(which):
    from workbench.models.tiny import tiny_model

    lm = _gqa_olmo2() if which == "olmo2-gqa" else tiny_model(which, seed=3)
    ours = attention_logit_max(lm, TEXTS, key_chunk=5)  # several key chunks, padded rows
    torch.testing.assert_close(ours, _direct(lm, TEXTS), rtol=1e-5, atol=1e-5)
    assert ours.shape == (lm.n_layers, lm.n_heads)


def test_padding_is_ignored(tiny_olmo2):
    short, long = TEXTS[2], TEXTS[0]
    both = attention_logit_max(tiny_olmo2, [short, long])  # the short row is right-padded
    expected = torch.maximum(
        attention_logit_max(tiny_olmo2, [short]), attention_logit_max(tiny_olmo2, [long])
    )
    torch.testing.assert_close(both, expected)


def test_logit_stats_and_z_loss(tiny_olmo2):
    batch = tiny_olmo2.tokenize(TEXTS)
    with torch.no_grad():
        logits = tiny_olmo2.model(**batch).logits
    keep = batch["attention_mask"].bool()
    lz = torch.logsumexp(logits, -1)[keep]
    st = logit_stats(tiny_olmo2, TEXTS)
    assert st.mean_log_z == pytest.approx(lz.mean().item(), rel=1e-5)
    assert st.max_log_z == pytest.approx(lz.max().item(), rel=1e-5)
    assert st.mean_logit == pytest.approx(logits[keep].mean().item(), rel=1e-4, abs=1e-6)
    assert z_loss(logits).item() == pytest.approx(
        1e-4 * torch.logsumexp(logits, -1).square().mean().item(), rel=1e-5
    )


def test_lr_sensitivity_on_synthetic_table():
    l0 = 10.0
    table = {1e-4: 6.0, 1e-3: 4.0, 1e-2: 3.0, 1e-1: 12.0, 1.0: float("nan")}
    # min(l, l0) - l*: 3, 1, 0, 7 (capped at l0), 7 (diverged = l0); l* = 3
    assert lr_sensitivity(table, l0) == pytest.approx((3 + 1 + 0 + 7 + 7) / 5)
    assert lr_sensitivity(table, l0, l_star=2.0) == pytest.approx((4 + 2 + 1 + 8 + 8) / 5)
    assert lr_sensitivity({1e-3: 5.0}, l0) == 0.0


def test_optimizer_diagnostics_match_adam_state(tiny_olmo2):
    model = tiny_olmo2.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-8, betas=(0.9, 0.95))
    batch = tiny_olmo2.tokenize(TEXTS)
    for _ in range(2):
        opt.zero_grad()
        model(**batch, labels=batch["input_ids"]).loss.backward()
        opt.step()
    diags = {d.name: d for d in optimizer_diagnostics(model, opt)}
    assert {"embed", "attn", "mlp", "qk_norm", "lm_head"} <= set(diags)
    p = model.model.embed_tokens.weight
    st = opt.state[p]
    upd = (st["exp_avg"] / (1 - 0.9**2)) / ((st["exp_avg_sq"] / (1 - 0.95**2)).sqrt() + 1e-8)
    assert diags["embed"].update_rms == pytest.approx(upd.square().mean().sqrt().item(), rel=1e-5)
    assert diags["embed"].grad_rms == pytest.approx(p.grad.square().mean().sqrt().item(), rel=1e-5)
    assert 0 <= diags["embed"].frac_below_eps <= 1 and diags["embed"].eps == 1e-8


def test_sweep_runner_switches_qk_norm():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "analyses"))
    from stability_sweep import (
        PerHeadRMSNorm,
        SweepConfig,
        SweepSetting,
        build_model,
        lr_sweep,
    )

    cfg = SweepConfig(d_model=32, layers=1, heads=2, steps=6, batch=4, seq_len=16, probe_every=3, eval_rows=4)
    assert isinstance(build_model(64, cfg, "none").model.layers[0].self_attn.q_norm, torch.nn.Identity)
    assert isinstance(build_model(64, cfg, "head").model.layers[0].self_attn.k_norm, PerHeadRMSNorm)
    rows = torch.randint(0, 64, (24, 16), generator=torch.Generator().manual_seed(0))
    res = lr_sweep(
        rows, 64, [SweepSetting("none", "none"), SweepSetting("head+z", "head", 1e-4)], [1e-3, 1e-2], cfg
    )
    assert len(res.runs) == 4 and all(math.isfinite(r.final_loss) for r in res.runs)
    assert [h.step for h in res.runs[0].history] == [0, 3, 5]
    assert res.l0 == pytest.approx(math.log(64), rel=0.1)  # random init: about uniform
    assert res.sensitivity("none") == pytest.approx(lr_sensitivity(res.losses("none"), res.l0))
