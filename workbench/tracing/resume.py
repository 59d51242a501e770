"""Running a model's forward from decoder block l instead of the embeddings (layer skipping for tracing).

A causal-trace cell leaves every block below its first restored one untouched: their states are those
of the fact's corrupted run, the same for every cell. So a cell's forward can start at that block from
the corrupted run's input of it, cached once per fact (the baseline forward), instead of at the
embeddings. An attn cell starts at its window's first block. A hidden cell of layer l starts at block
l+1: block l computes the corrupted states, then its output at the token is replaced by the clean one,
which is the same as restoring block l+1's input there. An mlp cell whose window starts at block a
starts at block a+1 too: block a's output is its mid-block residual plus its mlp output, so restoring
the mlp output at the token adds (clean - corrupted mlp output) to block a+1's input there
(:func:`workbench.tracing.restore._chunk_restores` builds those writes).

:func:`run_from` does that with the model's own modules: the decoder blocks, the rotary table, the causal
mask (``transformers.masking_utils.create_causal_mask``, as the model's forward builds it) and HF's
``DynamicCache`` for the tokens before the restored one (prefix reuse). Rows may start at different
blocks: sorted by their first block, the rows running at block l are a prefix of the batch, and rows
that start at l join it there. The blocks and sublayers are called as modules, so the hook engine's
restorations fire as in a full forward. The last block runs twice: first only as far as the keys and
values of the positions before the last (the cache stops the forward once they are stored), then in full
at the last position, the only output the score reads.

Supported where the model's forward is "embed, blocks, final norm, unembed" with full causal attention
(the families of :data:`RESUME_FAMILIES` without a sliding window, with sdpa or eager attention); on
anything else :func:`resumer` returns None and tracing runs full forwards.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from typing import Any

import torch

# families whose HF forward is embed -> blocks -> final norm -> unembed, with full causal attention
RESUME_FAMILIES = ("olmo", "olmo2", "olmoe", "llama-like", "gpt2", "gpt_neox")


@dataclasses.dataclass
class Resumer:
    """The modules needed to run a model from block l: blocks, rotary table, final norm and unembedding."""

    lm: Any
    blocks: Sequence[torch.nn.Module]
    rotary: torch.nn.Module | None
    norm: torch.nn.Module
    head: torch.nn.Module
    cache_kw: str  # the block's KV-cache argument: cache, past_key_values or layer_past

    def block_input_site(self, layer: int) -> str:
        """The hook site holding the input of block ``layer`` (``input:<module path>``)."""
        return "input:" + self.lm.adapter.layer.format(i=layer)


def resumer(lm: Any) -> Resumer | None:
    """A :class:`Resumer` for ``lm``, or None where starting at block l is not supported (fall back)."""
    cfg = lm.model.config
    if lm.family not in RESUME_FAMILIES or getattr(cfg, "sliding_window", None) is not None:
        return None
    if getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager"):
        return None
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or ()):
        return None
    adapter, get = lm.adapter, lm.model.get_submodule
    blocks = [get(adapter.layer.format(i=i)) for i in range(lm.n_layers)]
    base = get(adapter.layer.rsplit(".", 2)[0])  # "model.layers.{i}" -> "model"
    params = inspect.signature(blocks[0].forward).parameters
    cache_kw = next((k for k in ("layer_past", "cache", "past_key_values") if k in params), None)
    if cache_kw is None:
        return None
    return Resumer(
        lm=lm,
        blocks=blocks,
        rotary=getattr(base, "rotary_emb", None),
        norm=get(adapter.final_norm),
        head=get(adapter.logits),
        cache_kw=cache_kw,
    )


def _mask(r: Resumer, like: torch.Tensor, cache: Any, positions: torch.Tensor) -> Any:
    """The causal mask the model's forward would build for these queries (batch 1, broadcast)."""
    from transformers.masking_utils import create_causal_mask

    kw = {"cache": cache} if "cache" in inspect.signature(create_causal_mask).parameters else {}
    if not kw:
        kw["past_key_values"] = cache
    return create_causal_mask(
        config=r.lm.model.config, inputs_embeds=like, attention_mask=None, position_ids=positions, **kw
    )


class _KeysDone(Exception):
    """Raised by :class:`_Cache` once the last block has stored its keys and values."""


@functools.cache
def _cache_class() -> type:
    from transformers import DynamicCache

    class _Cache(DynamicCache):
        """A DynamicCache that stops the forward right after block ``stop``'s keys and values are stored."""

        stop: int | None = None

        def update(
            self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any
        ) -> Any:
            out = super().update(key_states, value_states, layer_idx, *args, **kwargs)
            if layer_idx == self.stop:
                raise _KeysDone
            return out

    return _Cache


def _split(r: Resumer, writes: dict[str, tuple], last_pos: int) -> tuple[dict, dict]:
    """Writes ``site -> (rows, positions, *values)`` for blocks ``..L-2`` (and the last block's keys),
    and the last block's at ``last_pos``.

    The last block runs twice: keys/values of the earlier positions, then the full block at the last
    position only (index 0 there), so its writes are split by position.
    """
    L = len(r.blocks)
    last_sites = {f"layers.{L - 1}", f"layers.{L - 1}.mlp", f"layers.{L - 1}.attn", r.block_input_site(L - 1)}
    body, tail = {}, {}
    for site, (rows, pos, *values) in writes.items():
        if site not in last_sites:
            body[site] = (rows, pos, *values)
            continue
        early, at_last = pos < last_pos, pos == last_pos
        if bool(early.any()):
            body[site] = (rows[early], pos[early], *(v[early.to(v.device)] for v in values))
        if bool(at_last.any()):
            last = (v[at_last.to(v.device)] for v in values)
            tail[site] = (rows[at_last], torch.zeros_like(pos[at_last]), *last)
    return body, tail


