"""`workbench trace` / `workbench patch` end to end, and a 2-process run equal to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

FACTS = [
    {"prompt": "Mira Okafor was born in the city of", "subject": "Mira Okafor"},
    {"prompt": "The Eiffel Tower is located in the city of", "subject": "Eiffel Tower"},
    {"prompt": "Alan Turing worked in the field of", "subject": "Alan Turing", "answer": "zzz-unknown"},
]
ARGS = ["--samples", "2", "--window", "2", "--seed", "3"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A 3-layer tiny OLMo-2 saved with save_pretrained, and a facts file for it."""
    from workbench.io import write_jsonl
    from workbench.models.tiny import tiny_model

    folder = tmp_path_factory.mktemp("trace_cli")
    lm = tiny_model("olmo2", layers=3, seed=2)
    lm.model.save_pretrained(folder / "model")
    lm.tokenizer.save_pretrained(folder / "model")
    write_jsonl(folder / "facts.jsonl", FACTS)
    return folder


def test_trace_cli_writes_the_run_folder(tiny_dir, tmp_path, capsys):
    from workbench.cli import main
    from workbench.models import load
    from workbench.tracing import TraceResult, causal_trace

    out = tmp_path / "run"
    code = main(
        [
            "trace",
            "--model",
            str(tiny_dir / "model"),
            "--facts",
            str(tiny_dir / "facts.jsonl"),
            *ARGS,
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert (
        "traced 2 facts (1 skipped as unknown)" in printed
        and "peak layer at the last subject token" in printed
    )
    for name in (
        "config.yaml",
        "metrics.json",
        "trace.json",
        "trace.safetensors",
        "aie.png",
        "figures/fact0.png",
        "figures/fact1.png",
    ):
        assert (out / name).is_file(), name
    res = TraceResult.load(out)
    direct = causal_trace(load(tiny_dir / "model"), FACTS, samples=2, window=2, seed=3, progress=False)
    assert [f.index for f in res.facts] == [0, 1] and res.skipped[0]["index"] == 2
    for a, b in zip(res.facts, direct.facts):
        assert torch.equal(a.scores["mlp"], b.scores["mlp"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["peak_layer_last_subject"]["mlp"]["layer"] == res.peak_layer("mlp")
    assert metrics["top_mlp_layers"] == res.top_layers("mlp")  # a fifth of the depth: 1 of 3 layers


def test_trace_cli_bad_fact_is_one_line_error(tiny_dir, tmp_path, capsys):
    from workbench.cli import main
    from workbench.io import write_jsonl

    write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Mira Okafor was born in", "subject": "Ada Lovelace"}])
    code = main(
        [
            "trace",
            "--model",
            str(tiny_dir / "model"),
            "--facts",
            str(tmp_path / "bad.jsonl"),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: fact #0") and "Ada Lovelace" in last


def test_patch_cli(tiny_dir, tmp_path, capsys):
    from workbench.cli import main
    from workbench.tracing import PatchResult

    for method in ("exact", "atp"):
        out = tmp_path / method
        code = main(
            [
                "patch",
                "--model",
                str(tiny_dir / "model"),
                "--clean",
                "Mira Okafor was born in the city of",
                "--corrupted",
                "Mira Okafor lived in the city of",
                "--answers",
                " Paris",
                " London",
                "--sites",
                "resid",
                "heads",
                "--method",
                method,
                "--out",
                str(out),
            ]
        )
        assert code == 0 and (out / "patch.png").is_file()
        res = PatchResult.load(out)
        assert res.method == method and res.scores["heads"].shape[0] == 3
    printed = capsys.readouterr().out
    assert "peak resid_pre: layer" in printed and "peak heads:" in printed


@pytest.mark.slow
def test_two_processes_equal_one(tiny_dir, tmp_path):
    """torchrun --nproc_per_node 2 shards the facts; the merged result equals the 1-process result."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        "-m",
        "workbench",
        "trace",
        "--model",
        str(tiny_dir / "model"),
        "--facts",
        str(tiny_dir / "facts.jsonl"),
        *ARGS,
    ]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            *cmd,
            "--out",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    from workbench.models import load
    from workbench.tracing import TraceResult, causal_trace

    a = causal_trace(
        load(tiny_dir / "model"), FACTS, samples=2, window=2, seed=3, progress=False
    )  # 1 process
    b = TraceResult.load(tmp_path / "two")
    assert not (tmp_path / "two" / ".shards").exists()
    assert [f.index for f in a.facts] == [f.index for f in b.facts] == [0, 1]
    assert a.skipped == b.skipped and a.sigma == b.sigma
    for x, y in zip(a.facts, b.facts):
        assert x.clean_score == y.clean_score and x.corrupted_score == y.corrupted_score
        for kind in a.kinds:
            assert torch.equal(x.scores[kind], y.scores[kind])
