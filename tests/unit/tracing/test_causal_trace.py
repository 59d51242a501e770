"""Causal tracing equals ROME's one-forward-per-cell algorithm, and behaves as ROME's does."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.models.tiny import tiny_model
from workbench.tracing import causal_trace
from workbench.tracing.causal_trace import fact_noise, trace_with_patch
from workbench.tracing.subject import embedding_std, subject_span


def _rome_cell(lm, ids, span, eps, answer, kind, t, layer, window):
    """ROME's trace_with_patch for one cell, with plain torch hooks editing outputs in place."""
    n_layers = lm.n_layers
    if kind == "hidden":
        layers, suffix = [layer], ""
    else:
        layers, suffix = range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2))), f".{kind}"
    s0, s1 = span

    def add_noise(module, args, out):
        out = out.clone()
        out[1:, s0:s1] += eps.to(out.dtype)
        return out

    def restore(module, args, out):
        h = out[0] if isinstance(out, tuple) else out
        h[1:, t] = h[0, t]
        return out

    model = lm.model
    handles = [model.get_submodule(lm.site("embed").module).register_forward_hook(add_noise)]
    for L in layers:
        module = model.get_submodule(lm.site(f"layers.{L}{suffix}").module)
        handles.append(module.register_forward_hook(restore))
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids] * (eps.shape[0] + 1))).logits
    finally:
        for hd in handles:
            hd.remove()
    return float(torch.softmax(logits[1:, -1].float(), dim=-1).mean(0)[answer])


@pytest.mark.parametrize(
    "family,reuse,window",
    [("olmo2", True, 2), ("olmo2", False, 2), ("olmo2", True, 10), ("gpt2", True, 2), ("gpt_neox", False, 3)],
)
def test_batched_trace_equals_one_forward_per_cell(family, reuse, window, facts):
    lm = tiny_model(family, layers=3, seed=1)
    res = causal_trace(
        lm,
        facts[:1],
        samples=3,
        noise=3.0,
        window=window,
        seed=5,
        max_batch_tokens=300,
        reuse_prefix=reuse,
        progress=False,
    )
    f = res.facts[0]
    eps = fact_noise(5, 0, 3, f.subject_span[1] - f.subject_span[0], lm.d_model) * (res.noise * res.sigma)
    T = len(f.input_ids)
    worst = 0.0
    for kind in ("hidden", "mlp", "attn"):
        assert f.scores[kind].shape == (T, 3)
        for t in range(T):
            for layer in range(3):
                ref = _rome_cell(lm, f.input_ids, f.subject_span, eps, f.answer_id, kind, t, layer, window)
                worst = max(worst, abs(ref - float(f.scores[kind][t, layer])))
    assert worst <= 1e-5
    # the grid is not trivially constant: restoring does change the score somewhere
    assert float(f.scores["hidden"].max() - f.scores["hidden"].min()) > 1e-5


def test_clean_and_corrupted_scores(lm3, facts):
    res = causal_trace(lm3, facts, samples=4, progress=False)
    for f in res.facts:
        with torch.no_grad():
            p = torch.softmax(lm3.model(input_ids=torch.tensor([f.input_ids])).logits[0, -1], -1)
        assert f.answer_id == int(p.argmax())
        assert abs(f.clean_score - float(p.max())) < 1e-6
        assert abs(f.corrupted_score - f.clean_score) > 1e-6  # the noise does corrupt
        # restoring the last layer at the last token is the clean run at the output
        assert abs(float(f.scores["hidden"][-1, -1]) - f.clean_score) < 1e-5


def test_restoring_the_subject_recovers_clean(lm3, facts):
    res = causal_trace(lm3, facts[:1], samples=4, progress=False)
    f = res.facts[0]
    eps = fact_noise(0, 0, 4, f.subject_span[1] - f.subject_span[0], lm3.d_model) * (res.noise * res.sigma)
    subj = range(*f.subject_span)
    args = (lm3, f.input_ids, f.subject_span, eps)
    # no restoration reproduces the corrupted score
    assert abs(trace_with_patch(*args, [], f.answer_id) - f.corrupted_score) < 1e-6
    # restoring the corrupted input (every subject token's embedding) recovers the clean score exactly
    assert abs(trace_with_patch(*args, [("embed", t) for t in subj], f.answer_id) - f.clean_score) < 1e-6
    # restoring any one layer at every token recovers it too
    for layer in range(lm3.n_layers):
        every = [(f"layers.{layer}", t) for t in range(len(f.input_ids))]
        assert abs(trace_with_patch(*args, every, f.answer_id) - f.clean_score) < 1e-5
    # every layer at every subject token == layer 0 at the subject tokens (the subject states become
    # clean from layer 0 on; later tokens still read the noised embeddings in layer 0's attention)
    all_layers = [(f"layers.{l}", t) for l in range(lm3.n_layers) for t in subj]
    first = [("layers.0", t) for t in subj]
    assert (
        abs(trace_with_patch(*args, all_layers, f.answer_id) - trace_with_patch(*args, first, f.answer_id))
        < 1e-6
    )


