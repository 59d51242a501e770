"""Helpers shared by the quantization backends: which Linears to quantize, sizes, dequantized weights."""

from __future__ import annotations

import fnmatch
import math
import re
from typing import Any

import torch

from ..errors import WorkbenchError

DEFAULT_SKIP = ("lm_head", "embed_out")  # the output embedding stays in full precision (as transformers does)


def quantizable_linears(
    model: torch.nn.Module, skip: tuple[str, ...] = DEFAULT_SKIP
) -> dict[str, torch.nn.Linear]:
    """Every ``nn.Linear`` of ``model`` (bitsandbytes / torchao subclasses included) not matched by ``skip``.

    ``skip`` holds module names or globs; a name matches when it equals a pattern or ends with ``.pattern``.
    """
    out = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        if any(fnmatch.fnmatchcase(name, p) or name.endswith("." + p) for p in skip):
            continue
        out[name] = mod
    return out


def block_of(name: str) -> str:
    """The transformer block a module belongs to: the path up to its first numeric segment (or itself)."""
    m = re.match(r"^(.*?\.\d+)(\.|$)", name)
    return m.group(1) if m else name


def param_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the parameters and buffers of ``model`` as stored (quantized storage counted as is)."""
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        total += tensor_bytes(t)
    return total


def tensor_bytes(t: torch.Tensor) -> int:
    inner = getattr(t, "__tensor_flatten__", None)
    if inner is not None and type(t) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    total = t.numel() * t.element_size()
    state = getattr(t, "quant_state", None)  # bitsandbytes 4-bit: absmax (+ nested stats)
    if state is not None:
        total += state.absmax.numel() * state.absmax.element_size()
        if getattr(state, "state2", None) is not None:
            total += state.state2.absmax.numel() * state.state2.absmax.element_size() + 256 * 4
    scb = getattr(t, "SCB", None)  # bitsandbytes int8: per-row scales
    if scb is not None:
        total += scb.numel() * scb.element_size()
    return total


def packed_linear_bytes(out_f: int, in_f: int, bits: int, group_size: int | None, sym: bool) -> int:
    """Bit-packed weight bytes plus one fp16 scale (and zero point when asymmetric) per group and row."""
    groups = 1 if not group_size else math.ceil(in_f / group_size)
    per_group = 2 + (0 if sym else math.ceil(bits / 8))
    return math.ceil(out_f * in_f * bits / 8) + out_f * groups * per_group


def dequantized_weight(module: torch.nn.Module) -> torch.Tensor:
    """The float weight a (possibly quantized) Linear computes with: bitsandbytes, torchao or plain."""
    w = module.weight
    cls = type(module).__name__
    if cls == "Linear4bit":
        import copy

        import bitsandbytes.functional as bf

        data, state = w.data, w.quant_state
        if getattr(state, "packing_format_for_cpu", False):  # repacked for the CPU kernel on first forward
            data, state = bf._convert_weight_packed_for_cpu_inverse(data.clone(), copy.deepcopy(state))
        return bf.dequantize_4bit(data, state).float().reshape(module.out_features, module.in_features)
    if cls == "Linear8bitLt":
        scb = getattr(w, "SCB", None)
        if scb is None:
            scb = module.state.SCB
        return w.data.float() * scb.float()[:, None] / 127.0
    if hasattr(w, "dequantize") and type(w) not in (torch.Tensor, torch.nn.Parameter):
        return w.dequantize().float()
    return w.detach().float()


def check_divisible(
    linears: dict[str, torch.nn.Linear], attr: str, multiple: int, why: str, fix: str
) -> None:
    """Raise a WorkbenchError naming the first Linear whose ``attr`` is not a multiple of ``multiple``."""
    for name, mod in linears.items():
        size = getattr(mod, attr)
        if size % multiple:
            raise WorkbenchError(
                f"{why}: layer {name!r} has {attr}={size}, not a multiple of {multiple}; {fix}"
            )


def dtype_of(name: str) -> torch.dtype:
    """A torch dtype from ``float32|bfloat16|float16`` (or their short forms)."""
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if name not in table:
        raise WorkbenchError(f"unknown compute dtype {name!r}; use float32, bfloat16 or float16")
    return table[name]


def any_linear_to_quantize(linears: dict[str, Any], method: str) -> None:
    """Refuse a model with nothing to quantize."""
    if not linears:
        raise WorkbenchError(f"{method}: the model has no Linear layer left to quantize; check skip=")
