"""CA loss by hand and against CE's behaviour on a narrowly wrong example; ECE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.losses import (
    CALoss,
    TemperatureScaler,
    ca_loss,
    correctness_from_views,
    expected_calibration_error,
)


def test_ca_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.2, 0.0, 0.1]], dtype=torch.float64)
    y = torch.tensor([0, 1])  # first right, second narrowly wrong
    p = torch.softmax(logits, 1)
    expected = ((p[0].max() - 1) ** 2 + (p[1].max() - 0) ** 2) / 2
    torch.testing.assert_close(ca_loss(logits, y), expected)
    views = torch.stack([logits, logits.flip(1), logits])
    soft = correctness_from_views(views, y)
    torch.testing.assert_close(soft, torch.tensor([2 / 3, 0.0], dtype=torch.float64))
    torch.testing.assert_close(CALoss()(logits, y, soft), ((p[0].max() - 2 / 3) ** 2 + p[1].max() ** 2) / 2)


def test_ca_lowers_and_ce_raises_confidence_on_a_narrow_mistake():
    logits = torch.tensor([[0.5, 0.45, -1.0]], dtype=torch.float64)  # predicts 0, label 1
    y = torch.tensor([1])
    scaler = TemperatureScaler().double()
    ca_loss(scaler(logits), y).backward()
    ca_step = -scaler.log_t.grad.item()  # gradient-descent direction on log T
    scaler.zero_grad()
    F.cross_entropy(scaler(logits), y).backward()
    ce_step = -scaler.log_t.grad.item()
    assert ca_step > 0  # CA heats up (larger T, lower confidence on the wrong class)
    assert ce_step < 0  # CE cools down: sharper, so more confident in the wrong class


def test_ece_zero_when_confidence_matches_accuracy():
    probs = torch.tensor([[0.75, 0.25]] * 4, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1])
    assert expected_calibration_error(probs, y).item() == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(probs, torch.tensor([1, 1, 1, 1])).item() == pytest.approx(0.75)
