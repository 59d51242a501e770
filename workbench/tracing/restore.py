"""The batched forward machinery of causal tracing: noise, paired restorations, shared prefixes.

Row 0 of every batch is the clean prompt; each traced cell owns ``samples`` further rows that get the
fact's noise at the subject tokens and the cell's restorations, written from row 0 of the same forward
(``h.patch(site, source_row=0, cells=(rows, positions))``). See :mod:`workbench.tracing.causal_trace`
for the algorithm (ROME) and :func:`restored_grid` for the shortcuts that keep it exact.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any

import torch

from .resume import Resumer, resumer, run_from


def window_layers(layer: int, window: int, n_layers: int) -> range:
    """ROME's restoration window centred on ``layer``, clipped to ``[0, n_layers)``."""
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


# families whose HF forward takes a DynamicCache of full-attention layers (prefix reuse is tested on these)
_PREFIX_FAMILIES = ("olmo", "olmo2", "olmoe", "llama-like", "gpt2", "gpt_neox")


def _site(kind: str, layer: int) -> str:
    return f"layers.{layer}" if kind == "hidden" else f"layers.{layer}.{kind}"


def _cache_kw(lm: Any) -> str:
    """The forward's KV-cache argument: ``cache`` (transformers >= 5.2x) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(lm.model.forward).parameters else "past_key_values"


def last_logits(lm: Any, ids: torch.Tensor, *, past: Any = None, keep_cache: bool = False) -> Any:
    """Logits at the last position only (``logits_to_keep=1`` where the model supports it).

    ``past`` is a KV cache of the tokens before ``ids``; with ``keep_cache`` the result is
    ``(logits, cache)``.
    """
    kw: dict[str, Any] = {}
    if "logits_to_keep" in inspect.signature(lm.model.forward).parameters:
        kw["logits_to_keep"] = 1
    if past is not None:
        kw[_cache_kw(lm)] = past
    if keep_cache:
        kw["use_cache"] = True
    out = lm.model(input_ids=ids, **kw)
    if not keep_cache:
        return out.logits[:, -1]
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    return out.logits[:, -1], cache


def _run(
    lm: Any,
    ids: list[int],
    span: tuple[int, int],
    noise: torch.Tensor,
    n_rows: int,
    restores: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    start: int = 0,
    past: Any = None,
    keep_cache: bool = False,
    keep_inputs: Sequence[str] = (),
) -> Any:
    """One forward: row 0 clean, rows 1.. noised at the subject, ``restores`` = site -> (rows, positions).

    With ``past`` (a KV cache of tokens ``[0, start)``) only tokens ``start..`` run, and positions in
    ``restores`` count from ``start``. Returns last-position probabilities, then (when asked) the cache
    and the activations at the sites ``keep_inputs`` (the block inputs, for layer skipping).
    """
    x = torch.tensor([ids[start:]], device=lm.device).expand(n_rows, -1)
    reps = (n_rows - 1) // noise.shape[0]
    s0, s1 = max(span[0], start), span[1]
    with lm.hooks() as h, torch.no_grad():
        if s1 > s0:
            eps = noise[:, s0 - span[0] :].repeat(reps, 1, 1)
            h.add("embed", eps, rows=range(1, n_rows), positions=range(s0 - start, s1 - start))
        for site, cells in restores.items():
            h.patch(site, source_row=0, cells=cells)
        caps = [h.capture(site) for site in keep_inputs]
        out = last_logits(lm, x, past=past, keep_cache=keep_cache)
        logits, cache = out if keep_cache else (out, None)
        probs = _probs(logits)
    if not keep_cache and not keep_inputs:
        return probs
    return probs, cache, [c.value for c in caps]


def _probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def trace_with_patch(
    lm: Any,
    ids: list[int],
    span: tuple[int, int],
    noise: torch.Tensor,
    states: Sequence[tuple[str, int]],
    answer: int,
) -> float:
    """ROME's ``trace_with_patch``: restore any set of (site, token) states in one corrupted run.

    Returns the probability of ``answer`` averaged over the noise samples (``noise`` is ``[S, span, d]``,
    already scaled). ``states`` may mix sites, e.g. every layer at every subject token.
    """
    S = noise.shape[0]
    by_site: dict[str, list[int]] = {}
    for site, tok in states:
        by_site.setdefault(site, []).append(int(tok))
    restores = {
        site: (torch.arange(1, S + 1).repeat_interleave(len(toks)), torch.tensor(toks).repeat(S))
        for site, toks in by_site.items()
    }
    probs = _run(lm, ids, span, noise.to(device=lm.device, dtype=lm.dtype), S + 1, restores)
    return float(probs[1:, answer].mean())


def _chunk_restores(
    kinds: list[str],
    kind_idx: torch.Tensor,
    tok: torch.Tensor,
    lay: torch.Tensor,
    samples: int,
    window: int,
    n_layers: int,
    resume: Resumer | None = None,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Paired (row, position) restorations per site for the cells of one chunk (cell c owns rows 1+c*S..).

    With ``resume``, the first restored block of a cell is skipped where the restoration can be written
    into the next block's input instead: a hidden cell of layer l < L-1 restores the input of block l+1
    (the same tensor as block l's output); an mlp cell whose window starts at block a < L-1 gets, in the
    input of block a+1, the clean minus the corrupted mlp output of block a (second dict: block a ->
    (rows, positions); the residual after block a is its mid-block state plus its mlp output, and
    nothing else in block a changes). Its forward then starts at block l+1 or a+1.
    """
    out, jumps = {}, {}
    offs = torch.arange(samples)
    lo = (lay - window // 2).clamp(min=0)
    hi = (lay - (-window // 2)).clamp(max=n_layers)
    for k, kind in enumerate(kinds):
        for layer in range(n_layers):
            if kind == "hidden":
                sel = (kind_idx == k) & (lay == layer)
            else:
                sel = (kind_idx == k) & (lo <= layer) & (layer < hi)
            skip = resume is not None and layer < n_layers - 1 and kind in ("hidden", "mlp")
            if skip and kind == "mlp":
                jump = (sel & (lo == layer)).nonzero(as_tuple=True)[0]
                if len(jump):
                    jumps[layer] = (
                        (1 + jump[:, None] * samples + offs).reshape(-1),
                        tok[jump].repeat_interleave(samples),
                    )
                sel = sel & (lo != layer)
            idx = sel.nonzero(as_tuple=True)[0]
            if len(idx):
                rows = (1 + idx[:, None] * samples + offs).reshape(-1)
                site = resume.block_input_site(layer + 1) if skip and kind == "hidden" else _site(kind, layer)
                out[site] = (rows, tok[idx].repeat_interleave(samples))
    return out, jumps


def prefix_reusable(lm: Any) -> bool:
    """Whether the corrupted prefix may be reused through the KV cache (full-attention families)."""
    cfg = lm.model.config
    return lm.family in _PREFIX_FAMILIES and getattr(cfg, "sliding_window", None) is None


def baseline(lm: Any, ids: list[int], span: tuple[int, int], noise: torch.Tensor) -> tuple[int, float, float]:
    """``(answer_id, clean score, corrupted score)``: the clean top token and its two probabilities."""
    base = fact_baseline(lm, ids, span, noise, reuse_prefix=False, resume_layers=False)
    return base.answer, base.clean, base.corrupted


@dataclasses.dataclass
class FactBaseline:
    """A fact's baseline forward (row 0 clean, rows 1..S corrupted) and what its cells reuse of it."""

    answer: int
    """the clean run's top token"""
    clean: float
    """its probability in the clean run"""
    corrupted: float
    """its probability averaged over the corrupted rows"""
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    """per block, keys and values of every row (for prefix reuse)"""
    states: list[torch.Tensor] | None = None
    """per block, its input for every row (for starting a cell's forward at its first restored block)"""
    mlp: list[torch.Tensor] | None = None
    """per block, its mlp output for every row (mlp cells start one block after their window's first)"""


def fact_baseline(
    lm: Any,
    ids: list[int],
    span: tuple[int, int],
    noise: torch.Tensor,
    *,
    reuse_prefix: bool = True,
    resume_layers: bool = True,
) -> FactBaseline:
    """One forward of the clean and corrupted rows, keeping what :func:`restored_grid` reuses.

    Give the result to ``restored_grid(base=...)`` with the same flags to spare it a second baseline.
    """
    noise = noise.to(device=lm.device, dtype=lm.dtype)
    resume = resumer(lm) if resume_layers else None
    keep_cache = reuse_prefix and prefix_reusable(lm)
    L = lm.n_layers
    sites = (
        [resume.block_input_site(i) for i in range(L)] + [f"layers.{i}.mlp" for i in range(L)]
        if resume
        else []
    )
    out = _run(lm, ids, span, noise, noise.shape[0] + 1, {}, keep_cache=keep_cache, keep_inputs=sites)
    probs, cache, kept = out if (keep_cache or sites) else (out, None, [])
    answer = int(probs[0].argmax())
    base = FactBaseline(answer, float(probs[0, answer]), float(probs[1:, answer].mean()))
    if kept:
        base.states, base.mlp = kept[:L], kept[L:]
    if cache is not None:
        base.kv = [(layer.keys, layer.values) for layer in cache.layers]
    return base


def unique_cells(kinds: list[str], T: int, L: int, s0: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells that need a forward, token-major, and for every cell of the grid its computed twin.

    Exact shortcuts (index -1: the corrupted score): a token before the subject is the same in the clean
    and corrupted rows (the noise starts at the subject, attention is causal), so restoring it changes
    nothing; nor does restoring only the last layer at a token other than the last (no later layer
    reads it, the output reads the last token). For the same reason the last layer of an mlp/attn window
    at a token other than the last changes nothing, and cells whose windows then coincide (a window
    wider than a small model) restore the same states, so one forward serves them all. Work rows are
    ``(token, kind, layer, first)``, ``first`` the first block a layer-skipping forward runs: the blocks
    below it are the corrupted run's (hidden: block l+1, which reads the restored state; mlp: the block
    after the window's first, see :func:`_chunk_restores`; attn: the window's first block; never past
    the last block).
    """
    work, index, seen = [], torch.full((T, len(kinds), L), -1, dtype=torch.long), {}
    for t in range(s0, T):
        for k, kind in enumerate(kinds):
            for layer in range(L):
                w = range(layer, layer + 1) if kind == "hidden" else window_layers(layer, window, L)
                if t < T - 1:
                    w = range(w.start, min(w.stop, L - 1))
                if not len(w):
                    continue
                key = (t, k, layer) if kind == "hidden" else (t, k, w.start, w.stop)
                if key not in seen:
                    seen[key] = len(work)
                    first = min((layer if kind == "hidden" else w.start) + (kind != "attn"), L - 1)
                    work.append((t, k, layer, first))
                index[t, k, layer] = seen[key]
    return torch.tensor(work, dtype=torch.long).view(-1, 4), index


def restored_grid(
    lm: Any,
    ids: list[int],
    span: tuple[int, int],
    noise: torch.Tensor,
    answer: int,
    kinds: Sequence[str],
    *,
    window: int = 10,
    max_batch_tokens: int = 16384,
    reuse_prefix: bool = True,
    resume_layers: bool = True,
    base: FactBaseline | None = None,
    bar: Any = None,
) -> dict[str, torch.Tensor]:
    """The restored score of every (token, layer) cell per kind, ``{kind: [T, L]}``, batched.

    ``noise`` is the scaled noise ``[S, span, d]``; ``answer`` the token whose probability is scored;
    ``bar`` (tqdm) counts cells. With ``reuse_prefix`` (full-attention families), the cells restoring
    token t share the corrupted run of tokens ``< t`` (they are untouched by the restoration: attention
    is causal) through HF's KV cache, and run only tokens ``t..``: about half the token-forwards. With
    ``resume_layers`` (families :func:`workbench.tracing.resume.resumer` supports), each cell's forward
    starts at the first block it restores, from the corrupted run's block inputs cached once per fact.
    Both are exact; turning them off gives full forwards (the same scores to float rounding). ``base``
    is this fact's :func:`fact_baseline` with the same flags (else one more baseline forward runs).
    """
    kinds = list(kinds)
    S, T, L = noise.shape[0], len(ids), lm.n_layers
    noise = noise.to(device=lm.device, dtype=lm.dtype)
    reuse = reuse_prefix and prefix_reusable(lm)
    resume = resumer(lm) if resume_layers else None
    if base is None or (reuse and base.kv is None) or (resume is not None and base.states is None):
        base = fact_baseline(lm, ids, span, noise, reuse_prefix=reuse, resume_layers=resume is not None)
    corrupted = base.corrupted
    work, index = unique_cells(kinds, T, L, span[0], window)
    per_chunk = max(1, (max_batch_tokens // T - 1) // S)
    values = torch.empty(len(work))
    # one chunk never mixes tokens when the prefix is reused (the cache is cut at that token); with
    # layer skipping a chunk's cells run sorted by first block (the rows running at block l are a prefix)
    groups = [(work[:, 0] == t).nonzero()[:, 0] for t in range(T)] if reuse else [torch.arange(len(work))]
    for group in (g for g in groups if len(g)):
        if resume is not None:
            group = group[work[group, 3].argsort(stable=True)]
        for chunk in group.split(per_chunk):
            probs = _chunk_forward(lm, ids, span, noise, kinds, work[chunk], base, window, reuse, resume)
            values[chunk] = probs[1:, answer].view(len(chunk), S).mean(1).cpu()
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:  # the cells answered without a forward (before the subject, shared windows)
        bar.update(T * len(kinds) * L - len(work))
    grids = torch.where(index >= 0, values[index.clamp(min=0)], torch.tensor(corrupted)).transpose(0, 1)
    return {kind: grids[i].clone() for i, kind in enumerate(kinds)}


def _chunk_forward(
    lm: Any,
    ids: list[int],
    span: tuple[int, int],
    noise: torch.Tensor,
    kinds: list[str],
    cells: torch.Tensor,
    kept: FactBaseline,
    window: int,
    reuse: bool,
    resume: Resumer | None,
) -> torch.Tensor:
    """Last-position probabilities of one chunk's rows: row 0 clean, then ``samples`` rows per cell."""
    from transformers import DynamicCache

    S, L = noise.shape[0], lm.n_layers
    t, k, l, first = cells.unbind(1)
    n = len(k)
    start = int(t[0]) if reuse else 0
    src = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1, S + 1).repeat(n)])
    restores, jumps = _chunk_restores(kinds, k, t - start, l, S, window, L, resume)
    if resume is not None:
        first_row = torch.cat([first[:1], first.repeat_interleave(S)])  # row 0 runs from the lowest block
        adds = {}
        for block, (rows, pos) in jumps.items():
            mlp, at = kept.mlp[block], pos.to(kept.mlp[block].device) + start
            delta = mlp[0, at] - mlp[src[rows].to(mlp.device), at]  # clean minus corrupted mlp output
            adds[resume.block_input_site(block + 1)] = (rows, pos, delta)
        logits = run_from(resume, kept.states, src, first_row, restores, start=start, kv=kept.kv, adds=adds)
        return _probs(logits)
    past = None
    if start > 0:
        rows = src.to(lm.device)
        past = DynamicCache(ddp_cache_data=[(a[rows, :, :start], b[rows, :, :start]) for a, b in kept.kv])
    return _run(lm, ids, span, noise, 1 + n * S, restores, start=start, past=past)
