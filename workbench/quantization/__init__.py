"""Quantization: one entry point, one file per backend, one registry.

::

    import workbench as wb
    q = wb.quantize(lm, "bnb-nf4")                 # bitsandbytes NF4 through BitsAndBytesConfig
    q = wb.quantize(lm, "gptq", bits=4, group_size=64, calib=organism_path)
    q = wb.quantize(lm, "rtn-4")                    # NAME-BITS shorthand for the native methods
    wb.quantization.quant_info(q)                   # QuantInfo: method, options, sizes

Methods (see :data:`METHODS`): ``bnb-nf4``, ``bnb-fp4``, ``bnb-int8`` (bitsandbytes, :mod:`.bnb`),
``torchao-int8wo``, ``torchao-int8da``, ``torchao-int4wo`` (:mod:`.torchao_backend`), and the native
``rtn`` / ``gptq`` (:mod:`.rtn`, :mod:`.gptq`) that return fake-quantized float weights, so that any
backend runs them, and report the packed size. The result is a :class:`~workbench.models.LoadedModel`
with the same tokenizer and family adapter; the input model is never modified.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import WorkbenchError
from .registry import METHODS, Method, QuantInfo, method_names, quant_info, register, resolve_method


def quantize(lm: Any, method: str, **options: Any) -> Any:
    """Quantize ``lm`` (a LoadedModel, or a model folder) with ``method``; returns a new LoadedModel.

    The input model is left untouched. Options depend on the method (``bits``, ``group_size``, ``sym``,
    ``calib``, ``double_quant``, ``compute_dtype``...; unknown ones are errors). The result's
    :class:`QuantInfo` is available as :func:`quant_info`.
    """
    from ..models import LoadedModel, load, wrap

    entry, opts = resolve_method(method, options)
    if isinstance(lm, (str, os.PathLike)):
        if entry.name.startswith("bnb-"):
            from .bnb import load_quantized

            return _finish(*load_quantized(str(lm), entry.name, opts))
        lm = load(str(lm))
    if not isinstance(lm, LoadedModel):
        raise WorkbenchError(f"quantize needs a LoadedModel or a model folder, got {type(lm).__name__}")
    model, info = entry.fn(lm, opts)
    if isinstance(model, LoadedModel):
        return _finish(model, info)
    return _finish(wrap(model, lm.tokenizer, spec=lm.spec), info)


def _finish(qlm: Any, info: QuantInfo) -> Any:
    qlm.model.eval()
    qlm.model.workbench_quant = info
    return qlm


__all__ = [
    "METHODS",
    "Method",
    "QuantInfo",
    "method_names",
    "quant_info",
    "quantize",
    "register",
    "resolve_method",
]
