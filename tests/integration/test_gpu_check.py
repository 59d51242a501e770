"""``scripts/gpu_check.sh`` (``bench_scale.py``) on tiny stand-ins, on the CPU: every step runs in its own
worker and reports its memory and FLOPs; a failing step is reported and makes the exit status non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "analyses" / "benchmarks"))

import _scale_steps as S  # noqa: E402


def _check(*args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    out_json = tmp_path / "rows.json"
    env = {**os.environ, "PYTHON": sys.executable, "WORKBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--device", "cpu", "--tiny", "--workdir", str(tmp_path),
         "--json", str(out_json), *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    rows = json.loads(out_json.read_text()) if out_json.is_file() else {}
    return proc, rows


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_tiny_models(tmp_path):
    proc, rows = _check(tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert set(rows) == {"olmo2", "olmoe"}
    for model, steps in rows.items():
        assert [r["step"] for r in steps] == list(S.STEPS), model
        for r in steps:
            assert r["ok"], (model, r)
            assert r["dtype"] == "bfloat16"
            assert r["peak_bytes"] >= r["model_bytes"] > 0, (model, r["step"])
            assert r["seconds"] > 0
        by = {r["step"]: r for r in steps}
        assert by["load+capture"]["flops"] > 0 and by["patch resid"]["forwards"] >= 2
        assert by["unlearn full"]["trainable"] > by["unlearn constrained"]["trainable"] > 0
        # backward FLOPs: the full-parameter step computes every weight gradient, constrained only some
        assert by["unlearn full"]["flops"] > by["unlearn constrained"]["flops"]
    # the fused MoE experts are counted from their routing (FlopCounterMode cannot see grouped_mm)
    assert rows["olmoe"][0]["flops"] > 0
    assert "unlearning memory: constrained" in proc.stdout
    assert "GPU estimate" in proc.stdout
    assert not list(tmp_path.glob("bench-scale-*")), "step folders are removed"


@pytest.mark.slow
def test_gpu_check_fails_when_a_step_fails(tmp_path):
    proc, rows = _check(
        "--models", "olmo2", "--steps", "load+capture,patch resid", "--inject-failure", "load+capture",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout and "failure injected" in proc.stdout
    load, patch = rows["olmo2"]
    assert not load["ok"] and patch["ok"], "the other steps still run"


def test_parameter_count_formula_matches_transformers():
    import torch
    from transformers import AutoModelForCausalLM

    for spec in (*S.TINY.values(), S.OLMO2_1B, S.OLMOE_1B_7B):
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(S.hf_config(spec))
        assert sum(p.numel() for p in model.parameters()) == S.n_params(spec), spec.name
    assert S.n_params(S.OLMO2_1B) == 1_484_916_736  # the published OLMo-2-0425-1B size (1.48B)
    assert S.constrained_layers(16) == [0, 1, 2, 3, 4, 5]