def _write(hk: Any, patches: dict[str, tuple], adds: dict[str, tuple]) -> None:
    """Register restorations from row 0 (``patches``) and additions of given values (``adds``)."""
    for site, (rows, pos) in patches.items():
        hk.patch(site, source_row=0, cells=(rows, pos))
    for site, (rows, pos, values) in adds.items():
        hk.add(site, values, cells=(rows, pos))


def run_from(
    r: Resumer,
    states: Sequence[torch.Tensor],
    src: torch.Tensor,
    first: torch.Tensor,
    restores: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    start: int = 0,
    kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    adds: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
) -> torch.Tensor:
    """Last-position logits of rows that each start at their own block, from cached block inputs.

    ``states[l]`` is the input of block l of a cached run (``[R, T, d]``); row i of the batch is cached
    row ``src[i]`` and starts at block ``first[i]`` (non-decreasing). With ``kv`` (per block, keys and
    values ``[R, heads, T, d_head]`` of the cached run) only tokens ``start..`` run and attend to the
    cached keys of tokens ``< start``. ``restores`` maps sites to paired ``(rows, positions)`` patched
    from row 0 (positions count from ``start``); ``adds`` maps sites to ``(rows, positions, values)``
    added there. The last block computes only what the last position's output reads: the keys and
    values of the other positions, then the full block at the last one.
    """
    L, T, lm = len(r.blocks), states[0].shape[1], r.lm
    counts = torch.searchsorted(first.cpu(), torch.arange(L), right=True).tolist()  # rows running at l
    lo, src = int(first[0]), src.to(states[0].device)
    if start > 0 and kv is None:
        raise ValueError("start > 0 needs the cached keys and values of the tokens before it")
    rows = [src[: max(counts[layer], 1)] for layer in range(L)]  # blocks below `lo` keep one row
    cache, kw = _block_kwargs(r, states[lo][:1, start:], start, kv, rows)
    body, tail = _split(r, restores, T - 1 - start)
    body_adds, tail_adds = _split(r, adds or {}, T - 1 - start)
    h, done = None, 0
    with lm.hooks() as hk, torch.no_grad():
        _write(hk, body, body_adds)
        for layer in range(lo, L):
            if counts[layer] > done:
                new = states[layer][src[done : counts[layer]], start:]
                h = new if h is None else torch.cat([h, new])
                done = counts[layer]
            if layer < L - 1:
                out = r.blocks[layer](h, **kw)
                h = out[0] if isinstance(out, tuple) else out
            elif h.shape[1] > 1:  # the last block: keys and values of the earlier positions only
                cache.stop = layer
                try:
                    r.blocks[layer](h[:, :-1], **_head_of(kw, -1))
                except _KeysDone:
                    pass
                cache.stop = None
    with lm.hooks() as hk, torch.no_grad():
        _write(hk, tail, tail_adds)
        out = r.blocks[L - 1](h[:, -1:], **_last_of(kw))
        h = out[0] if isinstance(out, tuple) else out
        return r.head(r.norm(h))[:, -1]


def _block_kwargs(r: Resumer, like: torch.Tensor, start: int, kv: Any, rows: list) -> tuple[Any, dict]:
    """The cache (keys/values of tokens ``< start`` for the given rows of each block) and the block
    arguments (mask, positions, rotary table) for queries at tokens ``start..``."""
    data = [(k[i, :, :start], v[i, :, :start]) for i, (k, v) in zip(rows, kv)] if start > 0 else None
    cache = _cache_class()(ddp_cache_data=data)
    positions = torch.arange(start, start + like.shape[1], device=like.device)[None]
    kw: dict[str, Any] = {"attention_mask": _mask(r, like, cache, positions), "position_ids": positions}
    if r.rotary is not None:
        kw["position_embeddings"] = r.rotary(like, positions)
    kw[r.cache_kw], kw["use_cache"] = cache, True
    return cache, kw


def _head_of(kw: dict[str, Any], stop: int) -> dict[str, Any]:
    """The block arguments for the queries ``[:stop]`` (mask, positions and rotary table cut)."""
    out = dict(kw)
    mask = kw["attention_mask"]
    if isinstance(mask, torch.Tensor):
        out["attention_mask"] = mask[..., :stop, :stop]
    out["position_ids"] = kw["position_ids"][:, :stop]
    if "position_embeddings" in kw:
        out["position_embeddings"] = tuple(x[:, :stop] for x in kw["position_embeddings"])
    return out


def _last_of(kw: dict[str, Any]) -> dict[str, Any]:
    """The block arguments for the last query alone: it sees every key, so no mask is needed."""
    out = dict(kw)
    out["attention_mask"] = None
    out["position_ids"] = kw["position_ids"][:, -1:]
    if "position_embeddings" in kw:
        out["position_embeddings"] = tuple(x[:, -1:] for x in kw["position_embeddings"])
    return out
