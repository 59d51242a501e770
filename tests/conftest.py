"""Shared fixtures: tiny models for unit tests, the tiny organism (built once per session) for integration."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tiny models run fastest on one thread, and a shared 2-core machine thrashes with more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

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


def _render(page, tmp_path):
    """Render ``page`` headless; returns (dom, stderr, screenshot path) or skips without Chromium."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("Chromium is not installed")
    flags = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,2400", url], capture_output=True, timeout=120
    )
    return dom.stdout, dom.stderr, shot


@pytest.fixture
def render_in_chromium():
    """``render(page, tmp_path) -> (dom, stderr, screenshot)`` in headless Chromium; skips without it."""
    return _render
