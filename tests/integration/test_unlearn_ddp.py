"""A real 2-process gloo run on CPU through ``accelerate launch --multi_gpu``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU/gloo path is what this test covers")
@pytest.mark.slow
def test_two_process_ddp_trains_one_model_on_different_data(tmp_path):
    from safetensors.torch import load_file

    from workbench.io import read_json
    from workbench.models.tiny import tiny_model

    lm = tiny_model("olmo2", layers=2, seed=0)
    model_dir = tmp_path / "model"
    lm.model.save_pretrained(model_dir)
    lm.tokenizer.save_pretrained(model_dir)
    data = write_semeval(tmp_path / "data", n_forget=10, n_retain=14)
    out = tmp_path / "run"
    cfg = {
        "model": str(model_dir),
        "out": str(out),
        "method": "grad_diff",
        "data": {"path": str(data)},
        "select": {"layers": [1], "kind": "mlp"},
        "train": {"max_steps": 6, "batch_size": 2, "lr": 1e-3, "eval_every": 3, "progress": False},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
           "-m", "workbench", "unlearn", "--config", str(tmp_path / "cfg.yaml")]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = read_json(out / "ranks" / "rank0.json"), read_json(out / "ranks" / "rank1.json")
    assert r0["world_size"] == r1["world_size"] == 2
    assert read_json(out / "metrics.json")["world_size"] == 2
    # each rank saw its own rows of every global batch: per step, the two ranks' rows are disjoint
    assert len(r0["seen"]) == len(r1["seen"]) == 6 * 2
    for step in range(6):
        a, b = r0["seen"][2 * step : 2 * step + 2], r1["seen"][2 * step : 2 * step + 2]
        assert not set(a) & set(b)
    assert r0["seen"] != r1["seen"]
    # ... and DDP kept one model: identical trained weights on both ranks
    assert r0["weights_sha256"] == r1["weights_sha256"]
    after = load_file(str(out / "model" / "model.safetensors"))
    name = "model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(after[name], lm.model.state_dict()[name])
