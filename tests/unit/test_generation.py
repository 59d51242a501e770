"""Batched greedy generation: same strings as one prompt at a time, and as HF ``generate``."""

from __future__ import annotations

import pytest
import torch

from workbench.evaluation import generate_greedy

PROMPTS = [
    "The quick brown fox",
    "Mira Okafor was born in the city of",
    "Question: What is the capital of Norland?\nAnswer:",
    "0123",
    "Paris London Berlin Rome The Eiffel Tower is located in",
]


@pytest.fixture(scope="module")
def lm():
    from workbench.models.tiny import tiny_model

    return tiny_model("olmo2", seed=3)


def test_batched_equals_one_at_a_time(lm):
    batched = generate_greedy(lm.model, lm.tokenizer, PROMPTS, max_new_tokens=12, batch_size=8)
    singles = [generate_greedy(lm.model, lm.tokenizer, [p], max_new_tokens=12)[0] for p in PROMPTS]
    odd_batches = generate_greedy(lm.model, lm.tokenizer, PROMPTS, max_new_tokens=12, batch_size=2)
    assert batched == singles == odd_batches
    assert all(isinstance(s, str) and s for s in batched)


@pytest.mark.parametrize("family", ["olmo2", "gpt2"])
def test_matches_hf_generate(family):
    from workbench.models.tiny import tiny_model

    lm = tiny_model(family, seed=1)
    ours = generate_greedy(lm.model, lm.tokenizer, PROMPTS, max_new_tokens=9, batch_size=4)
    for prompt, text in zip(PROMPTS, ours):
        enc = lm.tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = lm.model.generate(
                **enc, max_new_tokens=9, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id
            )
        new = out[0, enc["input_ids"].shape[1] :].tolist()
        if lm.tokenizer.eos_token_id in new:
            new = new[: new.index(lm.tokenizer.eos_token_id)]
        assert text == lm.tokenizer.decode(new, skip_special_tokens=True)


def _hf_tokens(lm, prompt: str, n: int) -> list[int]:
    enc = lm.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = lm.model.generate(
            **enc, max_new_tokens=n, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id
        )
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_stops_at_eos_and_excludes_it(lm):
    free = {p: _hf_tokens(lm, p, 8) for p in PROMPTS}
    stop = free[PROMPTS[1]][0]  # this prompt's first greedy token becomes the end of sequence
    old = lm.model.generation_config.eos_token_id
    try:
        lm.model.generation_config.eos_token_id = stop
        got = generate_greedy(lm.model, lm.tokenizer, PROMPTS, max_new_tokens=8, batch_size=8)
    finally:
        lm.model.generation_config.eos_token_id = old
    assert got[1] == ""
    for prompt, text in zip(PROMPTS, got):
        toks = free[prompt]
        toks = toks[: toks.index(stop)] if stop in toks else toks
        assert text == lm.tokenizer.decode(toks, skip_special_tokens=True)
    assert any(text for text in got), "the other rows keep generating"


def test_restores_mode_and_handles_edges(lm):
    lm.model.train()
    try:
        assert generate_greedy(lm.model, lm.tokenizer, []) == []
        assert generate_greedy(lm.model, lm.tokenizer, PROMPTS[:2], max_new_tokens=0) == ["", ""]
        assert lm.model.training
    finally:
        lm.model.eval()
