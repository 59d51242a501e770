"""Fixtures for the quantization tests: a tiny OLMo-2 (all dims multiples of 32) and some text."""

from __future__ import annotations

import pytest

from workbench.models.tiny import _TEXT


@pytest.fixture(scope="module")
def tiny_lm():
    """A 2-layer OLMo-2 with hidden 64 (vocab padded to a multiple of 64), shared by a test module."""
    from workbench.models.tiny import tiny_model

    return tiny_model("olmo2", d_model=64)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Calibration / held-out text the tiny tokenizer knows."""
    words = _TEXT.split()
    return [" ".join(words[i:] + words[:i]) for i in range(0, len(words), 3)]
