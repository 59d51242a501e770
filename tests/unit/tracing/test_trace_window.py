"""The mlp/attn window and the AIE summaries scale with the model's depth (ROME's 10 of 48 layers)."""

from __future__ import annotations

import pytest

from workbench.models.tiny import tiny_model
from workbench.tracing import causal_trace
from workbench.tracing.result import default_window


@pytest.mark.parametrize(
    "layers,window", [(1, 1), (2, 1), (6, 1), (8, 2), (16, 3), (32, 7), (48, 10), (80, 17)]
)
def test_default_window_keeps_rome_proportion(layers, window):
    assert default_window(layers) == window


def test_trace_window_defaults_to_depth_and_explicit_wins(facts):
    lm = tiny_model("olmo2", layers=8, seed=1)
    auto = causal_trace(lm, facts[:1], kinds=("mlp",), samples=2, keep_unknown=True, progress=False)
    assert auto.window == 2
    wide = causal_trace(
        lm, facts[:1], kinds=("mlp",), samples=2, window=16, keep_unknown=True, progress=False
    )
    assert wide.window == 16
    # a window twice the depth restores every layer in every cell: the grid is flat over layers
    grid = wide.facts[0].scores["mlp"]
    assert bool((grid - grid[:, :1]).abs().max() < 1e-6)
    assert float((auto.facts[0].scores["mlp"] - auto.facts[0].scores["mlp"][:, :1]).abs().max()) > 1e-6


def test_summaries_default_to_the_depth_relative_width(facts):
    lm = tiny_model("olmo2", layers=8, seed=1)
    res = causal_trace(lm, facts[:1], kinds=("mlp",), samples=2, keep_unknown=True, progress=False)
    assert len(res.top_layers("mlp")) == 2 and len(res.peak_block("mlp")) == 2
    assert len(res.top_layers("mlp", 5)) == 5 and len(res.peak_block("mlp", 3)) == 3
