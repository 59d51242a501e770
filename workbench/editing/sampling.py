"""Seeded top-k sampling, as ROME's ``generate_fast`` (kmeng01/rome ``util/generate.py``) does it.

Used for the context prefixes (short texts the model writes itself) and for the fluency metric (longer
texts whose n-gram entropy is measured). Rows that start from the same text are sampled together, so no
padding is needed; every row draws from its own seeded generator stream.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import WorkbenchError
from ..models.compat import cache_kwarg, output_cache


def _start_ids(tokenizer: Any, text: str) -> list[int]:
    ids = list(tokenizer(text)["input_ids"]) if text else []
    if not ids or not text:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise WorkbenchError("the tokenizer has neither a BOS nor an EOS token to start sampling from")
        if not ids or ids[0] != start:
            ids = [int(start), *ids]
    return ids


@torch.no_grad()
def sample(
    lm: Any, start: str, n: int, length: int, *, top_k: int = 5, seed: int = 0, new_tokens: bool = False
) -> list[str]:
    """``n`` texts continuing ``start`` (``""``: the BOS/EOS token) by top-k sampling.

    ``length`` counts every token including the start (ROME's ``max_out_len``), or only the new ones when
    ``new_tokens``. Returns the decoded texts without special tokens (the start text included).
    """
    if n <= 0:
        return []
    ids = _start_ids(lm.tokenizer, start)
    steps = length if new_tokens else max(length - len(ids), 0)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x = torch.tensor([ids] * n, device=lm.device)
    was_training = lm.model.training
    lm.model.eval()
    try:
        past, kw = None, cache_kwarg(lm.model)
        step_in = x
        for _ in range(steps):
            out = lm.model(input_ids=step_in, use_cache=True, **{kw: past})
            past = output_cache(out)
            probs = torch.softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
            top = torch.topk(probs, min(top_k, probs.shape[-1]), dim=-1)
            pick = torch.multinomial(top.values / top.values.sum(-1, keepdim=True), 1, generator=gen)
            nxt = top.indices.gather(-1, pick).to(lm.device)
            x = torch.cat([x, nxt], dim=1)
            step_in = nxt
    finally:
        lm.model.train(was_training)
    return [lm.tokenizer.decode(row, skip_special_tokens=True) for row in x.tolist()]
