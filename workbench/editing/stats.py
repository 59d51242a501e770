"""Second-moment statistics of the keys, C = E[k kᵀ] per layer, estimated over a text source and cached.

As ROME's ``layer_stats`` (kmeng01/rome ``rome/layer_stats.py``): every non-padding token of every sampled
text contributes its key (the input of the down projection), and C is the mean of k kᵀ (not centred).
The forward runs through the hook engine (``h.capture("layers.{i}.mlp.hidden")``), all requested layers
in one pass, accumulated in float64.

The cache (``cache_dir()/editing/stats/<key>.safetensors``) is keyed by the model's fingerprint, the layer,
the source's content identity, the sample count, the token cap and the seed. The fingerprint hashes the
weights a layer's keys depend on (embeddings and every block up to that layer, that layer's own down
projection excepted, since editing it leaves its keys alone) plus the tokenizer, so any change of those
weights, in memory or on disk, makes a new entry. Hashes of unchanged tensors are remembered through
torch's in-place version counter, so re-checking a model costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..io import cache_dir, load_tensors, save_tensors
from .keys import pad, pad_id
from .sources import read_texts, resolve_source, sample_texts, source_id
from .weights import down_proj

log = logging.getLogger(__name__)
FORMAT = "workbench.edit-stats/1"
_TENSOR_HASH: dict[int, tuple[Any, tuple, str]] = {}


def tensor_hash(t: torch.Tensor) -> str:
    """sha256 of a tensor's bytes, remembered until the tensor changes (version counter) or dies."""
    state = (t.data_ptr(), t._version, tuple(t.shape), str(t.dtype))
    hit = _TENSOR_HASH.get(id(t))
    if hit is not None and hit[0]() is t and hit[1] == state:
        return hit[2]
    data = t.detach().contiguous().cpu()
    if data.dtype == torch.bfloat16:
        data = data.view(torch.int16)
    digest = hashlib.sha256(data.numpy().tobytes()).hexdigest()
    _TENSOR_HASH[id(t)] = (weakref.ref(t), state, digest)
    return digest


def tokenizer_id(tok: Any) -> str:
    """The tokenizer's model (vocabulary, merges, normalizer...) without its call-time padding/truncation."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return repr(sorted(tok.get_vocab().items()))
    spec = json.loads(backend.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return json.dumps(spec, sort_keys=True)


def fingerprint(lm: Any, layer: int) -> str:
    """Hash of everything ``layer``'s keys depend on: tokenizer, embeddings, blocks ``<= layer`` (less its
    down projection)."""
    later = tuple(lm.adapter.layer.format(i=j) + "." for j in range(layer + 1, lm.n_layers))
    own = down_proj(lm, layer).module + "."
    h = hashlib.sha256(str(lm.family).encode())
    h.update(tokenizer_id(lm.tokenizer).encode())
    for name, p in lm.model.named_parameters():
        if name.startswith(later) or name.startswith(own):
            continue
        h.update(name.encode())
        h.update(tensor_hash(p).encode())
    return h.hexdigest()[:20]


def stats_path(lm: Any, layer: int, source: Path, n: int, max_tokens: int, seed: int) -> Path:
    """Cache file of one layer's statistics."""
    key = {
        "format": FORMAT,
        "model": fingerprint(lm, layer),
        "layer": layer,
        "site": f"layers.{layer}.mlp.hidden",
        "source": source_id(source),
        "n": n,
        "max_tokens": max_tokens,
        "seed": seed,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / "editing" / "stats" / f"L{layer}-{digest}.safetensors"


@torch.no_grad()
def _accumulate(lm: Any, texts: list[str], layers: Sequence[int], max_tokens: int, progress: bool) -> dict:
    tok = lm.tokenizer
    encoded = [list(tok(t, truncation=True, max_length=max_tokens)["input_ids"])[:max_tokens] for t in texts]
    encoded = [e for e in encoded if e]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    budget = 4096  # tokens per forward
    sums: dict[int, torch.Tensor] = {}
    count = 0
    sites = {layer: f"layers.{layer}.mlp.hidden" for layer in layers}
    was_training = lm.model.training
    lm.model.eval()
    bar = tqdm(total=len(encoded), desc="key statistics", disable=not progress, leave=False)
    try:
        start = 0
        while start < len(order):
            n = max(1, budget // len(encoded[order[start]]))
            chunk = [encoded[i] for i in order[start : start + n]]
            batch = pad(chunk, pad_id(tok), lm.device)
            mask = batch["attention_mask"].bool()
            with lm.hooks() as h:
                caps = {layer: h.capture(site) for layer, site in sites.items()}
                lm.model(**batch)
            for layer, cap in caps.items():
                k = cap.value[mask].double()
                sums[layer] = sums.get(layer, 0) + (k.T @ k).cpu()
            count += int(mask.sum())
            start += n
            bar.update(len(chunk))
    finally:
        bar.close()
        lm.model.train(was_training)
    return {layer: s / max(count, 1) for layer, s in sums.items()} | {"count": count}


def second_moments(
    lm: Any,
    layers: Sequence[int],
    source: Any = None,
    *,
    n_samples: int = 2000,
    max_tokens: int = 256,
    seed: int = 0,
    progress: bool = True,
    use_cache: bool = True,
) -> dict[int, torch.Tensor]:
    """``{layer: C}`` with C = E[k kᵀ] (float64, ``[d_in, d_in]``), from the cache or computed and cached.

    ``source``: a text source (see :mod:`workbench.editing.sources`); None uses the model folder's corpus.
    """
    path = resolve_source(source, lm)
    out: dict[int, torch.Tensor] = {}
    todo = []
    files = {}
    for layer in sorted(set(int(i) for i in layers)):
        files[layer] = stats_path(lm, layer, path, n_samples, max_tokens, seed)
        if use_cache and files[layer].is_file():
            out[layer] = load_tensors(files[layer])["mom2"]
            log.info("key statistics of layer %d from %s", layer, files[layer])
        else:
            todo.append(layer)
    if todo:
        texts = sample_texts(read_texts(path), n_samples, seed)
        got = _accumulate(lm, texts, todo, max_tokens, progress)
        meta = {"format": FORMAT, "source": str(path), "texts": str(len(texts)), "tokens": str(got["count"])}
        for layer in todo:
            out[layer] = got[layer]
            if use_cache:
                save_tensors(files[layer], {"mom2": got[layer]}, metadata={**meta, "layer": str(layer)})
    return out
