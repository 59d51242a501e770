"""workbench — mechanistic interpretability and model editing for OLMo-class language models.

The public API, imported lazily so that ``import workbench`` (and ``workbench --help``) stays fast::

    import workbench as wb
    lm = wb.load("allenai/OLMo-2-0425-1B")          # or a local folder, or wb.organism.build().path
    with lm.hooks() as h:                           # capture / patch / add / ablate at named sites
        cap = h.capture("layers.3.mlp")
        lm.model(**lm.tokenize("The Eiffel Tower is in"))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute" (or "module" for a subpackage)
_LAZY = {
    "WorkbenchError": "workbench.errors:WorkbenchError",
    "load": "workbench.models:load",
    "wrap": "workbench.models:wrap",
    "LoadedModel": "workbench.models:LoadedModel",
    "tiny_model": "workbench.models.tiny:tiny_model",
    "Hooks": "workbench.hooks:Hooks",
    "run_with_cache": "workbench.hooks:run_with_cache",
    "organism": "workbench.organism",
    "causal_trace": "workbench.tracing:causal_trace",
    "patch": "workbench.tracing:patch",
    "attribution_patch": "workbench.tracing:attribution_patch",
    "TraceResult": "workbench.tracing:TraceResult",
    "evaluate": "workbench.evaluation:evaluate",
    "unlearn": "workbench.unlearning:unlearn",
    "quantize": "workbench.quantization:quantize",
    "edit": "workbench.editing:edit",
    "editing": "workbench.editing",
    "sae": "workbench.sae",
    "losses": "workbench.losses",
    "data": "workbench.data",
    "config": "workbench.config",
    "tracing": "workbench.tracing",
    "evaluation": "workbench.evaluation",
    "unlearning": "workbench.unlearning",
    "quantization": "workbench.quantization",
    "run_pipeline": "workbench.pipeline:run_pipeline",
    "pipeline": "workbench.pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
