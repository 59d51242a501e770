"""``workbench eval`` on the tiny organism: artifacts, the printed table, one-line errors (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.cli import main


def test_eval_cli_all_suites(organism_tiny, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "eval",
            "--model",
            str(organism_tiny.path),
            "--data",
            str(organism_tiny.path),
            "--suite",
            "semeval,mia,mmlu,stability",
            "--out",
            str(out),
            "--max-new-tokens",
            "24",
            "--limit",
            "3",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "task aggregate" in printed and "min_k_pp" in printed and "final" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    parts = (metrics["semeval"]["task_aggregate"], metrics["mia"]["score"], metrics["mmlu"]["acc"])
    assert metrics["final"] == pytest.approx(sum(parts) / 3)
    # the organism's utility set is read in the cloze formulation, through lm-eval, and reproduces the
    # number on the organism's own scorecard (computed by our scorer)
    assert metrics["mmlu"]["formulation"] == "cf"
    assert metrics["mmlu"]["acc"] == pytest.approx(organism_tiny.card.utility_accuracy, abs=1e-9)
    assert metrics["semeval"]["tasks_present"] == ["Task1", "Task2", "Task3"]
    # before unlearning the organism's members are clearly separable by the LOSS attack
    assert metrics["mia"]["loss/auc"] > 0.8
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["suite"] for s in samples} == {"semeval", "mia"}


def _broken_copy(org_path: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data_copy"
    shutil.copytree(org_path / "data", data / "data")
    return data


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda rows: rows[:1] + [{k: v for k, v in rows[1].items() if k != "output"}] + rows[2:],
            "forget_train.jsonl:2: missing field(s) output",
        ),
        (
            lambda rows: rows[:2] + [dict(rows[2], task="Task7")] + rows[3:],
            "forget_train.jsonl:3: unknown task",
        ),
        (lambda rows: [], "the forget split (train) is empty"),
    ],
)
def test_eval_cli_bad_data(organism_tiny, tmp_path, capsys, edit, message):
    from workbench.io import read_jsonl, write_jsonl

    data = _broken_copy(Path(organism_tiny.path), tmp_path)
    f = data / "data" / "forget_train.jsonl"
    rows = read_jsonl(f)
    write_jsonl(f, edit(rows))
    if not edit(rows):
        (data / "data" / "forget_validation.jsonl").unlink()
    code = main(
        [
            "eval",
            "--model",
            str(organism_tiny.path),
            "--data",
            str(data),
            "--suite",
            "semeval",
            "--part",
            "train",
            "--max-new-tokens",
            "2",
        ]
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0]  # one line naming file and line


def test_eval_cli_wrong_mmlu_header(organism_tiny, tmp_path, capsys):
    (tmp_path / "mmlu" / "test").mkdir(parents=True)
    (tmp_path / "mmlu" / "test" / "anatomy_test.csv").write_text("question,A,B,C,D,answer\nq,a,b,c,d,A\n")
    code = main(
        [
            "eval",
            "--model",
            str(organism_tiny.path),
            "--data",
            str(organism_tiny.path),
            "--suite",
            "mmlu",
            "--mmlu",
            str(tmp_path / "mmlu"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "anatomy_test.csv:1:" in err and "header" in err


def test_eval_cli_unknown_suite(organism_tiny, capsys):
    code = main(
        ["eval", "--model", str(organism_tiny.path), "--data", str(organism_tiny.path), "--suite", "bleu"]
    )
    assert code == 2 and "unknown suite" in capsys.readouterr().err
