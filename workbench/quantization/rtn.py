"""``rtn``: native round-to-nearest weight quantization (fake-quantized, any backend runs it).

Every quantizable Linear's weight is replaced by its quantize→dequantize image on an integer grid of
2..8 bits (symmetric or asymmetric, per output channel or per group of input columns), or on the NF4
absmax grid (``grid="nf4"``, 4 bits, blockwise like bitsandbytes). The model keeps float weights; the
reported ``packed_bytes`` is what the bit-packed codes plus fp16 scales would take.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any

import torch

from ..errors import WorkbenchError
from ._common import (
    DEFAULT_SKIP,
    any_linear_to_quantize,
    packed_linear_bytes,
    param_bytes,
    quantizable_linears,
)
from .grid import IntGrid, fake_quant_int, fake_quant_nf4
from .registry import QuantInfo, register

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RTNOptions:
    """Options of ``rtn``."""

    bits: int = 4
    """Bit width, 2..8 (4 for ``grid="nf4"``)."""
    group_size: int | None = 128
    """Input columns per scale; None (or -1) for one scale per output channel."""
    sym: bool = True
    """Symmetric grid (zero point 0) or asymmetric (min/max with an integer zero point)."""
    grid: str = "int"
    """``int`` (uniform) or ``nf4`` (NormalFloat4 absmax blocks of ``group_size``, default 64)."""
    skip: tuple[str, ...] = DEFAULT_SKIP
    """Linear modules (names or globs) kept in full precision."""

    def __post_init__(self) -> None:
        if self.grid not in ("int", "nf4"):
            raise WorkbenchError(f"unknown rtn grid {self.grid!r}; use 'int' or 'nf4'")
        if self.grid == "nf4" and int(self.bits) != 4:
            raise WorkbenchError(f"the nf4 grid is 4-bit; got bits={self.bits}")
        IntGrid(int(self.bits), self.sym)
        if self.group_size is not None and self.group_size < 0:
            self.group_size = None
        self.skip = tuple(self.skip)


def fake_quantize_weight(w: torch.Tensor, opts: RTNOptions, name: str = "weight") -> torch.Tensor:
    """The round-to-nearest image of one [out, in] weight under ``opts`` (float32)."""
    if opts.grid == "nf4":
        return fake_quant_nf4(w, opts.group_size or 64)
    return fake_quant_int(w, IntGrid(int(opts.bits), opts.sym), opts.group_size, name)


def packed_size(
    model: torch.nn.Module,
    quantized: dict[str, torch.nn.Linear],
    bits: int,
    group_size: int | None,
    sym: bool,
) -> int:
    """Bytes of ``model`` with the ``quantized`` Linears' weights bit-packed (everything else as stored)."""
    total = param_bytes(model)
    for mod in quantized.values():
        out_f, in_f = mod.weight.shape
        total -= mod.weight.numel() * mod.weight.element_size()
        total += packed_linear_bytes(out_f, in_f, bits, group_size, sym)
    return total


def replace_weights(model: torch.nn.Module, new: dict[str, torch.Tensor]) -> None:
    """Write fake-quantized weights back into ``model`` in its own dtype."""
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, w in new.items():
            mods[name].weight.copy_(w.to(mods[name].weight.dtype))


def make_info(
    method: str,
    opts: Any,
    fp_model: torch.nn.Module,
    model: torch.nn.Module,
    linears: dict[str, torch.nn.Linear],
) -> QuantInfo:
    """The :class:`QuantInfo` of a fake-quantized model."""
    group = opts.group_size if opts.grid != "nf4" else (opts.group_size or 64)
    return QuantInfo(
        method=method,
        options=dataclasses.asdict(opts),
        fp_bytes=param_bytes(fp_model),
        stored_bytes=param_bytes(model),
        packed_bytes=packed_size(model, linears, int(opts.bits), group, opts.sym or opts.grid == "nf4"),
        quantized_layers=list(linears),
    )


@register("rtn", RTNOptions)
def rtn(lm: Any, opts: RTNOptions) -> tuple[torch.nn.Module, QuantInfo]:
    """Round-to-nearest fake quantization of every Linear (2..8 bits, per channel or group, or NF4)."""
    model = copy.deepcopy(lm.model)
    linears = quantizable_linears(model, opts.skip)
    any_linear_to_quantize(linears, "rtn")
    new = {name: fake_quantize_weight(mod.weight.detach(), opts, name) for name, mod in linears.items()}
    replace_weights(model, new)
    log.info("rtn: %d Linear layers at %d bits (%s)", len(linears), opts.bits, opts.grid)
    return model, make_info("rtn", opts, lm.model, model, linears)
