"""torchao: ``torchao-int8wo`` (int8 weight-only), ``torchao-int8da`` (int8 dynamic activation + int8
weight) and ``torchao-int4wo`` (int4 weight-only per group, ``IntxWeightOnlyConfig``).

torchao swaps each Linear's weight for a quantized tensor subclass in place (``quantize_``), so the
modules, their names and the hook sites stay as they were. The output embedding stays in full precision.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any

import torch

from ._common import (
    DEFAULT_SKIP,
    any_linear_to_quantize,
    check_divisible,
    packed_linear_bytes,
    param_bytes,
    quantizable_linears,
    tensor_bytes,
)
from .registry import QuantInfo, register

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Int8Options:
    """Options of ``torchao-int8wo`` and ``torchao-int8da``."""

    skip: tuple[str, ...] = DEFAULT_SKIP
    """Linear modules (names or globs) kept in full precision."""

    def __post_init__(self) -> None:
        self.skip = tuple(self.skip)


@dataclasses.dataclass
class Int4Options:
    """Options of ``torchao-int4wo``."""

    group_size: int = 32
    """Input columns per scale (must divide every quantized Linear's in_features)."""
    sym: bool = False
    """Symmetric grid; torchao's default for int4 weight-only is asymmetric."""
    skip: tuple[str, ...] = DEFAULT_SKIP
    """Linear modules (names or globs) kept in full precision."""

    def __post_init__(self) -> None:
        self.skip = tuple(self.skip)


def _apply(lm: Any, config: Any, skip: tuple[str, ...], method: str) -> tuple[torch.nn.Module, dict]:
    from torchao.quantization import quantize_

    model = copy.deepcopy(lm.model)
    linears = quantizable_linears(model, skip)
    any_linear_to_quantize(linears, method)
    chosen = set(linears)
    quantize_(model, config, filter_fn=lambda mod, fqn: fqn in chosen)
    log.info("%s: %d Linear layers", method, len(linears))
    return model, linears


def _info(
    method: str,
    opts: Any,
    lm: Any,
    model: torch.nn.Module,
    linears: dict,
    bits: int,
    group_size: int | None,
    sym: bool,
) -> QuantInfo:
    packed = param_bytes(model)
    for mod in linears.values():
        out_f, in_f = mod.weight.shape
        packed += packed_linear_bytes(out_f, in_f, bits, group_size, sym) - tensor_bytes(mod.weight)
    return QuantInfo(
        method=method,
        options=dataclasses.asdict(opts),
        fp_bytes=param_bytes(lm.model),
        stored_bytes=param_bytes(model),
        packed_bytes=packed,
        quantized_layers=list(linears),
    )


@register("torchao-int8wo", Int8Options)
def int8_weight_only(lm: Any, opts: Int8Options) -> tuple[torch.nn.Module, QuantInfo]:
    """torchao int8 weight-only (per output channel, symmetric)."""
    from torchao.quantization import Int8WeightOnlyConfig

    model, linears = _apply(lm, Int8WeightOnlyConfig(), opts.skip, "torchao-int8wo")
    return model, _info("torchao-int8wo", opts, lm, model, linears, 8, None, True)


@register("torchao-int8da", Int8Options)
def int8_dynamic_activation(lm: Any, opts: Int8Options) -> tuple[torch.nn.Module, QuantInfo]:
    """torchao int8 dynamic per-token activation quantization with int8 per-channel weights."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    model, linears = _apply(lm, Int8DynamicActivationInt8WeightConfig(), opts.skip, "torchao-int8da")
    return model, _info("torchao-int8da", opts, lm, model, linears, 8, None, True)


@register("torchao-int4wo", Int4Options)
def int4_weight_only(lm: Any, opts: Int4Options) -> tuple[torch.nn.Module, QuantInfo]:
    """torchao int4 weight-only per group (``IntxWeightOnlyConfig``)."""
    from torchao.quantization import IntxWeightOnlyConfig, MappingType
    from torchao.quantization.granularity import PerGroup

    check_divisible(
        quantizable_linears(lm.model, opts.skip),
        "in_features",
        opts.group_size,
        f"torchao-int4wo with group_size={opts.group_size}",
        "pick a group_size that divides it",
    )
    mapping = MappingType.SYMMETRIC if opts.sym else MappingType.ASYMMETRIC
    config = IntxWeightOnlyConfig(
        weight_dtype=torch.int4, granularity=PerGroup(opts.group_size), mapping_type=mapping
    )
    model, linears = _apply(lm, config, opts.skip, "torchao-int4wo")
    return model, _info("torchao-int4wo", opts, lm, model, linears, 4, opts.group_size, opts.sym)
