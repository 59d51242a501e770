"""Keys: the input of the MLP down projection (``layers.{i}.mlp.hidden``) at the subject's last token.

A request's key is averaged over *context prefixes*: the bare prompt plus short texts put in front of it
(ROME, Meng et al. 2022, §3.1: "we average over a small set of contexts"). The prefixes are written by
the model itself with seeded top-k sampling, as ROME's ``get_context_templates`` does, or sampled as
word windows from a text source. Groups matter for the mean: ROME averages every context alike, MEMIT
(``memit/compute_ks.py``) averages within each group (the bare prompt is a group of its own) and then
over the groups.

Token bookkeeping is :func:`workbench.tracing.subject.subject_span` on the prompt's own tokenization; a
prefix that itself names the subject is skipped for that request (its span would be found there).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import WorkbenchError
from ..tracing.subject import subject_span
from .requests import EditRequest
from .sampling import sample

log = logging.getLogger(__name__)


def _clean(text: str) -> str:
    """One line, no braces (MEMIT strips them from its templates)."""
    return " ".join(text.replace("{", " ").replace("}", " ").split())


def generated_prefixes(lm: Any, cfg: Any) -> list[list[str]]:
    """Prefix groups written by the model: one group per length of ``cfg.context_lengths``."""
    groups = []
    starters = cfg.context_starters
    for g, (length, count) in enumerate(zip(cfg.context_lengths, cfg.context_counts)):
        per = max(1, count // len(starters)) if count else 0
        texts = []
        for s, start in enumerate(starters):
            seed = cfg.seed * 1_000_003 + g * 1009 + s
            texts += sample(lm, start, per, length, top_k=cfg.context_top_k, seed=seed)
        groups.append([_clean(t) for t in texts])
    return groups


def sampled_prefixes(texts: Sequence[str], cfg: Any, tokens_per_word: float = 1.3) -> list[list[str]]:
    """Prefix groups cut from ``texts`` as random word windows about ``length`` tokens long."""
    rng = random.Random(f"workbench-edit-prefixes-{cfg.seed}")
    words = [t.split() for t in texts if t.split()]
    if not words:
        raise WorkbenchError("the context source holds no words to cut prefixes from")
    groups = []
    for length, count in zip(cfg.context_lengths, cfg.context_counts):
        n = max(1, round(length / tokens_per_word))
        group = []
        for _ in range(count):
            w = rng.choice(words)
            at = rng.randrange(max(1, len(w) - n + 1))
            group.append(_clean(" ".join(w[at : at + n])))
        groups.append(group)
    return groups


def join(prefix: str, prompt: str) -> str:
    """A prompt in a context: ``"{prefix}. {prompt}"`` (ROME's template ``x + ". {}"``), or the bare prompt."""
    return f"{prefix}. {prompt}" if prefix else prompt


@dataclasses.dataclass
class Row:
    """One tokenized prompt-in-context of one request: ids and the subject's last token position."""

    request: int
    group: int
    ids: list[int]
    pos: int


def encode(
    tokenizer: Any, text: str, subject: str, where: str, fact_token: str = "subject_last"
) -> tuple[list[int], int]:
    """Token ids of ``text`` and the index of its fact token (default: the subject's last token)."""
    ids = list(tokenizer(text)["input_ids"])
    span = subject_span(tokenizer, text, subject, ids) if ids else None
    if span is None:
        raise WorkbenchError(f"{where}: the subject {subject!r} is not found in the tokens of {text!r}")
    at = {
        "subject_last": span[1] - 1,
        "subject_first": span[0],
        "subject_first_after_last": min(span[1], len(ids) - 1),
        "last": len(ids) - 1,
    }
    return ids, at[fact_token]


def context_rows(
    tokenizer: Any, requests: Sequence[EditRequest], groups: list[list[str]], fact_token: str = "subject_last"
) -> list[Row]:
    """Rows of every request in every context (group 0 is the bare prompt)."""
    rows = []
    for r, req in enumerate(requests):
        for g, group in enumerate([[""], *groups]):
            for prefix in group:
                if prefix and req.subject in prefix:
                    continue
                text = join(prefix, req.prompt)
                ids, pos = encode(tokenizer, text, req.subject, f"request #{r}", fact_token)
                rows.append(Row(r, g, ids, pos))
    return rows


def pad(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> dict:
    """Right-padded ``input_ids`` and ``attention_mask`` for a list of id lists."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def pad_id(tokenizer: Any) -> int:
    """The padding id (pad, else eos, else 0)."""
    for t in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if t is not None:
            return int(t)
    return 0


@torch.no_grad()
def at_subject(lm: Any, rows: Sequence[Row], sites: Sequence[str], batch_size: int = 64) -> dict:
    """``{site: [n_rows, d]}``: each site's activation at each row's subject-last token (float64, CPU)."""
    out: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    pid = pad_id(lm.tokenizer)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = pad([r.ids for r in chunk], pid, lm.device)
        at = (
            torch.arange(len(chunk), device=lm.device),
            torch.tensor([r.pos for r in chunk], device=lm.device),
        )
        with lm.hooks() as h:
            caps = {s: h.capture(s) for s in sites}
            lm.model(**batch)
        for s in sites:
            out[s].append(caps[s].value[at].double().cpu())
    return {s: torch.cat(v) for s, v in out.items()}


def average(values: torch.Tensor, rows: Sequence[Row], n_requests: int, grouped: bool) -> torch.Tensor:
    """``[n_requests, d]``: per request the mean over its rows (``grouped``: mean of group means)."""
    out = torch.zeros(n_requests, values.shape[-1], dtype=values.dtype)
    for r in range(n_requests):
        idx = [i for i, row in enumerate(rows) if row.request == r]
        if not grouped:
            out[r] = values[idx].mean(0)
            continue
        groups = sorted({rows[i].group for i in idx})
        out[r] = torch.stack([values[[i for i in idx if rows[i].group == g]].mean(0) for g in groups]).mean(0)
    return out


def keys(
    lm: Any,
    requests: Sequence[EditRequest],
    layer: int,
    groups: list[list[str]],
    grouped: bool,
    fact_token: str = "subject_last",
) -> torch.Tensor:
    """``[n_requests, d_in]`` keys of ``requests`` at ``layer``, averaged over the contexts."""
    rows = context_rows(lm.tokenizer, requests, groups, fact_token)
    site = f"layers.{layer}.mlp.hidden"
    return average(at_subject(lm, rows, [site])[site], rows, len(requests), grouped)


def bare_rows(tokenizer: Any, requests: Sequence[EditRequest], fact_token: str = "subject_last") -> list[Row]:
    """One row per request: its bare prompt."""
    return context_rows(tokenizer, requests, [], fact_token)
