"""TransformerLens on the model the workbench loaded: a ``TransformerBridge`` over the same weights.

:func:`to_transformer_lens` (also ``lm.to_transformer_lens()``) boots TransformerLens's
``TransformerBridge`` (TransformerLens >= 3) around a *structural* copy of the Hugging Face model whose
parameters and buffers are the very tensors of ``lm.model``: nothing is copied, an in-place edit of the
workbench model (ROME, unlearning) is what the bridge sees, and the workbench model keeps its module
tree (the bridge wraps modules in place, which would rename every parameter of the model it is given).
:data:`TL_HOOKS` maps the canonical sites to TransformerLens hook names; the SAELens export uses it.
"""

from __future__ import annotations

import copy
import re
import warnings
from typing import Any

from ..errors import WorkbenchError

TL_HOOKS: dict[str, str] = {
    "embed": "hook_embed",
    "layers.{i}": "blocks.{i}.hook_resid_post",
    "layers.{i}.attn": "blocks.{i}.hook_attn_out",
    "layers.{i}.mlp": "blocks.{i}.hook_mlp_out",
    "layers.{i}.mlp.hidden": "blocks.{i}.mlp.hook_post",
    "layers.{i}.attn.heads": "blocks.{i}.attn.hook_z",
    "final_norm": "ln_final.hook_normalized",
}
"""Canonical site -> TransformerLens hook name (``{i}`` is the layer). ``attn.heads`` is per head there
(``[batch, pos, head, d_head]``) and flat here (``[batch, pos, heads * d_head]``)."""


def tl_hook_name(site: str) -> str:
    """The TransformerLens hook name of a canonical site (a WorkbenchError lists the mapped ones)."""
    for pattern, hook in TL_HOOKS.items():
        m = re.fullmatch(pattern.replace(".", r"\.").replace("{i}", r"(\d+)"), site)
        if m:
            return hook.replace("{i}", m.group(1)) if m.groups() else hook
    raise WorkbenchError(
        f"site {site!r} has no TransformerLens hook; mapped sites: {', '.join(TL_HOOKS)} ({{i}} a layer)"
    )


def _shared_copy(model: Any) -> Any:
    """A new module tree over the same parameter and buffer tensors (no tensor is copied)."""
    memo: dict[int, Any] = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    return copy.deepcopy(model, memo)


def to_transformer_lens(lm: Any, *, compatibility: bool = True) -> Any:
    """A ``transformer_lens.model_bridge.TransformerBridge`` over ``lm``'s weights (shared, not copied).

    ``compatibility`` turns on TransformerLens's compatibility mode without weight processing (no layer
    norm folding, which would change the shared weights), so ``hook_z``, ``hook_resid_*`` and the
    ``HookedTransformer``-style names exist and the logits equal the workbench model's.
    """
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise WorkbenchError("transformer-lens >= 3 is not installed; pip install transformer-lens") from e
    spec = str(getattr(lm, "spec", "") or "")
    name = spec if spec and spec != "<memory>" else getattr(lm.model.config, "_name_or_path", "") or "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            bridge = TransformerBridge.boot_transformers(
                name,
                hf_model=_shared_copy(lm.model),
                tokenizer=lm.tokenizer,
                device=str(lm.device),
                dtype=lm.dtype,
            )
        except (ValueError, KeyError, NotImplementedError) as e:
            raise WorkbenchError(
                f"TransformerLens cannot bridge this {lm.family} model ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); check transformer_lens's supported architectures"
            ) from None
        if compatibility:
            bridge.enable_compatibility_mode(no_processing=True)
    return bridge
