"""Quantization grids for the native methods: uniform integer grids and the NF4 absmax grid.

- Integer grid, ``bits`` in 2..8: symmetric (signed codes ``-2^(b-1) .. 2^(b-1)-1``, scale = absmax /
  (2^(b-1)-1), zero point 0) or asymmetric (codes ``0 .. 2^b-1``, range [min(w,0), max(w,0)], integer
  zero point), per output channel or per group of ``group_size`` input columns.
- NF4 (Dettmers et al. 2023, QLoRA §3): 16 levels at quantiles of N(0,1) normalised to [-1, 1] with an
  exact zero, applied blockwise to ``w / absmax(block)`` over the flattened tensor (what bitsandbytes'
  ``quantize_4bit`` does); the table is built here from the normal quantile function.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from ..errors import WorkbenchError


@dataclasses.dataclass(frozen=True)
class IntGrid:
    """A uniform integer grid of ``bits`` bits, symmetric or asymmetric."""

    bits: int
    sym: bool = True

    def __post_init__(self) -> None:
        if not 2 <= int(self.bits) <= 8:
            raise WorkbenchError(f"bits={self.bits} is out of range; native quantizers take 2..8 bits")

    @property
    def qmin(self) -> int:
        """Smallest integer code."""
        return -(2 ** (self.bits - 1)) if self.sym else 0

    @property
    def qmax(self) -> int:
        """Largest integer code."""
        return 2 ** (self.bits - 1) - 1 if self.sym else 2**self.bits - 1

    def params(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point over the last dim of ``w`` (shapes ``w.shape[:-1] + (1,)``)."""
        w = w.float()
        if self.sym:
            amax = w.abs().amax(dim=-1, keepdim=True)
            scale = torch.where(amax > 0, amax / self.qmax, torch.ones_like(amax))
            return scale, torch.zeros_like(scale)
        lo = w.amin(dim=-1, keepdim=True).clamp(max=0)
        hi = w.amax(dim=-1, keepdim=True).clamp(min=0)
        span = hi - lo
        scale = torch.where(span > 0, span / self.qmax, torch.ones_like(span))
        zero = torch.round(-lo / scale).clamp(0, self.qmax)
        return scale, zero

    def codes(self, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        """Integer codes of ``w`` on this grid."""
        return torch.clamp(torch.round(w.float() / scale) + zero, self.qmin, self.qmax)

    def fake(self, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        """Quantize then dequantize ``w`` with the given parameters (float32)."""
        return (self.codes(w, scale, zero) - zero) * scale


def _groups(w: torch.Tensor, group_size: int | None, name: str = "weight") -> torch.Tensor:
    """View ``w`` [out, in] as [out, n_groups, g] (one group per row when ``group_size`` is None)."""
    out_f, in_f = w.shape
    g = in_f if not group_size or group_size < 0 else min(int(group_size), in_f)  # a group can't exceed a row
    if in_f % g:
        raise WorkbenchError(
            f"group_size={g} does not divide in_features={in_f} of {name!r}; pick a divisor or group_size=None"
        )
    return w.reshape(out_f, in_f // g, g)


def fake_quant_int(
    w: torch.Tensor, grid: IntGrid, group_size: int | None, name: str = "weight"
) -> torch.Tensor:
    """Round-to-nearest fake quantization of a [out, in] weight on ``grid``, per channel or per group."""
    g = _groups(w.float(), group_size, name)
    scale, zero = grid.params(g)
    return grid.fake(g, scale, zero).reshape(w.shape)


@functools.lru_cache(maxsize=1)
def nf4_levels() -> torch.Tensor:
    """The 16 NF4 levels: 8 positive and 7 negative normal quantiles, plus 0, scaled to [-1, 1].

    QLoRA's construction: quantiles at evenly spaced probabilities from ``offset`` to 1/2, offset =
    (1 - 1/(2*15) + 1 - 1/(2*16)) / 2, so that the extreme levels sit at ±1 after normalisation.
    """
    offset = 0.5 * ((1 - 1 / 30) + (1 - 1 / 32))
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    levels = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg])
    levels = levels / levels.abs().max()
    return torch.sort(levels).values.float()


def fake_quant_nf4(w: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """Blockwise absmax NF4 fake quantization over the flattened tensor (bitsandbytes' layout)."""
    flat = w.detach().float().reshape(-1)
    n = flat.numel()
    pad = (-n) % blocksize
    blocks = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, blocksize)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    levels = nf4_levels()
    mids = (levels[1:] + levels[:-1]) / 2
    idx = torch.bucketize(blocks / safe, mids)  # nearest level: count of midpoints below the value
    deq = levels[idx] * absmax
    return deq.reshape(-1)[:n].reshape(w.shape)
