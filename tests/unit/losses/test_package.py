"""Package contract: standalone import, documented public names, reductions, one-line shape errors."""

from __future__ import annotations

import inspect
import pathlib
import subprocess
import sys

import pytest
import torch

import workbench.losses as L


def test_imports_nothing_else_of_workbench():
    # a bare namespace stands in for the workbench package so that its __init__ (the lead's, which may
    # import the rest) does not run: whatever else of workbench shows up was imported by the losses
    root = str(pathlib.Path(L.__file__).parents[1])
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('workbench'); pkg.__path__ = [{root!r}]; sys.modules['workbench'] = pkg\n"
        "import workbench.losses\n"
        "print([m for m in sys.modules if m.startswith('workbench.') and not m.startswith('workbench.losses')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    mods = (L.metric, L.robust, L.probabilistic, L.contrastive, L.isogclr, L.hyperbolic, L.face)
    src = "".join(inspect.getsource(m) for m in mods)
    assert "from workbench" not in src and "import workbench" not in src


def test_every_public_name_is_documented():
    missing = [n for n in L.__all__ if not (getattr(L, n).__doc__ or "").strip()]
    assert missing == []


REDUCING = [
    L.SphericalZLoss,
    L.CompSumLoss,
    L.LDRKLLoss,
    L.EnsLoss,
    L.ContrastiveLoss,
    L.TripletMarginLoss,
    L.MultiSimilarityLoss,
    L.NTXentLoss,
    L.InfoNCELoss,
    L.TempNetDROLoss,
    L.HypPCLoss,
    L.BinaryKLNormLoss,
    L.APRELoss,
    L.DEPICTLoss,
    L.MinADELoss,
    L.CALoss,
]


@pytest.mark.parametrize("cls", REDUCING, ids=lambda c: c.__name__)
def test_bad_reduction_is_rejected(cls):
    with pytest.raises(ValueError, match="reduction"):
        cls(reduction="average")


def test_reductions_agree():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    for fn in (L.comp_sum_loss, L.ldr_kl_loss, L.spherical_z_loss, L.ca_loss):
        none = fn(logits, y, reduction="none")
        assert none.shape == (6,)
        torch.testing.assert_close(fn(logits, y, reduction="mean"), none.mean())
        torch.testing.assert_close(fn(logits, y, reduction="sum"), none.sum())


def test_shape_errors_are_one_line_value_errors():
    with pytest.raises(L.LossShapeError) as err:
        L.nt_xent_loss(torch.randn(4, 3), torch.randn(5, 3))
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    with pytest.raises(L.LossShapeError, match=r"\(N, D\)"):
        L.TripletMarginLoss()(torch.randn(4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(L.LossShapeError, match="sim must be square"):
        L.tempnet_dro_loss(torch.randn(3, 4), torch.ones(3))
    with pytest.raises(L.LossShapeError, match="shape"):
        L.apre_loss(torch.zeros(3), torch.zeros(3), torch.zeros(4))
