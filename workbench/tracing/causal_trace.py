"""Causal tracing, exactly ROME's algorithm (Meng et al. 2022; kmeng01/rome ``experiments/causal_trace.py``).

For one fact: row 0 of the batch is the clean prompt; every other row adds Gaussian noise (``noise`` × σ,
σ the std of the fact set's subject-token embeddings) to the embeddings at the subject tokens. The same
``samples`` noise draws are used for every cell of one fact, as ROME re-seeds its generator per call.
A cell (token t, layer l) restores, from row 0 of the same forward:

- ``hidden``: the residual stream after block l (``layers.{l}``) at token t;
- ``mlp`` / ``attn``: the sublayer's output at token t in every layer of the window
  ``[l - window//2, l + ceil(window/2))`` clipped to ``[0, L)`` (ROME's ``trace_important_window``).

The score is the probability of the clean run's top token at the last position, averaged over the noise
samples. Where ROME runs one forward per cell, here many cells × all samples share one forward: each cell
owns ``samples`` rows, and the restorations are paired (row, position) writes through the hook engine
(``h.patch(site, source_row=0, cells=...)``), chunked to ``max_batch_tokens`` tokens per forward.

Reuse of the shared corrupted computation: every cell that restores token t leaves the tokens before t
untouched (attention is causal), so on full-attention families those cells share one corrupted prefix
through HF's KV cache (``DynamicCache``) and run only tokens ``t..``: about half of the token-forwards.
Two more exact shortcuts skip forwards whose answer is known: cells before the subject (clean and
corrupted rows agree there, so restoring is a no-op: the corrupted score) and mlp/attn cells whose
clipped windows coincide (a window wider than a small model).

The window defaults to ROME's proportion of the depth (10 of GPT-2 XL's 48 layers, about a fifth:
:func:`~workbench.tracing.result.default_window`), so that it never covers a small model whole; an
explicit ``window`` wins.
Layer skipping (``resume_layers``): the states below a cell's first changed block are those of the
fact's corrupted run, the same for every cell, so one baseline forward keeps every block's input (and
every MLP output) and each cell's rows start at their first changed block: a hidden cell of layer l at
block l+1 (its restoration written into that block's input), an mlp window starting at a at block a+1
(the clean-minus-corrupted MLP output added to the next block's input), an attn window at block a, all
through the hook engine; the last block computes keys and values only before the last token. Families
or configs the block runner does not cover (sliding-window attention, other attention kernels) fall
back to full forwards (:mod:`workbench.tracing.resume`). Both shortcuts are exact.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import torch

from ..config import make_config
from ..errors import WorkbenchError
from .config import TraceConfig
from .restore import (  # noqa: F401  (baseline, last_logits, trace_with_patch, window_layers re-exported)
    baseline,
    fact_baseline,
    last_logits,
    restored_grid,
    trace_with_patch,
    window_layers,
)
from .result import FactTrace, TraceResult, default_window
from .subject import answer_token_ids, as_fact, embedding_std, encode_fact

log = logging.getLogger(__name__)


def fact_noise(seed: int, index: int, samples: int, n_tokens: int, d: int) -> torch.Tensor:
    """Standard-normal noise ``[samples, n_tokens, d]`` of fact ``index`` (same for every cell of it)."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))
    return torch.randn(samples, n_tokens, d, generator=gen)


def causal_trace(
    lm: Any,
    facts: Sequence[Any],
    config: TraceConfig | None = None,
    *,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> TraceResult:
    """Causal tracing (ROME) of ``facts`` (``Fact`` objects or ``{prompt, subject, answer?}`` dicts).

    Settings come from ``config`` (a :class:`TraceConfig`) and/or keyword overrides of its fields
    (``samples=3, kinds=("mlp",)``). ``window`` (mlp/attn) defaults to about a fifth of the model's depth
    (ROME's 10 of 48 layers). ``noise`` is a multiple of σ, the std of the subject-token embeddings of
    the whole fact set (or give ``sigma``). Facts whose clean top token is not the first token of
    ``answer`` are skipped (listed in ``result.skipped``) unless ``keep_unknown``. ``shard=(rank, world)``
    traces only the facts with ``index % world == rank`` (σ and the noise draws still come from the whole
    set, so shards merge to the single-process result).
    """
    from tqdm.auto import tqdm

    cfg = make_config(TraceConfig, config, overrides)
    if cfg.window is None:
        cfg = dataclasses.replace(cfg, window=default_window(lm.n_layers))
    lm.require_tokenizer("causal tracing (facts are text)")
    facts = [as_fact(f, i) for i, f in enumerate(facts)]
    if not facts:
        raise WorkbenchError("no facts to trace; give at least one {prompt, subject} fact")
    encoded = [encode_fact(lm.tokenizer, f, i) for i, f in enumerate(facts)]
    sig = float(cfg.sigma) if cfg.sigma is not None else embedding_std(lm, [f.subject for f in facts])
    rank, world = shard or (0, 1)
    mine = [i for i in range(len(facts)) if i % world == rank]
    result = TraceResult(
        facts=[],
        kinds=tuple(cfg.kinds),
        n_layers=lm.n_layers,
        samples=cfg.samples,
        noise=cfg.noise,
        sigma=sig,
        window=cfg.window,
        seed=cfg.seed,
        model=str(lm.spec),
    )
    total = sum(len(encoded[i][0]) for i in mine) * lm.n_layers * len(cfg.kinds)
    with tqdm(total=total, desc="causal trace", unit="cell", disable=not progress) as bar:
        for i in mine:
            fact, (ids, span) = facts[i], encoded[i]
            eps = fact_noise(cfg.seed, i, cfg.samples, span[1] - span[0], lm.d_model) * (cfg.noise * sig)
            base = fact_baseline(
                lm, ids, span, eps, reuse_prefix=cfg.reuse_prefix, resume_layers=cfg.resume_layers
            )
            answer, clean, corrupted = base.answer, base.clean, base.corrupted
            known = fact.answer is None or answer in answer_token_ids(lm.tokenizer, str(fact.answer))
            token = lm.tokenizer.decode([answer])
            if not known and not cfg.keep_unknown:
                log.info("fact #%d skipped: predicts %r, expected %r", i, token, fact.answer)
                result.skipped.append(
                    {
                        "index": i,
                        "prompt": fact.prompt,
                        "subject": fact.subject,
                        "answer": fact.answer,
                        "predicted": token,
                    }
                )
                bar.update(len(ids) * lm.n_layers * len(cfg.kinds))
                continue
            scores = restored_grid(
                lm,
                ids,
                span,
                eps,
                answer,
                cfg.kinds,
                window=cfg.window,
                max_batch_tokens=cfg.max_batch_tokens,
                reuse_prefix=cfg.reuse_prefix,
                resume_layers=cfg.resume_layers,
                base=base,
                bar=bar,
            )
            result.facts.append(
                FactTrace(
                    prompt=fact.prompt,
                    subject=fact.subject,
                    answer=fact.answer,
                    answer_id=answer,
                    answer_token=token,
                    tokens=[lm.tokenizer.decode([t]) for t in ids],
                    input_ids=list(ids),
                    subject_span=span,
                    clean_score=clean,
                    corrupted_score=corrupted,
                    known=known,
                    scores=scores,
                    index=i,
                )
            )
    return result
