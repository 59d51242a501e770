"""SIGKILL an unlearning run mid-training, resume it, and get the uninterrupted run's weights."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load_layout():
    spec = importlib.util.spec_from_file_location(
        "semeval_layout", REPO / "tests/unit/unlearning/semeval_layout.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_semeval = _load_layout().write_semeval


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture
def setup(tmp_path):
    from workbench.models.tiny import tiny_model

    lm = tiny_model("olmo2", layers=3, seed=0)
    model_dir = tmp_path / "model"
    lm.model.save_pretrained(model_dir)
    lm.tokenizer.save_pretrained(model_dir)
    data = write_semeval(tmp_path / "data", n_forget=12, n_retain=20)
    cfg = {
        "model": str(model_dir),
        "method": "constrained",
        "data": {"path": str(data)},
        "select": {"layers": [0, 1], "kind": "mlp"},
        "train": {"max_steps": 100, "batch_size": 4, "lr": 1e-3, "warmup_steps": 5, "eval_every": 7,
                  "save_every": 5, "progress": False, "seed": 1},
    }  # fmt: skip
    return tmp_path, cfg


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "model.safetensors"))


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(setup):
    from workbench.config import from_dict
    from workbench.unlearning import UnlearnConfig, unlearn

    tmp, cfg = setup
    killed = tmp / "killed"
    cfg_file = tmp / "unlearn.yaml"
    cfg_file.write_text(yaml.safe_dump({**cfg, "out": str(killed)}))
    cmd = [sys.executable, "-m", "workbench", "unlearn", "--config", str(cfg_file)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if latest.is_file() and int(latest.read_text().strip().split("_")[1]) >= 20:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert not (killed / "model").exists()
    resumed = subprocess.run(
        [*cmd, "--resume"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "100 steps" in resumed.stdout

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight = unlearn(from_dict(UnlearnConfig, {**cfg, "out": str(tmp / "straight")}))
    finally:
        torch.set_num_threads(before)
    a, b = _weights(killed), _weights(tmp / "straight")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6
    changed = [k for k in a if ".mlp." in k and "layers.0." in k]
    assert changed and straight.steps == 100
    from workbench.io import read_jsonl

    steps = [r["step"] for r in read_jsonl(killed / "metrics.jsonl")]
    assert steps == list(range(1, 101))  # the log was rewound to the checkpoint, no step twice
