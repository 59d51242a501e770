"""Each objective's loss on a tiny model against a direct computation written out here."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.data import read_semeval
from workbench.unlearning.data import collate, tokenize_record
from workbench.unlearning.objectives import OBJECTIVES, Context
from workbench.unlearning.objectives.constrained import AdaptiveWeight, ConstrainedParams


@pytest.fixture
def setup(semeval_dir):
    from workbench.models.tiny import tiny_model

    lm = tiny_model("olmo2", layers=3, seed=1)
    recs = read_semeval(semeval_dir, part="train")
    forget = [r for r in recs if r.split == "forget"][:3]
    retain = [r for r in recs if r.split == "retain"][:3]
    examples = [tokenize_record(lm.tokenizer, r, max_length=64) for r in forget + retain]
    batch = collate(examples, lm.tokenizer.pad_token_id)
    return lm, batch


def _per_row(lm, batch):
    """Per-row (summed NLL, token count) of the output tokens, computed row by row without padding."""
    sums, counts = [], []
    for i in range(batch.input_ids.shape[0]):
        n = int(batch.attention_mask[i].sum())
        ids, labels = batch.input_ids[i : i + 1, :n], batch.labels[i, :n]
        logits = lm.model(input_ids=ids).logits[0]
        keep = labels[1:] != -100
        logp = torch.log_softmax(logits[:-1].float(), -1)
        tok = logp[torch.arange(n - 1), labels[1:].clamp_min(0)]
        sums.append(-(tok * keep).sum())
        counts.append(keep.sum())
    return torch.stack(sums), torch.stack(counts).float()


def _token_mean(sums, counts, rows):
    return sums[rows].sum() / counts[rows].sum()


def _run(name, lm, batch, params=None, ref_lm=None, **ctx_kw):
    cls = OBJECTIVES[name]
    obj = cls(params or cls.params_cls(), lm, seed=0)
    if hasattr(obj, "bind_layer"):
        obj.bind_layer(2)
    ref = obj.reference(ref_lm or lm, batch) if obj.needs_reference else None
    return obj, obj(Context(lm.model, lm, **ctx_kw), batch, ref)


def test_constrained_first_epoch_uses_m_min(setup):
    lm, batch = setup
    _, out = _run("constrained", lm, batch)
    s, n = _per_row(lm, batch)
    f = batch.is_forget
    expected = -_token_mean(s, n, f) + 1.2 * _token_mean(s, n, ~f)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.parts["m"] == 1.2


def test_constrained_clips_forget_rows_at_the_ceiling(setup):
    lm, batch = setup
    s, n = _per_row(lm, batch)
    f = batch.is_forget
    ceiling = float((s[f] / n[f]).min().detach()) + 1e-3  # at least two rows sit above it
    _, out = _run("constrained", lm, batch, ceiling=ceiling)
    clipped = torch.minimum(s[f] / n[f], torch.tensor(ceiling))
    expected = -(clipped * n[f]).sum() / n[f].sum() + 1.2 * _token_mean(s, n, ~f)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.loss.item() > (-_token_mean(s, n, f) + 1.2 * _token_mean(s, n, ~f)).item()


def test_adaptive_weight_follows_the_formula_over_a_scripted_sequence():
    p = ConstrainedParams()
    w = AdaptiveWeight(p)
    first_epoch = [2.0, 2.2, 1.8, 2.0]
    for loss in first_epoch:
        assert w.observe(loss, epoch=0) == (1.2, 0.0)
    base = sum(first_epoch) / len(first_epoch)
    for loss in [1.5, 2.0, 2.05, 2.2, 2.4, 2.6, 3.0, 5.0]:
        m, delta = w.observe(loss, epoch=1)
        assert delta == pytest.approx(loss - base)
        if loss <= base:
            want = 1.2
        else:
            want = min(max(round(0.3 * 6 ** (loss - base) + 0.8, 1), 1.2), 2.3)
        assert m == want
    # spot values: dL=0.4 -> 0.3*6**0.4+0.8 = 1.414 -> 1.4; dL=0.8 -> 2.058 -> 2.1; dL=1 -> 2.6 -> 2.3
    assert w.weight(base + 0.4, 1)[0] == 1.4
    assert w.weight(base + 0.8, 1)[0] == 2.1
    assert w.weight(base + 1.0, 1)[0] == 2.3
    assert AdaptiveWeight(ConstrainedParams(m_max=2.8)).weight(1.0, 0)[0] == 1.2
    w2 = AdaptiveWeight(ConstrainedParams(m_max=2.8))
    w2.observe(base, 0)
    assert w2.weight(base + 1.0, 1)[0] == 2.6


def test_constrained_validation_does_not_move_the_baseline(setup):
    lm, batch = setup
    obj, _ = _run("constrained", lm, batch, training=False)
    assert obj.adaptive.count == 0
    obj(Context(lm.model, lm, epoch=0), batch, None)
    assert obj.adaptive.count == 1


def test_grad_ascent_and_grad_diff(setup):
    lm, batch = setup
    s, n = _per_row(lm, batch)
    f = batch.is_forget
    _, ga = _run("grad_ascent", lm, batch)
    assert ga.loss.item() == pytest.approx(-_token_mean(s, n, f).item(), rel=1e-5)
    params = OBJECTIVES["grad_diff"].params_cls(gamma=0.7, alpha=1.3)
    _, gd = _run("grad_diff", lm, batch, params)
    expected = -0.7 * _token_mean(s, n, f) + 1.3 * _token_mean(s, n, ~f)
    assert gd.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_npo_against_direct_formula(setup):
    from workbench.models.tiny import tiny_model

    lm, batch = setup
    ref_lm = tiny_model("olmo2", layers=3, seed=2)  # a different reference makes log(pi/pi_ref) non-zero
    s, n = _per_row(lm, batch)
    s_ref, _ = _per_row(ref_lm, batch)
    f = batch.is_forget
    beta = 0.1
    log_ratio = (-s[f]) - (-s_ref[f])
    forget = -(2 / beta) * torch.stack([torch.log(torch.sigmoid(-beta * x)) for x in log_ratio]).mean()
    expected = forget + _token_mean(s, n, ~f)
    _, out = _run("npo", lm, batch, ref_lm=ref_lm)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # with the model as its own reference the ratio is 1: forget term = (2/beta) * ln 2
    _, same = _run("npo", lm, batch, ref_lm=lm)
    assert same.parts["npo"] == pytest.approx(2 / beta * math.log(2), rel=1e-5)


def test_simnpo_against_direct_formula(setup):
    lm, batch = setup
    s, n = _per_row(lm, batch)
    f = batch.is_forget
    beta, margin = 4.5, 0.3
    logp_norm = -s[f] / n[f]
    forget = -(2 / beta) * torch.log(torch.sigmoid(-beta * logp_norm - margin)).mean()
    params = OBJECTIVES["simnpo"].params_cls(margin=margin)
    _, out = _run("simnpo", lm, batch, params)
    expected = 0.125 * forget + 1.0 * _token_mean(s, n, ~f)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_rmu_against_direct_formula(setup):
    from workbench.models.tiny import tiny_model

    lm, batch = setup
    frozen = tiny_model("olmo2", layers=3, seed=3)
    params = OBJECTIVES["rmu"].params_cls(layer=1)
    obj, out = _run("rmu", lm, batch, params, ref_lm=frozen)
    assert obj.site == "layers.1"
    # HF hidden_states[i + 1] is the residual after block i (the last entry is after the final norm)
    h = lm.model(**batch.model_inputs(), output_hidden_states=True).hidden_states[2]
    h_ref = frozen.model(**batch.model_inputs(), output_hidden_states=True).hidden_states[2]
    mask = (batch.labels != -100).float()
    f = batch.is_forget
    target = 20.0 * obj.direction
    assert obj.direction.norm().item() == pytest.approx(1.0)

    def mse(a, b, m):
        return (((a - b) ** 2).mean(-1) * m).sum() / m.sum()

    expected = mse(h[f], target, mask[f]) + mse(h[~f], h_ref[~f], mask[~f])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    out.loss.backward()
    down = lm.model.model.layers[1].mlp.down_proj.weight
    assert down.grad is not None and down.grad.abs().sum() > 0
    assert lm.model.model.layers[2].mlp.down_proj.weight.grad is None  # above the read layer: no gradient


def test_every_objective_handles_one_sided_batches(setup):
    lm, batch = setup
    from workbench.unlearning.data import UnlearnBatch

    only_retain = UnlearnBatch(
        *(t[3:] for t in (batch.input_ids, batch.attention_mask, batch.labels, batch.is_forget))
    )
    for name in OBJECTIVES:
        _, out = _run(name, lm, only_retain)
        assert torch.isfinite(out.loss), name
