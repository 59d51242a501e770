"""ADE/FDE by hand, JADE against marginal minADE, collisions."""

from __future__ import annotations

import pytest
import torch

from workbench.losses import (
    JointMinADELoss,
    LossShapeError,
    MinADELoss,
    collision_rate,
    fde,
    jade,
    jfde,
    min_ade,
    min_fde,
    per_agent_min_ade,
)


def test_min_ade_fde_by_hand():
    gt = torch.zeros(1, 3, 2, dtype=torch.float64)
    pred = torch.tensor([[[[0, 1], [0, 1], [0, 1]], [[3, 4], [0, 0], [0, 0]]]], dtype=torch.float64)
    assert min_ade(pred, gt).item() == pytest.approx(1.0)  # mode 0: 1,1,1 ; mode 1: 5,0,0 -> 5/3
    assert min_fde(pred, gt).item() == pytest.approx(0.0)  # mode 1 ends on target
    assert fde(pred[0, 0], gt[0]).item() == pytest.approx(1.0)
    assert MinADELoss(reduction="none")(pred, gt).shape == (1,)


def test_jade_is_never_below_marginal_min_ade():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(8, 6, 3, 5, 2, generator=g, dtype=torch.float64)
    gt = torch.randn(8, 3, 5, 2, generator=g, dtype=torch.float64)
    marginal = per_agent_min_ade(pred, gt)  # (B, A)
    joint = jade(pred, gt, reduction="none")
    assert bool((joint >= marginal.mean(1) - 1e-12).all())
    assert bool((joint > marginal.mean(1) + 1e-6).any())  # strict somewhere: the joint metric is harder
    assert bool((jfde(pred, gt, reduction="none") >= 0).all())
    # the stronger claim (JADE >= max over agents of minADE) does not hold in general:
    # one mode, agent errors (10, 0) -> JADE = 5 < 10
    p1 = torch.zeros(1, 1, 2, 1, 2, dtype=torch.float64)
    p1[0, 0, 0, 0, 0] = 10.0
    g1 = torch.zeros(1, 2, 1, 2, dtype=torch.float64)
    assert jade(p1, g1).item() == pytest.approx(5.0)
    assert per_agent_min_ade(p1, g1).max().item() == pytest.approx(10.0)
    assert JointMinADELoss()(pred, gt).item() == pytest.approx(joint.mean().item())


def test_collision_rate_by_hand():
    pred = torch.zeros(2, 1, 2, 3, 2, dtype=torch.float64)
    pred[0, 0, 1, :, 0] = torch.tensor([1.0, 0.05, 1.0])  # scene 0: agents meet at t = 1
    pred[1, 0, 1, :, 0] = 1.0  # scene 1: always 1 m apart
    assert collision_rate(pred).item() == pytest.approx(0.5)
    assert collision_rate(pred[:, 0]).item() == pytest.approx(0.5)
    with pytest.raises(LossShapeError):
        min_ade(pred, pred)
