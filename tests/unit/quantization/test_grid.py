"""Native grids: NF4 against bitsandbytes, RTN integer grids against their definition."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.quantization.grid import IntGrid, fake_quant_int, fake_quant_nf4, nf4_levels


def test_nf4_levels_equal_bitsandbytes_code():
    bf = pytest.importorskip("bitsandbytes.functional")
    _, state = bf.quantize_4bit(torch.randn(64, 64), blocksize=64, quant_type="nf4")
    torch.testing.assert_close(nf4_levels(), state.code.float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape,blocksize", [((96, 128), 64), ((1000,), 64), ((32, 256), 128)])
def test_nf4_dequantizes_like_bitsandbytes(shape, blocksize):
    bf = pytest.importorskip("bitsandbytes.functional")
    torch.manual_seed(1)
    w = torch.randn(shape) * 0.05
    w.view(-1)[::97] *= 20  # outliers make the absmax blocks differ
    q, state = bf.quantize_4bit(w, blocksize=blocksize, quant_type="nf4")
    theirs = bf.dequantize_4bit(q, state).reshape(shape)
    ours = fake_quant_nf4(w, blocksize)
    # same level chosen everywhere: levels are >= 0.08 * absmax apart, so 1e-6 * absmax separates them
    assert torch.allclose(ours, theirs, atol=1e-6 * float(w.abs().max()), rtol=0)
    assert not torch.equal(ours, w)


def test_rtn_8bit_close_to_original():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    for group in (None, 64):
        fq = fake_quant_int(w, IntGrid(8, sym=True), group)
        g = w.reshape(64, -1, group or 256)
        half_step = (g.abs().amax(-1, keepdim=True) / 127 / 2).expand_as(g).reshape(64, 256)
        assert torch.all((fq - w).abs() <= half_step + 1e-7)  # round to nearest: at most half a step
        assert float((fq - w).norm() / w.norm()) < 0.01


def test_rtn_error_shrinks_with_bits_and_levels_count():
    torch.manual_seed(0)
    w = torch.randn(32, 128)
    errs = []
    for bits in range(2, 9):
        for sym in (True, False):
            fq = fake_quant_int(w, IntGrid(bits, sym=sym), 32)
            groups = fq.reshape(32, 4, 32)
            n_levels = max(len(torch.unique(groups[r, c])) for r in range(32) for c in range(4))
            assert n_levels <= 2**bits
        errs.append(float((fake_quant_int(w, IntGrid(bits, True), 32) - w).norm()))
    assert all(a > b for a, b in zip(errs, errs[1:]))


def test_asymmetric_grid_exact_on_shifted_uniform_levels():
    # values already on a 4-bit asymmetric grid come back unchanged
    scale = 0.1
    row = (torch.arange(16, dtype=torch.float32) - 3) * scale
    w = row.repeat(4, 1)
    torch.testing.assert_close(fake_quant_int(w, IntGrid(4, sym=False), None), w, atol=1e-6, rtol=0)


def test_grid_errors():
    with pytest.raises(WorkbenchError, match="bits=9"):
        IntGrid(9)
    with pytest.raises(WorkbenchError, match="group_size=48 does not divide in_features=64"):
        fake_quant_int(torch.randn(4, 64), IntGrid(4), 48)
