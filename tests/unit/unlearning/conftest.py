"""Fixtures for the unlearning tests: a small SemEval-layout folder and a tiny saved model."""

from __future__ import annotations

from pathlib import Path

import pytest
from semeval_layout import write_semeval


@pytest.fixture
def semeval_dir(tmp_path: Path) -> Path:
    """A small SemEval-layout folder (12 forget / 16 retain train records, 4+4 validation)."""
    return write_semeval(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny 3-layer OLMo-2 saved with save_pretrained (safetensors) plus its tokenizer."""
    from workbench.models.tiny import tiny_model

    lm = tiny_model("olmo2", layers=3, d_model=64, heads=4, seed=0)
    path = tmp_path_factory.mktemp("tiny_model")
    lm.model.save_pretrained(path, safe_serialization=True)
    lm.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run far faster on one thread (two OpenMP threads thrash when the machine is busy)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
