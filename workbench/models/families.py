"""Family adapters: canonical site names → module paths, per model family.

Canonical sites mean the same thing on every family (DESIGN.md):

========================  ==================================================================
``embed``                 token embeddings (output of the embedding module)
``layers.{i}``            residual stream after block ``i``
``layers.{i}.attn``       what the attention sublayer writes into the residual stream
``layers.{i}.mlp``        what the MLP sublayer writes into the residual stream
``layers.{i}.mlp.hidden`` input of the MLP down projection (the "neurons")
``layers.{i}.attn.heads`` input of the attention output projection, ``[.., n_heads * d_head]``
                          (per-head outputs before mixing; address heads with ``heads=``)
``layers.{i}.attn.q``     queries after the q projection (and after qk-norm where the family has one),
``layers.{i}.attn.k``     keys likewise; RoPE is applied later inside attention
``final_norm``            output of the final norm
``logits``                output of the unembedding
========================  ==================================================================

On post-norm families (OLMo-2, OLMo-3) "what the sublayer writes" is the output of the
post-sublayer norm, which is what is added to the residual; on pre-norm families it is the sublayer's
own output. Patching a whole vector gives the same downstream result either way; steering and
ablation act on the actual residual contribution, which is what users mean.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from ..errors import WorkbenchError

FAMILIES: dict[str, FamilyAdapter] = {}


@dataclasses.dataclass(frozen=True)
class SiteSpec:
    """Where a canonical site lives: a module path and whether to read its output or its input."""

    site: str
    module: str
    io: str = "output"  # "output": forward hook on the module; "input": pre-hook, first positional arg


@dataclasses.dataclass(frozen=True)
class FamilyAdapter:
    """Maps the canonical sites of one model family to module paths.

    Each field is a template where ``{i}`` is the layer index; ``None`` means the family has no such
    site (e.g. OLMoE's fused experts have no single down projection).
    """

    name: str
    model_types: tuple[str, ...]
    embed: str
    layer: str
    attn: str
    mlp: str
    mlp_hidden: str | None
    attn_heads: str | None
    q: str | None
    k: str | None
    final_norm: str
    logits: str
    n_layers: Callable[[object], int] = lambda cfg: cfg.num_hidden_layers
    post_norm: bool = False

    def site_names(self, n_layers: int) -> list[str]:
        """Every canonical site this family supports on a model with ``n_layers`` blocks."""
        names = ["embed"]
        per_layer = [
            ("", self.layer),
            (".attn", self.attn),
            (".attn.heads", self.attn_heads),
            (".attn.q", self.q),
            (".attn.k", self.k),
            (".mlp", self.mlp),
            (".mlp.hidden", self.mlp_hidden),
        ]
        for i in range(n_layers):
            names += [f"layers.{i}{suffix}" for suffix, tmpl in per_layer if tmpl is not None]
        return names + ["final_norm", "logits"]

    def resolve(self, site: str, n_layers: int) -> SiteSpec:
        """Map one canonical site to a :class:`SiteSpec`; unknown sites raise a WorkbenchError."""
        fixed = {"embed": self.embed, "final_norm": self.final_norm, "logits": self.logits}
        if site in fixed:
            return SiteSpec(site, fixed[site])
        m = re.fullmatch(r"layers\.(\d+)((?:\.attn(?:\.heads|\.q|\.k)?)|(?:\.mlp(?:\.hidden)?))?", site)
        if m is None:
            raise unknown_site(site, self, n_layers)
        i = int(m.group(1))
        if i >= n_layers:
            raise WorkbenchError(
                f"site {site!r}: layer {i} out of range; this {self.name} model has layers 0..{n_layers - 1}"
            )
        table = {
            None: (self.layer, "output"),
            ".attn": (self.attn, "output"),
            ".attn.heads": (self.attn_heads, "input"),
            ".attn.q": (self.q, "output"),
            ".attn.k": (self.k, "output"),
            ".mlp": (self.mlp, "output"),
            ".mlp.hidden": (self.mlp_hidden, "input"),
        }
        tmpl, io = table[m.group(2)]
        if tmpl is None:
            raise WorkbenchError(
                f"site {site!r} does not exist on the {self.name} family; use one of "
                f"{', '.join(s for s in self.site_names(1) if s.startswith('layers.0'))} (any layer)"
            )
        return SiteSpec(site, tmpl.format(i=i), io)


def unknown_site(site: str, adapter: FamilyAdapter, n_layers: int) -> WorkbenchError:
    """The error for a site that is neither canonical nor a module path; it lists the valid sites."""
    shown = adapter.site_names(min(n_layers, 1))
    return WorkbenchError(
        f"unknown site {site!r}; valid sites are {', '.join(shown)} with layer index 0..{n_layers - 1} "
        f"(e.g. 'layers.{n_layers - 1}.mlp'), a glob such as 'layers.*.mlp', or a raw module path"
    )


def register(adapter: FamilyAdapter) -> FamilyAdapter:
    """Add an adapter to the registry under its name."""
    FAMILIES[adapter.name] = adapter
    return adapter


_DEC = "model.layers.{i}"
_LLAMA_LIKE = dict(
    embed="model.embed_tokens",
    layer=_DEC,
    attn=f"{_DEC}.self_attn",
    mlp=f"{_DEC}.mlp",
    mlp_hidden=f"{_DEC}.mlp.down_proj",
    attn_heads=f"{_DEC}.self_attn.o_proj",
    q=f"{_DEC}.self_attn.q_proj",
    k=f"{_DEC}.self_attn.k_proj",
    final_norm="model.norm",
    logits="lm_head",
)
_OLMO2_LIKE = dict(
    _LLAMA_LIKE,
    attn=f"{_DEC}.post_attention_layernorm",
    mlp=f"{_DEC}.post_feedforward_layernorm",
    q=f"{_DEC}.self_attn.q_norm",
    k=f"{_DEC}.self_attn.k_norm",
    post_norm=True,
)

register(FamilyAdapter("olmo", ("olmo",), **_LLAMA_LIKE))
register(FamilyAdapter("olmo2", ("olmo2",), **_OLMO2_LIKE))
register(FamilyAdapter("olmo3", ("olmo3",), **_OLMO2_LIKE))
# OLMoE: qk-norm over the whole projection; experts are fused, so there is no single down projection.
register(
    FamilyAdapter(
        "olmoe",
        ("olmoe",),
        **dict(_LLAMA_LIKE, mlp_hidden=None, q=f"{_DEC}.self_attn.q_norm", k=f"{_DEC}.self_attn.k_norm"),
    )
)
register(FamilyAdapter("llama-like", ("llama", "mistral", "qwen2", "gemma", "phi3"), **_LLAMA_LIKE))
# Qwen3: pre-norm like Llama, with per-head q/k norms before RoPE (so q/k read after the norm).
register(
    FamilyAdapter(
        "qwen3", ("qwen3",), **dict(_LLAMA_LIKE, q=f"{_DEC}.self_attn.q_norm", k=f"{_DEC}.self_attn.k_norm")
    )
)
register(
    FamilyAdapter(
        "gpt2",
        ("gpt2",),
        embed="transformer.wte",
        layer="transformer.h.{i}",
        attn="transformer.h.{i}.attn",
        mlp="transformer.h.{i}.mlp",
        mlp_hidden="transformer.h.{i}.mlp.c_proj",
        attn_heads="transformer.h.{i}.attn.c_proj",
        q=None,
        k=None,
        final_norm="transformer.ln_f",
        logits="lm_head",
        n_layers=lambda cfg: cfg.n_layer,
    )
)
register(
    FamilyAdapter(
        "gpt_neox",
        ("gpt_neox",),
        embed="gpt_neox.embed_in",
        layer="gpt_neox.layers.{i}",
        attn="gpt_neox.layers.{i}.attention",
        mlp="gpt_neox.layers.{i}.mlp",
        mlp_hidden="gpt_neox.layers.{i}.mlp.dense_4h_to_h",
        attn_heads="gpt_neox.layers.{i}.attention.dense",
        q=None,
        k=None,
        final_norm="gpt_neox.final_layer_norm",
        logits="lm_head",
    )
)


def adapter_for(model_type: str) -> FamilyAdapter:
    """The adapter for a HF ``config.model_type``; a family with none is a WorkbenchError."""
    for adapter in FAMILIES.values():
        if model_type in adapter.model_types:
            return adapter
    known = sorted(t for a in FAMILIES.values() for t in a.model_types)
    raise WorkbenchError(
        f"model type {model_type!r} has no family adapter; supported: {', '.join(known)} "
        f"(add a FamilyAdapter in workbench/models/families.py)"
    )
