"""``gptq``: Hessian-aware post-training quantization (Frantar et al. 2022, arXiv:2210.17323).

For each Linear, with its calibration inputs X (rows = tokens), the layer-wise objective
``||X Wᵀ - X Qᵀ||²`` has Hessian H = 2XᵀX (= 2XXᵀ in the paper's column-sample notation). Columns of
W are quantized in order; after each column the rounding error, scaled by the inverse-Hessian row
(upper Cholesky factor of H⁻¹), is fed back into the not-yet-quantized columns; updates are applied
lazily per block of columns (the paper's §4 "lazy batch updates" and "Cholesky reformulation"; the
reference implementation is github.com/IST-DASLab/gptq). Blocks run sequentially: the inputs of
block i are captured with blocks < i already quantized. Inputs are captured through the hook engine
at ``input:<module path>``. The weights are written back fake-quantized (float), so any backend runs
the model; ``packed_bytes`` reports the bit-packed size.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from typing import Any

import torch

from ..errors import WorkbenchError
from ._common import DEFAULT_SKIP, any_linear_to_quantize, block_of, quantizable_linears
from .calib import default_source, max_seq_len, read_texts, token_chunks
from .grid import IntGrid
from .registry import QuantInfo, register
from .rtn import make_info, replace_weights

log = logging.getLogger(__name__)


@dataclasses.dataclass
class GPTQOptions:
    """Options of ``gptq``."""

    bits: int = 4
    """Bit width, 2..8."""
    group_size: int | None = 128
    """Input columns per scale; None (or -1) for one scale per output channel."""
    sym: bool = True
    """Symmetric or asymmetric integer grid."""
    calib: Any = None
    """Calibration text source (file, folder, list of strings); default: the model folder's corpus/."""
    n_samples: int = 64
    """Calibration chunks."""
    seq_len: int = 128
    """Tokens per calibration chunk (capped by the model's context)."""
    damp: float = 0.01
    """Dampening added to H's diagonal, as a fraction of its mean diagonal."""
    block_size: int = 128
    """Columns per lazy-update block (rounded to a multiple of group_size)."""
    batch_size: int = 8
    """Calibration chunks per forward pass."""
    seed: int = 0
    """Seed of the calibration chunk shuffle."""
    skip: tuple[str, ...] = DEFAULT_SKIP
    """Linear modules (names or globs) kept in full precision."""
    grid: str = "int"
    """Only ``int`` (kept for symmetry with ``rtn``'s options)."""

    def __post_init__(self) -> None:
        IntGrid(int(self.bits), self.sym)
        if self.grid != "int":
            raise WorkbenchError(f"gptq supports grid='int' only, got {self.grid!r}")
        if self.group_size is not None and self.group_size < 0:
            self.group_size = None
        if not 0 <= self.damp < 1:
            raise WorkbenchError(f"damp={self.damp} must be in [0, 1)")
        self.skip = tuple(self.skip)


def gptq_quantize_weight(
    w: torch.Tensor,
    hessian: torch.Tensor,
    grid: IntGrid,
    group_size: int | None = None,
    damp: float = 0.01,
    block_size: int = 128,
) -> torch.Tensor:
    """GPTQ one [out, in] weight given H = 2XᵀX / n ([in, in]); returns the fake-quantized weight (float32)."""
    W = w.detach().float().clone()
    H = hessian.detach().float().clone()
    out_f, in_f = W.shape
    if group_size and group_size >= in_f:
        group_size = None  # one group per row
    g = in_f if not group_size else int(group_size)
    if in_f % g:
        raise WorkbenchError(f"group_size={g} does not divide in_features={in_f}; pick a divisor")
    dead = torch.diag(H) == 0  # inputs never active: their weights cannot matter
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(in_f)
    try:
        L = torch.linalg.cholesky(H)
        Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    except torch._C._LinAlgError:
        raise WorkbenchError(
            "GPTQ: the calibration Hessian is not positive definite; raise damp or add calibration text"
        ) from None
    bs = max(1, block_size // g) * g if g <= block_size else g  # blocks hold whole groups
    Q = torch.zeros_like(W)
    scale = zero = None
    if group_size is None:
        scale, zero = grid.params(W)
    for i1 in range(0, in_f, bs):
        i2 = min(i1 + bs, in_f)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            if group_size is not None and (i1 + i) % g == 0:  # group params from the error-updated weights
                scale, zero = grid.params(W1[:, i : i + g])
            col = W1[:, i : i + 1]
            q = grid.fake(col, scale, zero)
            Q[:, i1 + i] = q[:, 0]
            err = (col[:, 0] - q[:, 0]) / Hinv1[i, i]
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return Q


def _blocks(names: list[str]) -> list[list[str]]:
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(block_of(n), []).append(n)
    return list(out.values())


def collect_hessians(
    qlm: Any, names: list[str], chunks: torch.Tensor, batch_size: int
) -> dict[str, torch.Tensor]:
    """H = 2XᵀX / n for each Linear in ``names``, from its inputs on ``chunks`` (via the hook engine)."""
    mods = dict(qlm.model.named_modules())
    H = {n: torch.zeros(mods[n].in_features, mods[n].in_features) for n in names}
    count = 0
    for s in range(0, len(chunks), batch_size):
        ids = chunks[s : s + batch_size].to(qlm.device)
        with qlm.hooks() as h:
            caps = {n: h.capture(f"input:{n}", dtype=torch.float32, device="cpu") for n in names}
            with torch.no_grad():
                qlm.model(input_ids=ids)
        for n, cap in caps.items():
            x = cap.value.reshape(-1, cap.value.shape[-1])
            H[n] += 2.0 * x.T @ x
        count += ids.numel()
    return {n: h / count for n, h in H.items()}


@register("gptq", GPTQOptions)
def gptq(lm: Any, opts: GPTQOptions) -> tuple[torch.nn.Module, QuantInfo]:
    """GPTQ: Hessian-based column-by-column quantization with error feedback, block by block."""
    from tqdm.auto import tqdm

    from ..models import wrap

    source = opts.calib if opts.calib is not None else default_source(lm)
    texts = read_texts(source)
    chunks = token_chunks(
        lm.tokenizer, texts, seq_len=max_seq_len(lm, opts.seq_len), n_calib=opts.n_samples, seed=opts.seed
    ).calib
    model = copy.deepcopy(lm.model)
    qlm = wrap(model, lm.tokenizer, spec=lm.spec)
    linears = quantizable_linears(model, opts.skip)
    any_linear_to_quantize(linears, "gptq")
    grid = IntGrid(int(opts.bits), opts.sym)
    blocks = _blocks(list(linears))
    for names in tqdm(
        blocks, desc="gptq", disable=not log.isEnabledFor(logging.INFO) or "PYTEST_CURRENT_TEST" in os.environ
    ):
        hessians = collect_hessians(qlm, names, chunks, opts.batch_size)
        new = {
            n: gptq_quantize_weight(
                linears[n].weight, hessians[n], grid, opts.group_size, opts.damp, opts.block_size
            )
            for n in names
        }
        replace_weights(model, new)
    log.info(
        "gptq: %d Linear layers in %d blocks at %d bits on %d chunks",
        len(linears),
        len(blocks),
        opts.bits,
        len(chunks),
    )
    info = make_info("gptq", opts, lm.model, model, linears)
    info.options["calib"] = str(source) if not isinstance(source, (list, tuple)) else f"<{len(source)} texts>"
    info.options["n_samples"] = len(chunks)
    return model, info
