"""Which parameters train: layers (explicit, or from a causal trace) × a module filter; the rest is frozen.

Layers come from an explicit list (the seed found layers 0–5 for OLMo-1B), ``"all"``, or a
:class:`~workbench.tracing.TraceResult`: the ``top_n`` layers by MLP AIE at the last subject token, or the
peak block of width ``peak_width``. The module filter picks, inside each selected block, the MLP
(``mlp``, as the seed's ``kind='mlp'``), the attention (``attn``), the whole block (``all``), only the MLP
down projection (``mlp.down``, RMU's choice), or parameters whose full name matches a glob. With
``lora_rank`` a peft LoRA is put on exactly the selected linear modules and only its factors train.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from typing import Any

import torch

from ..errors import WorkbenchError

log = logging.getLogger(__name__)

KINDS = ("mlp", "attn", "all", "mlp.down")


@dataclasses.dataclass
class Selection:
    """The outcome of :func:`apply_selection`."""

    layers: list[int]
    names: list[str]
    """Names of the trainable parameters (relative to ``lm.model``)."""
    trainable: int
    total: int
    modules: list[str]
    """Module paths the filter picked (LoRA targets when ``lora``)."""
    peft_model: Any = None
    """The peft wrapper when LoRA is on (``merge_and_unload`` at the end)."""

    @property
    def share(self) -> float:
        """Trainable share of all parameters."""
        return self.trainable / max(self.total, 1)

    def describe(self) -> str:
        """One line: layers, count and share."""
        how = "LoRA on " if self.peft_model is not None else ""
        return (
            f"training {how}layers {self.layers}: {self.trainable:,} of {self.total:,} parameters "
            f"({100 * self.share:.2f}%)"
        )


def resolve_layers(lm: Any, cfg: Any) -> list[int]:
    """The selected layer indices of a :class:`~workbench.unlearning.config.SelectConfig`."""
    n = lm.n_layers
    if cfg.layers is None and cfg.trace is None:
        raise WorkbenchError(
            "select: give select.layers (a list or 'all') or select.trace (a trace run folder)"
        )
    if cfg.layers is not None and cfg.trace is not None:
        raise WorkbenchError("select: give either select.layers or select.trace, not both")
    if isinstance(cfg.layers, str):
        if cfg.layers != "all":
            raise WorkbenchError(f"select.layers={cfg.layers!r}: use a list of layer indices or 'all'")
        return list(range(n))
    if cfg.layers is not None:
        layers = list(cfg.layers)
    else:
        from ..tracing.result import TraceResult

        trace = TraceResult.load(cfg.trace)
        if cfg.peak_width:
            layers = list(trace.peak_block(kind="mlp", width=cfg.peak_width))
        else:
            layers = list(trace.top_layers(kind="mlp", n=cfg.top_n))
    if not layers:
        raise WorkbenchError("select.layers is empty; name at least one layer")
    bad = [i for i in layers if not 0 <= int(i) < n]
    if bad:
        raise WorkbenchError(f"select.layers {bad} out of range; this model has layers 0..{n - 1}")
    return sorted({int(i) for i in layers})


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0]


def module_paths(lm: Any, layer: int, kind: str) -> list[str]:
    """Module paths of the filter ``kind`` in block ``layer`` (glob kinds return the block)."""
    a = lm.adapter
    if kind == "mlp":
        return [_parent(a.mlp_hidden.format(i=layer)) if a.mlp_hidden else a.mlp.format(i=layer)]
    if kind == "attn":
        return [_parent(a.attn_heads.format(i=layer)) if a.attn_heads else a.attn.format(i=layer)]
    if kind == "mlp.down":
        if a.mlp_hidden is None:
            raise WorkbenchError(
                f"the {a.name} family has no single MLP down projection; use select.kind: mlp"
            )
        return [a.mlp_hidden.format(i=layer)]
    return [a.layer.format(i=layer)]


def _selected_names(lm: Any, layers: list[int], kind: str, everything: bool) -> tuple[list[str], list[str]]:
    named = dict(lm.model.named_parameters())
    if kind in KINDS:
        mods = [m for i in layers for m in module_paths(lm, i, kind)]
        names = [n for n in named if any(n.startswith(m + ".") for m in mods)]
    elif everything:  # layers: all with a glob: every parameter of the model (embeddings and head too)
        names = [n for n in named if fnmatch.fnmatchcase(n, kind)]
        mods = sorted({_parent(n) for n in names})
    else:
        blocks = [lm.adapter.layer.format(i=i) for i in layers]
        names = [
            n for n in named if fnmatch.fnmatchcase(n, kind) and any(n.startswith(b + ".") for b in blocks)
        ]
        mods = sorted({_parent(n) for n in names})
    if not names:
        raise WorkbenchError(
            f"select.kind={kind!r} matches no parameter in layers {layers}; use one of {', '.join(KINDS)} "
            f"or a glob over parameter names such as '*.mlp.down_proj.weight'"
        )
    return names, mods


def _apply_lora(lm: Any, names: list[str], cfg: Any, seed: int) -> tuple[Any, list[str]]:
    from peft import LoraConfig, get_peft_model

    targets = sorted({_parent(n) for n in names})
    linear = [t for t in targets if isinstance(lm.model.get_submodule(t), torch.nn.Linear)]
    if not linear:
        raise WorkbenchError(
            "select.lora_rank is set but no selected module is a Linear layer; widen select.kind"
        )
    torch.manual_seed(seed)
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules=linear, lora_dropout=0.0)
    peft_model = get_peft_model(lm.model, lora)
    inner = peft_model.base_model.model  # the original HF module tree, now holding the LoRA layers
    lora_names = [n for n, p in inner.named_parameters() if p.requires_grad]
    return peft_model, lora_names


def apply_selection(lm: Any, cfg: Any, *, seed: int = 0) -> Selection:
    """Freeze everything but the selection (or put LoRA on it); returns what trains."""
    layers = resolve_layers(lm, cfg)
    names, mods = _selected_names(lm, layers, cfg.kind, cfg.layers == "all")
    total = sum(p.numel() for p in lm.model.parameters())
    peft_model = None
    for p in lm.model.parameters():
        p.requires_grad_(False)
    if cfg.lora_rank:
        peft_model, names = _apply_lora(lm, names, cfg, seed)
    else:
        keep = set(names)
        for n, p in lm.model.named_parameters():
            p.requires_grad_(n in keep)
    params = dict(lm.model.named_parameters())
    trainable = sum(params[n].numel() for n in names)
    sel = Selection(layers, names, trainable, total, mods, peft_model)
    log.info(sel.describe())
    return sel


def merge_lora(lm: Any, sel: Selection) -> None:
    """Fold trained LoRA factors into the weights so that ``lm.model`` saves as a plain HF model."""
    if sel.peft_model is not None:
        lm.model = sel.peft_model.merge_and_unload()
        sel.peft_model = None
