"""Fixtures for the tracing tests: a 3-layer tiny OLMo-2 and facts its tiny tokenizer can spell."""

from __future__ import annotations

import pytest

FACTS = [
    {"prompt": "Mira Okafor was born in the city of", "subject": "Mira Okafor"},
    {"prompt": "The Eiffel Tower is located in the city of", "subject": "Eiffel Tower"},
]


@pytest.fixture(scope="module")
def lm3():
    """A 3-layer tiny OLMo-2 (fp32, random weights, seed 0)."""
    from workbench.models.tiny import tiny_model

    return tiny_model("olmo2", layers=3, seed=0)


@pytest.fixture
def facts() -> list[dict]:
    """Two facts whose subjects occur in their prompts."""
    return [dict(f) for f in FACTS]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (intra-op threading only adds overhead at width 64)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
