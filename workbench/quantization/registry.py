"""The quantizer registry: every method's function, strict options dataclass and one-line doc.

Backends register themselves with :func:`register` in their own files (:mod:`.bnb`,
:mod:`.torchao_backend`, :mod:`.rtn`, :mod:`.gptq`); :func:`resolve_method` loads them on first use.
Kept apart from the package ``__init__`` so that backends never import the package that imports them.
"""

from __future__ import annotations

import dataclasses
import importlib
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
        importlib.import_module(f"{__package__}.{mod}")


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


def quant_info(lm: Any) -> QuantInfo | None:
    """The :class:`QuantInfo` of a model returned by :func:`quantize` (None for a full-precision one)."""
    return getattr(lm.model, "workbench_quant", None)
