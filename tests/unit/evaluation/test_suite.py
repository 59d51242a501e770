"""The evaluation suite: final score formula, artifacts, one-line errors naming file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.evaluation.suite import evaluate, parse_suites
from workbench.io import write_jsonl

SEMEVAL = [
    {"id": "p1sc1", "input": "The quick brown fox", "output": "jumps over the lazy dog", "task": "Task1"},
    {"id": "p1qa1", "input": "What is the capital of Norland?", "output": "Vell", "task": "Task2"},
    {"id": "p2qa2", "input": "Where was Mira born?", "output": "Halden", "task": "Task2"},
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A small folder in the organism layout: data/, mia/, utility/."""
    for split in ("forget", "retain"):
        write_jsonl(
            tmp_path / "data" / f"{split}_train.jsonl",
            [dict(r, id=f"{split[0]}{r['id']}", split=split) for r in SEMEVAL],
        )
    write_jsonl(
        tmp_path / "mia" / "member.jsonl",
        [{"id": i, "document": f"Paris London Berlin {i} Rome."} for i in range(4)],
    )
    write_jsonl(
        tmp_path / "mia" / "nonmember.jsonl",
        [{"id": i, "document": f"The quick fox {i} jumps."} for i in range(4)],
    )
    items = [
        {
            "question": f"What is {i} plus {i}?",
            "subject": "arithmetic",
            "choices": ["1", "2", "3", str(2 * i)],
            "answer": 3,
        }
        for i in range(4)
    ]
    write_jsonl(tmp_path / "utility" / "test.jsonl", items)
    write_jsonl(tmp_path / "utility" / "dev.jsonl", items[:2])
    return tmp_path


def test_full_suite_writes_artifacts(tiny_olmo2, data_dir, tmp_path):
    out = tmp_path / "run"
    report = evaluate(tiny_olmo2, data_dir, out=out, max_new_tokens=6, batch_size=4)
    assert report.final == pytest.approx(
        (report.semeval.task_aggregate + report.mia.score + report.mmlu.acc) / 3
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"] == pytest.approx(report.final)
    assert metrics["semeval"]["tasks_present"] == ["Task1", "Task2"]
    assert "forget/Task3/knowledge" in metrics["semeval"]["cells_missing"]
    assert set(metrics["mia"]) >= {"loss/auc", "zlib/auc", "min_k/auc", "min_k_pp/auc", "score"}
    assert metrics["mmlu"]["n"] == 4 and len(metrics["stability"]["max_attn_logit_per_layer"]) == 2
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sum(r["suite"] == "semeval" for r in rows) == 6 and sum(r["suite"] == "mia" for r in rows) == 8
    assert "task aggregate" in report.table() and "final" in report.table()


def test_partial_suites_have_no_final(tiny_olmo2, data_dir):
    report = evaluate(tiny_olmo2, data_dir, suites="mia", batch_size=4)
    assert report.final is None and report.semeval is None and report.mia is not None


def test_unknown_suite():
    with pytest.raises(WorkbenchError, match="unknown suite"):
        parse_suites("semeval,bleu")


@pytest.mark.parametrize(
    "row, match",
    [
        ({"id": "x1sc1", "input": "a", "task": "Task1"}, r"forget_train\.jsonl:2: missing field"),
        (
            {"id": "x1sc1", "input": "a", "output": "b", "task": "Task9"},
            r"forget_train\.jsonl:2: unknown task",
        ),
    ],
)
def test_bad_semeval_records_name_file_and_line(tiny_olmo2, data_dir, row, match):
    f = data_dir / "data" / "forget_train.jsonl"
    lines = f.read_text().splitlines()
    f.write_text("\n".join([lines[0], json.dumps(row)] + lines[1:]) + "\n")
    with pytest.raises(WorkbenchError, match=match):
        evaluate(tiny_olmo2, data_dir, suites="semeval", max_new_tokens=2)


def test_empty_split(tiny_olmo2, data_dir):
    (data_dir / "data" / "retain_train.jsonl").write_text("")
    with pytest.raises(WorkbenchError, match="retain split.*empty"):
        evaluate(tiny_olmo2, data_dir, suites="semeval", max_new_tokens=2)


def test_wrong_mmlu_header(tiny_olmo2, data_dir, tmp_path):
    mmlu = tmp_path / "mmlu"
    (mmlu / "test").mkdir(parents=True)
    with open(mmlu / "test" / "astronomy_test.csv", "w", newline="") as f:
        csv.writer(f).writerows([["question", "A", "B", "C", "D", "answer"], ["q", "a", "b", "c", "d", "A"]])
    with pytest.raises(WorkbenchError, match=r"astronomy_test\.csv:1: .*header"):
        evaluate(tiny_olmo2, data_dir, suites="mmlu", mmlu=mmlu)
