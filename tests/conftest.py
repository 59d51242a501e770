"""Shared fixtures: tiny models for unit tests, the tiny organism (built once per session) for integration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
LUME = REPO.parent / "shared" / "data" / "lume"


@pytest.fixture(scope="session")
def lume_dir() -> Path:
    """The public SemEval-2025 Task 4 data, or skip when it is absent."""
    if not (LUME / "forget.jsonl").is_file():
        pytest.skip("../shared/data/lume is absent")
    return LUME


@pytest.fixture
def tiny_olmo2():
    """A fresh 2-layer OLMo-2 with hidden 64 (random weights, fp32)."""
    from workbench.models.tiny import tiny_model

    return tiny_model("olmo2")


@pytest.fixture(scope="session")
def organism_tiny():
    """The ``tiny`` organism, built once and cached under $WORKBENCH_CACHE (scripts/test.sh sets it)."""
    from workbench.organism import build

    return build("tiny", seed=0, progress=False)
