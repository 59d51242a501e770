"""Sparse autoencoders: activation collection, four architectures, training, metrics, SAELens interop.

::

    from workbench import sae
    store = sae.collect(lm, "layers.1", source, out="acts/")          # sharded safetensors on disk
    model = sae.build(sae.SAEConfig(arch="topk", d_in=store.d, d_sae=2048, k=32))
    sae.train(model, store.batches(4096, seed=0), sae.TrainConfig(steps=2000), out="run/")
    sae.reconstruction_metrics(model, store.batches(4096, seed=1, loop=False))
    sae.splice_metrics(model, lm, "layers.1", texts)                   # CE recovered, KL, delta loss
    sae.export_saelens(model, "saelens_dir/")                          # loads in sae_lens.SAE

Architectures (registry ``ARCHITECTURES``): relu, topk, batchtopk (= mutual_choice), feature_choice.
Auxiliary losses (``AUX_LOSSES``): aux_k, aux_zipf.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import ARCHITECTURES, Codes, SAEConfig, SparseAutoencoder, build
from .dashboard import dashboard  # eager: the function shares its module's name
from .export import load
from .train import RunConfig, TrainConfig, TrainResult, train  # eager: the function shares its module's name

_LAZY = {
    "AUX_LOSSES": ".aux",
    "ActivationStore": ".activations",
    "collect": ".activations",
    "CollectConfig": ".activations",
    "iter_texts": ".activations",
    "reconstruction_metrics": ".metrics",
    "splice_metrics": ".metrics",
    "ReconstructionMetrics": ".metrics",
    "SpliceMetrics": ".metrics",
    "export_saelens": ".export",
    "load_saelens": ".export",
    "encode_prompt": ".inspect",
    "ablate_feature": ".inspect",
    "steer_feature": ".inspect",
    "PromptFeatures": ".inspect",
}

__all__ = [
    "ARCHITECTURES",
    "Codes",
    "RunConfig",
    "SAEConfig",
    "SparseAutoencoder",
    "TrainConfig",
    "TrainResult",
    "build",
    "dashboard",
    "load",
    "train",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'workbench.sae' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
