"""Where forget rows may move the trained weights: gradient masking by token position.

Unlearning by gradient on a forget answer pushes the trained weights at *every* position of the record:
the template words, the answer's digits and punctuation, the subject's name. On a small model trained on
many people in one format, most of that change is not about the forget people at all: it teaches "do not
answer this kind of question", and the people in no unlearning batch (forget and retain alike) lose their
facts with the forget people.

ROME (Meng et al. 2022, "Locating and Editing Factual Associations in GPT") finds a fact recalled by the
early-middle MLPs *at the subject's tokens*. ``data.forget_positions`` uses that: the forward and the loss
stay as they are, but forget rows reach the selected weights only through

- ``all``: every position (the usual gradient; default);
- ``prompt``: the prompt (``input``) tokens;
- ``entities``: the prompt's named entities: capitalized words that are not question or function words,
  found by :func:`entity_spans` (the subject of a SemEval record is a name: a person, a place, a story's
  hero).

Retain rows always teach through every position, so the retain term holds everything the forget term may
touch. The masking is exact and cheap: each trainable linear's output ``y`` becomes
``y.detach() + m * (y - y.detach())`` (same value, gradient only where ``m`` is 1), see
:func:`gradient_position_mask`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from ..data import entity_spans
from ..errors import WorkbenchError

POSITIONS = ("all", "prompt", "entities")
__all__ = [
    "POSITIONS",
    "entity_spans",
    "forget_position_mask",
    "gradient_position_mask",
    "tokenize_with_entities",
]


def tokenize_with_entities(tokenizer: Any, text: str) -> tuple[list[int], tuple[int, ...]]:
    """``tokenizer(text)``'s ids and the indices of the tokens that overlap an entity span (one tokenization)."""
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError) as err:
        raise WorkbenchError(
            "data.forget_positions=entities needs a fast tokenizer (offsets); use forget_positions=prompt"
        ) from err
    spans = entity_spans(text)
    found = tuple(
        i
        for i, (a, b) in enumerate(enc["offset_mapping"])
        if b > a and any(a < e and b > s for s, e in spans)
    )
    return list(enc["input_ids"]), found


def forget_position_mask(batch: Any, where: str) -> torch.Tensor | None:
    """[B, T] bool: the positions each row teaches through (None for ``all``: no masking).

    Retain rows: every real token. Forget rows: the prompt (``prompt``) or its entity tokens (``entities``).
    """
    if where == "all":
        return None
    if where not in POSITIONS:
        raise WorkbenchError(f"unknown data.forget_positions {where!r}; use one of {', '.join(POSITIONS)}")
    own = batch.prompt_mask if where == "prompt" else batch.entity_mask
    if own is None:
        raise WorkbenchError(f"this batch carries no {where} positions; build it with load_data/collate")
    real = batch.attention_mask.bool()
    return torch.where(batch.is_forget[:, None], own & real, real)


@contextlib.contextmanager
def gradient_position_mask(model: Any, mask: torch.Tensor | None) -> Iterator[None]:
    """Inside the block, trainable linears take gradient only from the positions where ``mask`` is True.

    Each ``nn.Linear`` (LoRA factors included) with a trainable parameter gets a forward hook that returns
    ``y.detach() + m * (y - y.detach())``: the same value, so the forward, the loss and every frozen path
    are unchanged, but dL/dW sums over the masked positions only. Masking each trainable module's *own*
    output is exact because a linear's parameters reach the loss through its output alone. Outputs whose
    leading dims are not ``mask``'s [B, T] are left alone. ``mask=None`` does nothing.
    """
    if mask is None:
        yield
        return
    weight = mask.unsqueeze(-1)

    def hook(_module, _inputs, out):
        if not torch.is_tensor(out) or tuple(out.shape[:2]) != tuple(mask.shape):
            return out
        frozen = out.detach()
        return frozen + weight.to(out.dtype) * (out - frozen)

    handles = [
        mod.register_forward_hook(hook)
        for mod in model.modules()
        if isinstance(mod, torch.nn.Linear) and any(p.requires_grad for p in mod.parameters(recurse=False))
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
