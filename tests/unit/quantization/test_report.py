"""The quantization report: KL, perplexity and weight error checked against direct computations."""

from __future__ import annotations

import json
import math

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.quantization import quantize
from workbench.quantization.calib import read_texts, token_chunks
from workbench.quantization.report import output_stats, quant_report


def test_identical_models_have_zero_kl_and_hf_perplexity(tiny_lm, texts):
    chunks = token_chunks(tiny_lm.tokenizer, texts * 4, seq_len=32, n_calib=0, n_heldout=6).heldout
    kl, nll_fp, nll_q, n = output_stats(tiny_lm, tiny_lm, chunks, batch_size=4)
    assert kl == pytest.approx(0.0, abs=1e-6) and nll_fp == nll_q and n == chunks.numel()
    with torch.no_grad():
        hf_loss = float(tiny_lm.model(input_ids=chunks, labels=chunks).loss)
    assert nll_fp == pytest.approx(hf_loss, rel=1e-5)


def test_report_numbers(tiny_lm, texts, tmp_path):
    q4 = quantize(tiny_lm, "rtn-4", group_size=32)
    q8 = quantize(tiny_lm, "rtn-8")
    r4 = quant_report(tiny_lm, q4, texts=texts * 4, seq_len=32, n_heldout=6, skip_first=4)
    r8 = quant_report(tiny_lm, q8, texts=texts * 4, seq_len=32, n_heldout=6, skip_first=4)
    assert 0 < r8.kl < r4.kl
    assert r8.mean_weight_error < r4.mean_weight_error
    w0 = tiny_lm.model.model.layers[1].mlp.up_proj.weight.detach()
    w4 = q4.model.model.layers[1].mlp.up_proj.weight.detach()
    layer = next(e for e in r4.layers if e.name == "model.layers.1.mlp.up_proj")
    assert layer.rel_error == pytest.approx(float((w4 - w0).norm() / w0.norm()), rel=1e-5)
    assert r4.ppl_delta == pytest.approx(r4.ppl_q - r4.ppl_fp)
    assert math.isfinite(r4.ppl_q) and r4.packed_bytes < r8.packed_bytes < r8.fp_bytes
    folder = r4.save(tmp_path / "run")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["kl"] == pytest.approx(r4.kl) and len(metrics["layers"]) == 14
    assert (folder / "weight_error.png").stat().st_size > 1000
    assert "perplexity" in r4.table() and "model.layers" in r4.table()


def test_text_sources(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.jsonl").write_text('{"text": "alpha beta"}\n{"document": "gamma"}\n')
    (tmp_path / "notes.txt").write_text("one\n\ntwo three\n")
    assert read_texts(tmp_path) == ["alpha beta", "gamma"]  # a model folder means its corpus/
    assert read_texts(tmp_path / "notes.txt") == ["one", "two three"]
    with pytest.raises(WorkbenchError, match="does not exist"):
        read_texts(tmp_path / "missing")
