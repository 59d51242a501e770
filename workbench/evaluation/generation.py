"""Batched greedy generation with left padding and a KV cache, for any HF causal LM.

Prompts are tokenized as the tokenizer does by default (``add_special_tokens=True``: OLMo and the
organism add nothing, Llama-style tokenizers add BOS), left-padded into batches sorted by length, and
continued greedily until every row has produced an end-of-sequence token or ``max_new_tokens`` is
reached. Position ids are counted from each row's first real token, so a batched run gives the same
tokens as running every prompt alone. The SemEval-2025 Task 4 evaluation scores raw prompts this way
(greedy decoding, no chat template).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..errors import WorkbenchError


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    if eos is not None:
        ids.update(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]))
    if not ids:
        raise WorkbenchError("the tokenizer has no eos_token: set tokenizer.eos_token before generating")
    return ids


def _pad_id(tokenizer, eos_ids: set[int]) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return min(eos_ids)


def _encode(tokenizer, prompts: list[str], eos_ids: set[int]) -> list[list[int]]:
    encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else min(eos_ids)
    return [list(ids) if len(ids) else [int(start)] for ids in encoded]


@torch.inference_mode()
def _generate_batch(
    model, batch: list[list[int]], *, max_new_tokens: int, pad_id: int, eos_ids: set[int]
) -> list[list[int]]:
    """Greedy-continue one batch of token lists; returns the new tokens of each row, eos excluded."""
    from transformers import DynamicCache

    from ..models.compat import cache_kwarg, output_cache

    cache_kw = cache_kwarg(model)
    device = next(model.parameters()).device
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    eos = torch.tensor(sorted(eos_ids), device=device)
    done = torch.zeros(len(batch), dtype=torch.bool, device=device)
    new_tokens: list[torch.Tensor] = []
    step_ids = input_ids
    for _ in range(max_new_tokens):
        out = model(
            input_ids=step_ids,
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            **{cache_kw: cache},
        )
        cache = output_cache(out)
        nxt = out.logits[:, -1, :].argmax(dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        new_tokens.append(nxt)
        done = done | torch.isin(nxt, eos)
        if bool(done.all()):
            break
        step_ids = nxt[:, None]
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
    if not new_tokens:
        return [[] for _ in batch]
    generated = torch.stack(new_tokens, dim=1).tolist()
    result = []
    for row in generated:
        cut = next((i for i, tok in enumerate(row) if tok in eos_ids), len(row))
        result.append(row[:cut])
    return result


def generate_greedy(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 32,
    progress: bool = False,
) -> list[str]:
    """Greedy continuations of ``prompts`` (decoded, special tokens and the eos removed), in input order.

    Batched with left padding and a KV cache; each row stops at the first end-of-sequence token.
    """
    if batch_size < 1 or max_new_tokens < 0:
        raise WorkbenchError("generate_greedy: batch_size must be >= 1 and max_new_tokens >= 0")
    prompts = list(prompts)
    if not prompts:
        return []
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = _pad_id(tokenizer, eos_ids)
    encoded = _encode(tokenizer, prompts, eos_ids)
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
    outputs: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="generate", disable=not progress, leave=False):
            idx = order[start : start + batch_size]
            tokens = _generate_batch(
                model,
                [encoded[i] for i in idx],
                max_new_tokens=max_new_tokens,
                pad_id=pad_id,
                eos_ids=eos_ids,
            )
            for i, toks in zip(idx, tokens):
                outputs[i] = tokenizer.decode(toks, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return outputs
