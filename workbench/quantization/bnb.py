"""bitsandbytes through transformers' ``BitsAndBytesConfig``: ``bnb-nf4``, ``bnb-fp4`` and ``bnb-int8``.

- ``bnb-nf4`` / ``bnb-fp4``: 4-bit blockwise (64) absmax quantization to NormalFloat4 or FP4 (Dettmers
  et al. 2023, QLoRA), optional double quantization of the absmax statistics, a chosen compute dtype.
- ``bnb-int8``: LLM.int8() (Dettmers et al. 2022): int8 vector-wise weights, fp16 outlier columns.

From a folder the model loads directly with ``quantization_config``; an in-memory model is first saved
(safetensors, to a temporary folder in the workbench cache) and reloaded the same way, so that both
routes give the same modules. The output embedding stays in full precision (transformers' default).
On the CPU, bitsandbytes' 4-bit kernels need every Linear's out_features to be a multiple of 32: that
is checked first and reported with the offending layer's name.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from typing import Any

import torch

from ..errors import WorkbenchError
from ._common import check_divisible, dtype_of, param_bytes, quantizable_linears
from .registry import QuantInfo, register

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BnB4Options:
    """Options of ``bnb-nf4`` and ``bnb-fp4``."""

    double_quant: bool = False
    """Quantize the absmax statistics too (QLoRA's double quantization)."""
    compute_dtype: str = "float32"
    """Dtype of the matmul: float32, bfloat16 or float16."""
    device: str = "cpu"
    """Where the quantized model lives (cpu, cuda, ...)."""

    def __post_init__(self) -> None:
        dtype_of(self.compute_dtype)


@dataclasses.dataclass
class BnB8Options:
    """Options of ``bnb-int8``."""

    threshold: float = 6.0
    """LLM.int8() outlier threshold: input columns above it run in fp16."""
    device: str = "cpu"
    """Where the quantized model lives (cpu, cuda, ...)."""


def bnb_config(method: str, opts: Any) -> Any:
    """The ``transformers.BitsAndBytesConfig`` of ``method`` with ``opts``."""
    from transformers import BitsAndBytesConfig

    if method == "bnb-int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=opts.threshold)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=method.removeprefix("bnb-"),
        bnb_4bit_use_double_quant=opts.double_quant,
        bnb_4bit_compute_dtype=dtype_of(opts.compute_dtype),
    )


def check_shapes(model: torch.nn.Module, method: str, device: str) -> None:
    """On the CPU, refuse 4-bit when a Linear's out_features is not a multiple of 32 (names the layer)."""
    if method == "bnb-int8" or not str(device).startswith("cpu"):
        return
    check_divisible(
        quantizable_linears(model),
        "out_features",
        32,
        f"{method} on the CPU",
        "use bnb-int8, rtn/gptq (any shape), or a GPU",
    )


def _shell(path: str) -> torch.nn.Module:
    """The model of ``path`` on the meta device (shapes only, no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=torch.float32)


def load_quantized(path: str, method: str, opts: Any, dtype: Any = None) -> tuple[Any, QuantInfo]:
    """Load a model folder with bitsandbytes quantization; returns (LoadedModel, QuantInfo).

    ``dtype`` is the dtype of the weights that stay unquantized (embeddings, norms, the output layer,
    anything that is not an ``nn.Linear``); default: :func:`workbench.load`'s (float32 on the CPU).
    """
    import warnings

    from ..models import load

    shell = _shell(path)
    check_shapes(shell, method, opts.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qlm = load(path, dtype=dtype, quantization_config=bnb_config(method, opts), device_map=opts.device)
    quantized = {
        n: m
        for n, m in quantizable_linears(qlm.model).items()
        if type(m).__name__ in ("Linear4bit", "Linear8bitLt")
    }
    _warn_coverage(method, quantized, shell)
    info = QuantInfo(
        method=method,
        options=dataclasses.asdict(opts),
        fp_bytes=param_bytes(shell),
        stored_bytes=param_bytes(qlm.model),
        packed_bytes=param_bytes(qlm.model),
        quantized_layers=list(quantized),
    )
    return qlm, info


def _warn_coverage(method: str, quantized: dict[str, Any], shell: torch.nn.Module) -> None:
    """Warn when bitsandbytes leaves most weights unquantized (it replaces ``nn.Linear`` modules only)."""
    covered = sum(m.in_features * m.out_features for m in quantized.values())
    total = sum(p.numel() for p in shell.parameters())
    if total and covered / total < 0.5:
        log.warning(
            "%s quantized only %.0f%% of the weights: bitsandbytes replaces nn.Linear modules, and the "
            "rest (e.g. fused MoE expert tensors, embeddings, the output layer) stays in full precision",
            method,
            100 * covered / total,
        )


def _in_memory(lm: Any, opts: Any, method: str) -> tuple[Any, QuantInfo]:
    from ..io import cache_dir

    check_shapes(lm.model, method, opts.device)
    root = cache_dir() / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="bnb-") as tmp:
        lm.model.save_pretrained(tmp, safe_serialization=True)
        if lm.tokenizer is not None:
            lm.tokenizer.save_pretrained(tmp)
        qlm, info = load_quantized(tmp, method, opts, dtype=lm.dtype)  # keep the model's own dtype
    qlm.spec = lm.spec
    if lm.tokenizer is not None:
        qlm.tokenizer = lm.tokenizer
    info.fp_bytes = param_bytes(lm.model)
    return qlm, info


def _unavailable(method: str) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise WorkbenchError(
            f"{method} needs bitsandbytes; install it with pip install bitsandbytes"
        ) from None


@register("bnb-nf4", BnB4Options)
def bnb_nf4(lm: Any, opts: BnB4Options) -> tuple[Any, QuantInfo]:
    """bitsandbytes NF4 (4-bit NormalFloat, blocks of 64), optional double quantization."""
    _unavailable("bnb-nf4")
    return _in_memory(lm, opts, "bnb-nf4")


@register("bnb-fp4", BnB4Options)
def bnb_fp4(lm: Any, opts: BnB4Options) -> tuple[Any, QuantInfo]:
    """bitsandbytes FP4 (4-bit float, blocks of 64), optional double quantization."""
    _unavailable("bnb-fp4")
    return _in_memory(lm, opts, "bnb-fp4")


@register("bnb-int8", BnB8Options)
def bnb_int8(lm: Any, opts: BnB8Options) -> tuple[Any, QuantInfo]:
    """bitsandbytes LLM.int8(): int8 weights with fp16 outlier columns."""
    _unavailable("bnb-int8")
    return _in_memory(lm, opts, "bnb-int8")
