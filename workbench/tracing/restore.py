"""The batched forward machinery of causal tracing: noise, paired restorations, shared prefixes.

Row 0 of every batch is the clean prompt; each traced cell owns ``samples`` further rows that get the
fact's noise at the subject tokens and the cell's restorations, written from row 0 of the same forward
(``h.patch(site, source_row=0, cells=(rows, positions))``). See :mod:`workbench.tracing.causal_trace`
for the algorithm (ROME) and :func:`restored_grid` for the shortcuts that keep it exact.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch


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
) -> Any:
    """One forward: row 0 clean, rows 1.. noised at the subject, ``restores`` = site -> (rows, positions).

    With ``past`` (a KV cache of tokens ``[0, start)``) only tokens ``start..`` run, and positions in
    ``restores`` count from ``start``. Returns last-position probabilities (and the cache if asked).
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
        out = last_logits(lm, x, past=past, keep_cache=keep_cache)
        logits, cache = out if keep_cache else (out, None)
        probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    return (probs, cache) if keep_cache else probs


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
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Paired (row, position) restorations per site for the cells of one chunk (cell c owns rows 1+c*S..)."""
    out = {}
    offs = torch.arange(samples)
    lo = (lay - window // 2).clamp(min=0)
    hi = (lay - (-window // 2)).clamp(max=n_layers)
    for k, kind in enumerate(kinds):
        for layer in range(n_layers):
            if kind == "hidden":
                sel = (kind_idx == k) & (lay == layer)
            else:
                sel = (kind_idx == k) & (lo <= layer) & (layer < hi)
            idx = sel.nonzero(as_tuple=True)[0]
            if len(idx):
                rows = (1 + idx[:, None] * samples + offs).reshape(-1)
                out[_site(kind, layer)] = (rows, tok[idx].repeat_interleave(samples))
    return out


def prefix_reusable(lm: Any) -> bool:
    """Whether the corrupted prefix may be reused through the KV cache (full-attention families)."""
    cfg = lm.model.config
    return lm.family in _PREFIX_FAMILIES and getattr(cfg, "sliding_window", None) is None


def baseline(lm: Any, ids: list[int], span: tuple[int, int], noise: torch.Tensor) -> tuple[int, float, float]:
    """``(answer_id, clean score, corrupted score)``: the clean top token and its two probabilities."""
    answer, clean, corrupted, _ = _baseline(lm, ids, span, noise, keep_cache=False)
    return answer, clean, corrupted


def _baseline(lm: Any, ids: list[int], span: tuple[int, int], noise: torch.Tensor, keep_cache: bool) -> tuple:
    noise = noise.to(device=lm.device, dtype=lm.dtype)
    out = _run(lm, ids, span, noise, noise.shape[0] + 1, {}, keep_cache=keep_cache)
    base, cache = out if keep_cache else (out, None)
    answer = int(base[0].argmax())
    kv = None
    if cache is not None:
        kv = [(layer.keys, layer.values) for layer in cache.layers]
    return answer, float(base[0, answer]), float(base[1:, answer].mean()), kv


def _unique_cells(
    kinds: list[str], T: int, L: int, s0: int, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells that need a forward, token-major, and for every cell of the grid its computed twin.

    Exact shortcuts (index -1: the corrupted score): a token before the subject is the same in the clean
    and corrupted rows (the noise starts at the subject, attention is causal), so restoring it changes
    nothing; nor does restoring only the last layer at a token other than the last (no later layer
    reads it, the output reads the last token). And mlp/attn cells whose clipped windows coincide (a
    window wider than a small model) restore the same states, so one forward serves them all.
    """
    work, index, seen = [], torch.full((T, len(kinds), L), -1, dtype=torch.long), {}
    for t in range(s0, T):
        for k, kind in enumerate(kinds):
            for layer in range(L):
                w = range(layer, layer + 1) if kind == "hidden" else window_layers(layer, window, L)
                if t < T - 1 and w.start == L - 1:
                    continue
                key = (t, k, layer) if kind == "hidden" else (t, k, w.start, w.stop)
                if key not in seen:
                    seen[key] = len(work)
                    work.append((t, k, layer))
                index[t, k, layer] = seen[key]
    return torch.tensor(work, dtype=torch.long).view(-1, 3), index


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
    bar: Any = None,
) -> dict[str, torch.Tensor]:
    """The restored score of every (token, layer) cell per kind, ``{kind: [T, L]}``, batched.

    ``noise`` is the scaled noise ``[S, span, d]``; ``answer`` the token whose probability is scored;
    ``bar`` (tqdm) counts cells. With ``reuse_prefix`` (full-attention families), the cells restoring
    token t share the corrupted run of tokens ``< t`` (they are untouched by the restoration: attention
    is causal) through HF's KV cache, and run only tokens ``t..``: about half the token-forwards.
    """
    from transformers import DynamicCache

    kinds = list(kinds)
    S, T, L = noise.shape[0], len(ids), lm.n_layers
    noise = noise.to(device=lm.device, dtype=lm.dtype)
    reuse = reuse_prefix and prefix_reusable(lm)
    _, _, corrupted, kv = _baseline(lm, ids, span, noise, keep_cache=reuse)
    work, index = _unique_cells(kinds, T, L, span[0], window)
    per_chunk = max(1, (max_batch_tokens // T - 1) // S)
    values = torch.empty(len(work))
    # one chunk never mixes tokens when the prefix is reused (the cache is cut at that token)
    groups = [(work[:, 0] == t).nonzero()[:, 0] for t in range(T)] if reuse else [torch.arange(len(work))]
    for group in (g for g in groups if len(g)):
        for chunk in group.split(per_chunk):
            t, k, l = work[chunk].unbind(1)
            n, start, past = len(k), 0, None
            if reuse and int(t[0]) > 0:
                start = int(t[0])
                rows = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1, S + 1).repeat(n)]).to(
                    lm.device
                )
                past = DynamicCache(ddp_cache_data=[(a[rows, :, :start], b[rows, :, :start]) for a, b in kv])
            restores = _chunk_restores(kinds, k, t - start, l, S, window, L)
            probs = _run(lm, ids, span, noise, 1 + n * S, restores, start=start, past=past)
            values[chunk] = probs[1:, answer].view(n, S).mean(1).cpu()
            if bar is not None:
                bar.update(n)
    if bar is not None:  # the cells answered without a forward (before the subject, shared windows)
        bar.update(T * len(kinds) * L - len(work))
    grids = torch.where(index >= 0, values[index.clamp(min=0)], torch.tensor(corrupted)).transpose(0, 1)
    return {kind: grids[i].clone() for i, kind in enumerate(kinds)}