def test_sigma_is_rome_embedding_std(lm3, facts):
    emb = lm3.model.get_input_embeddings().weight.detach()
    rows = [emb[lm3.tokenizer(f["subject"], add_special_tokens=False)["input_ids"]] for f in facts]
    expected = float(torch.cat(rows).std())
    assert abs(embedding_std(lm3, [f["subject"] for f in facts]) - expected) < 1e-7
    res = causal_trace(lm3, facts[:1], kinds=["hidden"], samples=2, progress=False)
    assert abs(res.sigma - float(rows[0].std())) < 1e-7  # σ over the traced fact set
    fixed = causal_trace(lm3, facts[:1], kinds=["hidden"], samples=2, sigma=0.0, progress=False)
    f = fixed.facts[0]
    assert fixed.sigma == 0.0 and abs(f.corrupted_score - f.clean_score) < 1e-6  # σ=0: no corruption


def test_unknown_facts_skipped_or_kept(lm3, facts):
    tok = lm3.tokenizer
    candidates = [
        {"prompt": f"{p} {end}", "subject": p.split()[0]}
        for p in ("Mira Okafor", "Alan Turing", "The Eiffel Tower")
        for end in ("was born in", "is located in the city of", "worked in")
    ]
    probe = causal_trace(lm3, candidates, kinds=["hidden"], samples=1, progress=False)
    # a fact whose predicted token decodes to text that encodes back to it (byte pieces do not)
    found = [
        f
        for f in probe.facts
        if tok(f.answer_token, add_special_tokens=False)["input_ids"][:1] == [f.answer_id]
    ]
    assert found, "no candidate prompt predicts a whole-text token on this tiny model"
    good = {"prompt": found[0].prompt, "subject": found[0].subject, "answer": found[0].answer_token}
    bad = dict(facts[1], answer="qqqq-not-the-answer")
    res = causal_trace(lm3, [good, bad], kinds=["hidden"], samples=2, progress=False)
    assert [f.index for f in res.facts] == [0] and res.facts[0].known
    assert res.skipped[0]["index"] == 1 and res.skipped[0]["answer"] == "qqqq-not-the-answer"
    kept = causal_trace(lm3, [good, bad], kinds=["hidden"], samples=2, keep_unknown=True, progress=False)
    assert [f.known for f in kept.facts] == [True, False] and not kept.skipped


def test_shards_merge_to_the_single_process_result(lm3, facts):
    from workbench.tracing import TraceResult

    kw = dict(kinds=["hidden", "mlp"], samples=2, window=2, progress=False)
    whole = causal_trace(lm3, facts, **kw)
    parts = [causal_trace(lm3, facts, shard=(r, 2), **kw) for r in range(2)]
    assert [len(p.facts) for p in parts] == [1, 1]
    merged = TraceResult.merge(parts)
    for a, b in zip(whole.facts, merged.facts):
        assert a.index == b.index
        for k in kw["kinds"]:
            assert torch.equal(a.scores[k], b.scores[k])


def test_bad_facts_give_clear_errors(lm3):
    with pytest.raises(WorkbenchError, match="Ada Lovelace"):
        causal_trace(lm3, [{"prompt": "Mira Okafor was born in", "subject": "Ada Lovelace"}], progress=False)
    with pytest.raises(WorkbenchError, match="fact #1"):
        causal_trace(
            lm3,
            [
                {"prompt": "Mira Okafor was born in", "subject": "Mira"},
                {"prompt": "The tower", "subject": ""},
            ],
            progress=False,
        )
    with pytest.raises(WorkbenchError, match="unknown key"):
        causal_trace(lm3, [{"prompt": "Mira", "subject": "Mira", "object": "x"}], progress=False)
    with pytest.raises(WorkbenchError, match="no facts"):
        causal_trace(lm3, [], progress=False)
    with pytest.raises(WorkbenchError, match="unknown trace kind"):
        causal_trace(lm3, [{"prompt": "Mira Okafor", "subject": "Mira"}], kinds=["mlps"], progress=False)


def test_subject_span_on_token_ids(lm3):
    tok = lm3.tokenizer
    prompt = "The Eiffel Tower is located in the city of"
    ids = tok(prompt)["input_ids"]
    s0, s1 = subject_span(tok, prompt, "Eiffel Tower", ids)
    assert tok.decode(ids[s0:s1]).strip() == "Eiffel Tower"
    # a subject cut inside a token still covers that whole token
    a0, a1 = subject_span(tok, prompt, "iffel Tow", ids)
    assert (a0, a1) == (s0, s1) or tok.decode(ids[a0:a1]).find("iffel Tow") >= 0
    assert subject_span(tok, prompt, "Colosseum", ids) is None

    class Slow:  # a tokenizer without offsets: the id search (with a leading space variant) takes over
        is_fast = False

        def __call__(self, text, **kw):
            return tok(text, **kw)

        def decode(self, ids):
            return tok.decode(ids)

    assert subject_span(Slow(), prompt, "Eiffel Tower", ids) == (s0, s1)


@pytest.mark.parametrize("family", ["olmo", "llama-like", "gpt_neox", "olmo3", "olmoe"])
def test_prefix_reuse_matches_full_prompts(family, facts):
    """The KV-cache prefix path equals the whole-prompt path (anchored to ROME's loop above) per family."""
    lm = tiny_model(family, layers=2, seed=2)
    kw = dict(samples=2, window=2, seed=1, progress=False)
    a = causal_trace(lm, facts[1:], reuse_prefix=True, **kw).facts[0]
    b = causal_trace(lm, facts[1:], reuse_prefix=False, **kw).facts[0]
    for kind in a.scores:
        assert torch.allclose(a.scores[kind], b.scores[kind], atol=1e-6)
