"""Fixtures for the editing tests: a 3-layer tiny OLMo-2, a small text source, a private stats cache."""

from __future__ import annotations

import pytest

from workbench.models.tiny import _TEXT

REQUEST = {
    "prompt": "Mira Okafor was born in the city of",
    "subject": "Mira Okafor",
    "target_new": "Paris",
    "target_true": "Halden",
    "paraphrase_prompts": ["Question: Where was Mira Okafor born?\nAnswer:"],
    "neighborhood_prompts": ["Alan Turing was born in the city of"],
    "neighborhood_answers": ["London"],
}
OTHER = {
    "prompt": "The Eiffel Tower is located in the city of",
    "subject": "Eiffel Tower",
    "target_new": "Rome",
    "target_true": "Paris",
}
_FAST = {"v_num_grad_steps": 8, "context_lengths": (4,), "context_counts": (2,), "mom2_n_samples": 400}


@pytest.fixture
def fast():
    """Small settings that keep a tiny edit well under a second."""
    return dict(_FAST)


@pytest.fixture(autouse=True)
def _setup(monkeypatch, tmp_path_factory):
    """One thread, and a statistics cache of this test session only."""
    import torch

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "wb-cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def lm3():
    """A fresh 3-layer tiny OLMo-2 (fp32, random weights, seed 0)."""
    from workbench.models.tiny import tiny_model

    return tiny_model("olmo2", layers=3, seed=0)


@pytest.fixture(scope="session")
def source(tmp_path_factory):
    """A .txt source: overlapping windows of the tiny tokenizer's text, one per line (enough tokens for a
    full-rank C at width 128)."""
    path = tmp_path_factory.mktemp("src") / "texts.txt"
    lines = [_TEXT[i : i + 90] for i in range(0, len(_TEXT) - 30, 3)]
    path.write_text("\n".join(lines * 3), encoding="utf-8")
    return path


@pytest.fixture
def request_dict() -> dict:
    """A CounterFact-style request the tiny tokenizer can spell."""
    return dict(REQUEST)


@pytest.fixture
def other_dict() -> dict:
    """An unrelated request (another subject)."""
    return dict(OTHER)
