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

import dataclasses
import importlib
import os
import re
from collections.abc import Callable
from typing import Any

from ..errors import WorkbenchError

_BACKENDS = ("bnb", "torchao_backend", "rtn", "gptq")


@dataclasses.dataclass
class QuantInfo:
    """What a quantizer did: method, resolved options, and sizes in bytes.

    ``fp_bytes``: parameters before; ``stored_bytes``: parameters as held in memory after (fake-quantized
    methods keep floats); ``packed_bytes``: the size with quantized weights bit-packed plus their scales
    and zero points (what a real low-bit kernel would store).
    """

    method: str
    options: dict[str, Any]
    fp_bytes: int
    stored_bytes: int
    packed_bytes: int
    quantized_layers: list[str]


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered quantizer: ``fn(lm, opts) -> (model, QuantInfo)`` with a strict options dataclass."""

    name: str
    fn: Callable
    options: type
    doc: str


METHODS: dict[str, Method] = {}


def register(name: str, options: type) -> Callable:
    """Decorator: add ``fn(lm, opts)`` to :data:`METHODS` under ``name`` with its options dataclass."""

    def deco(fn: Callable) -> Callable:
        METHODS[name] = Method(name, fn, options, (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def _load_backends() -> None:
    for mod in _BACKENDS:
        importlib.import_module(f"{__name__}.{mod}")


def method_names() -> list[str]:
    """Every registered method name (the NAME-BITS shorthand also works for ``rtn`` and ``gptq``)."""
    _load_backends()
    return sorted(METHODS)


def resolve_method(method: str, options: dict[str, Any]) -> tuple[Method, Any]:
    """Look up ``method`` (``rtn-4`` → ``rtn`` with ``bits=4``) and build its strict options."""
    _load_backends()
    options = dict(options)
    m = re.fullmatch(r"(rtn|gptq)-(\d+)", method)
    if m:
        method = m.group(1)
        if "bits" in options and int(options["bits"]) != int(m.group(2)):
            raise WorkbenchError(
                f"method {method}-{m.group(2)} conflicts with bits={options['bits']}; give one"
            )
        options["bits"] = int(m.group(2))
    if method not in METHODS:
        raise WorkbenchError(
            f"unknown quantization method {method!r}; use one of {', '.join(sorted(METHODS))} (or rtn-N / gptq-N)"
        )
    entry = METHODS[method]
    fields = {f.name for f in dataclasses.fields(entry.options)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise WorkbenchError(
            f"method {method!r} has no option {', '.join(unknown)}; its options are {', '.join(sorted(fields))}"
        )
    return entry, entry.options(**options)


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


def quant_info(lm: Any) -> QuantInfo | None:
    """The :class:`QuantInfo` of a model returned by :func:`quantize` (None for a full-precision one)."""
    return getattr(lm.model, "workbench_quant", None)


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
