"""Aggregate responses: instance = bag + within-bag spread, and the interpolation."""

from __future__ import annotations

import pytest
import torch

from workbench.losses import (
    AggregateLoss,
    LossShapeError,
    bag_level_loss,
    instance_level_loss,
    interpolating_loss,
)

PREDS = torch.tensor([0.5, 1.5, -1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
BAGS = torch.tensor([0, 0, 1, 1, 1, 2])
RESP = torch.tensor([1.2, 0.1, 2.5], dtype=torch.float64)


def test_bag_and_instance_by_hand_and_decomposition():
    bag = ((2 * (1.2 - 1.0) ** 2) + 3 * (0.1 - 1 / 3) ** 2 + (2.5 - 3.0) ** 2) / 6
    assert bag_level_loss(PREDS, BAGS, RESP).item() == pytest.approx(bag, rel=1e-12)
    inst = sum((RESP[b] - p) ** 2 for p, b in zip(PREDS.tolist(), BAGS.tolist())) / 6
    assert instance_level_loss(PREDS, BAGS, RESP).item() == pytest.approx(float(inst), rel=1e-12)
    means = torch.tensor([1.0, 1 / 3, 3.0], dtype=torch.float64)
    spread = ((PREDS - means[BAGS]) ** 2).mean()
    torch.testing.assert_close(
        instance_level_loss(PREDS, BAGS, RESP), bag_level_loss(PREDS, BAGS, RESP) + spread
    )


def test_interpolation_and_errors():
    b, i = bag_level_loss(PREDS, BAGS, RESP), instance_level_loss(PREDS, BAGS, RESP)
    torch.testing.assert_close(interpolating_loss(PREDS, BAGS, RESP, rho=0.25), 0.25 * b + 0.75 * i)
    torch.testing.assert_close(AggregateLoss(rho=1.0)(PREDS, BAGS, RESP), b)
    with pytest.raises(LossShapeError, match="bag_ids"):
        bag_level_loss(PREDS, torch.tensor([0, 0, 1, 1, 1, 3]), RESP)
    with pytest.raises(LossShapeError, match="at least one instance"):
        bag_level_loss(PREDS, torch.tensor([0, 0, 0, 0, 0, 2]), RESP)
