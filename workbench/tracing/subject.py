"""Facts and token bookkeeping for tracing: the subject's token span, the answer token, the noise scale.

The subject span is found on token ids, never by re-tokenizing the subject alone and hoping it lines up:
the fast tokenizer's offsets mapping tells which tokens of the *prompt* cover the subject's characters
(a token that straddles the subject's edge counts as subject). Without offsets (slow tokenizers) the
subject's ids are searched inside the prompt's ids, with and without a leading space, and last the
decoded tokens are walked character by character as ROME's ``find_token_range`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import WorkbenchError


def as_fact(item: Any, index: int) -> Any:
    """Accept a :class:`workbench.data.Fact` or a ``{prompt, subject, answer?}`` mapping."""
    from ..data import Fact

    if isinstance(item, Fact):
        fact = item
    elif isinstance(item, dict):
        unknown = set(item) - {"prompt", "subject", "answer"}
        if unknown:
            raise WorkbenchError(
                f"fact #{index}: unknown key(s) {sorted(unknown)}; a fact has prompt, subject, answer"
            )
        fact = Fact(str(item.get("prompt") or ""), str(item.get("subject") or ""), item.get("answer"))
    else:
        raise WorkbenchError(
            f"fact #{index} is a {type(item).__name__}; pass Fact objects or {{prompt, subject}} dicts"
        )
    if not fact.prompt.strip() or not fact.subject.strip():
        raise WorkbenchError(f"fact #{index} ({fact.prompt!r}) needs a non-empty prompt and subject")
    return fact


def _describe(fact: Any, index: int) -> str:
    return f"fact #{index} (prompt {fact.prompt!r}, subject {fact.subject!r})"


def _find_sublist(hay: Sequence[int], needle: Sequence[int]) -> int:
    n = len(needle)
    for i in range(len(hay) - n + 1):
        if n and list(hay[i : i + n]) == list(needle):
            return i
    return -1


def subject_span(
    tokenizer: Any, prompt: str, subject: str, input_ids: Sequence[int]
) -> tuple[int, int] | None:
    """``(start, end)`` token indices of ``subject`` in the tokenized ``prompt``, or None if absent."""
    char0 = prompt.find(subject)
    if char0 < 0:
        return None
    char1 = char0 + len(subject)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(prompt, return_offsets_mapping=True)
        if list(enc["input_ids"]) == list(input_ids):
            hits = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < char1 and b > char0]
            if hits:
                return hits[0], hits[-1] + 1
    for variant in (subject, " " + subject, subject.strip(), " " + subject.strip()):
        ids = tokenizer(variant, add_special_tokens=False)["input_ids"]
        at = _find_sublist(input_ids, ids)
        if at >= 0:
            return at, at + len(ids)
    # ROME's find_token_range: walk the decoded tokens until the subject's characters are covered.
    toks = [tokenizer.decode([i]) for i in input_ids]
    whole = "".join(toks)
    at = whole.find(subject)
    if at < 0:
        return None
    loc, start = 0, None
    for i, t in enumerate(toks):
        loc += len(t)
        if start is None and loc > at:
            start = i
        if loc >= at + len(subject):
            return start, i + 1
    return None


def encode_fact(tokenizer: Any, fact: Any, index: int) -> tuple[list[int], tuple[int, int]]:
    """The prompt's token ids and the subject span; a subject not in the prompt names the fact."""
    ids = list(tokenizer(fact.prompt)["input_ids"])
    if not ids:
        raise WorkbenchError(f"{_describe(fact, index)} tokenizes to nothing; give a non-empty prompt")
    span = subject_span(tokenizer, fact.prompt, fact.subject, ids)
    if span is None:
        raise WorkbenchError(
            f"{_describe(fact, index)}: the subject does not occur in the prompt; fix the fact so that the "
            f"subject is a substring of the prompt (case and spacing included)"
        )
    return ids, span


def answer_token_ids(tokenizer: Any, answer: str) -> set[int]:
    """First token ids the expected ``answer`` may start with (with and without a leading space)."""
    out = set()
    for variant in (answer, " " + answer.lstrip(), answer.strip()):
        ids = tokenizer(variant, add_special_tokens=False)["input_ids"]
        if ids:
            out.add(int(ids[0]))
    return out


def embedding_std(lm: Any, subjects: Sequence[str]) -> float:
    """σ of the noise: the std over all elements of the subjects' token embeddings.

    As ROME's ``collect_embedding_std`` (kmeng01/rome, experiments/causal_trace.py): each subject is
    tokenized on its own, embedded, and the std is taken over every element of every embedding vector.
    Special tokens (BOS) are left out: the noise only ever lands on subject tokens.
    """
    module = lm.model.get_submodule(lm.site("embed").module)  # the module whose output the noise perturbs
    rows = []
    for s in dict.fromkeys(subjects):
        ids = lm.tokenizer(s, add_special_tokens=False)["input_ids"]
        if ids:
            with torch.no_grad():
                rows.append(module(torch.tensor(ids, device=lm.device)).float())
    if not rows:
        raise WorkbenchError(
            "no subject tokenizes to any token; cannot estimate the noise scale (pass sigma=)"
        )
    return float(torch.cat(rows).std().item())
