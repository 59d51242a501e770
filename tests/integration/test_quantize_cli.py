"""``workbench quantize`` end to end: the report run folder, the relapse check, and the organism at int8."""

from __future__ import annotations

import json

import pytest
import torch

from workbench.cli import main
from workbench.io import write_jsonl
from workbench.models.tiny import _TEXT, tiny_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A saved tiny OLMo-2 with a corpus/ (default calibration text) and SemEval files in data/."""
    root = tmp_path_factory.mktemp("tiny_model")
    lm = tiny_model("olmo2")
    lm.model.save_pretrained(root)
    lm.tokenizer.save_pretrained(root)
    words = _TEXT.split()
    write_jsonl(
        root / "corpus" / "train.jsonl", [{"text": " ".join(words[i:] + words[:i])} for i in range(40)]
    )
    for split in ("forget", "retain"):
        rows = [
            {
                "id": f"{split}{i}qa0",
                "input": "Question: What is the capital of Norland?\nAnswer:",
                "output": "Vell",
                "task": "Task1",
            }
            for i in range(2)
        ]
        rows += [
            {
                "id": f"{split}{i}sc1",
                "input": "The quick brown fox",
                "output": "jumps over the lazy dog",
                "task": "Task2",
            }
            for i in range(2)
        ]
        write_jsonl(root / "data" / f"{split}_train.jsonl", rows)
    return root


def test_cli_quantize_gptq_writes_report(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "quantize",
            "--model",
            str(tiny_folder),
            "--method",
            "gptq-4",
            "--group-size",
            "32",
            "--seq-len",
            "32",
            "--n-samples",
            "8",
            "--n-heldout",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and "output KL" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["method"] == "gptq"
        and metrics["options"]["bits"] == 4
        and metrics["options"]["group_size"] == 32
    )
    assert metrics["kl"] > 0 and metrics["packed_bytes"] < metrics["fp_bytes"] / 2
    assert (out / "weight_error.png").is_file() and (out / "config.yaml").is_file()


def test_cli_eval_prints_relapse(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "quantize",
            "--model",
            str(tiny_folder),
            "--method",
            "rtn-3",
            "--n-heldout",
            "4",
            "--seq-len",
            "32",
            "--eval",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "relapse after rtn" in printed and "forget qa" in printed
    rel = json.loads((out / "relapse.json").read_text())
    for key in (
        "forget_qa_before",
        "forget_qa_after",
        "forget_qa_rise_points",
        "forget_regurgitation_rise_points",
    ):
        assert key in rel
    assert rel["forget_regurgitation_rise_points"] == pytest.approx(
        100 * (rel["forget_regurgitation_after"] - rel["forget_regurgitation_before"])
    )


def test_cli_errors(tiny_folder, tmp_path, capsys):
    assert main(["quantize", "--model", str(tiny_folder), "--method", "int3", "--out", str(tmp_path)]) == 2
    assert "unknown quantization method 'int3'" in capsys.readouterr().err
    assert (
        main(
            [
                "quantize",
                "--model",
                str(tiny_folder),
                "--method",
                "bnb-nf4",
                "--bits",
                "4",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "has no option bits" in capsys.readouterr().err


def _retain_qa(folder):
    from workbench.data import read_semeval

    return [r for r in read_semeval(folder, splits=("retain",)) if r.kind == "qa"][:30]


def test_organism_answers_retain_qa_at_int8(organism_tiny):
    """A quantized organism still answers most retain QA at int8, like the fp32 model does."""
    pytest.importorskip("bitsandbytes")
    from workbench.evaluation import exact_match, generate_greedy
    from workbench.models import load
    from workbench.quantization import quantize

    lm = load(organism_tiny.path)
    q = quantize(lm, "bnb-int8")
    records = _retain_qa(organism_tiny.path)
    prompts = [r.input for r in records]
    with torch.no_grad():
        fp = generate_greedy(lm.model, lm.tokenizer, prompts, max_new_tokens=24, batch_size=16)
        qa = generate_greedy(q.model, q.tokenizer, prompts, max_new_tokens=24, batch_size=16)
    fp_right = [bool(exact_match(g, r.output)) for g, r in zip(fp, records)]
    q_right = [bool(exact_match(g, r.output)) for g, r in zip(qa, records)]
    assert sum(fp_right) >= 0.5 * len(records), "the fp32 organism should know its retain set"
    kept = sum(a and b for a, b in zip(fp_right, q_right))
    assert kept >= 0.8 * sum(fp_right)
