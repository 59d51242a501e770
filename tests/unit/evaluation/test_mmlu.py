"""MMLU: our wrapper's numbers equal lm-eval's ``simple_evaluate`` on the same model and files."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.evaluation.mmlu import evaluate_mmlu

SUBJECTS = ("anatomy", "world_history", "abstract_algebra")


def _item(subject: str, i: int) -> list[str]:
    q = f"Which {subject.replace('_', ' ')} fact number {i} about Paris is true?"
    return [
        q,
        f"Paris {i}",
        f"London {i * 2}",
        "The quick fox",
        f"Rome {i + 3}",
        "ABCD"[(i * 7 + len(subject)) % 4],
    ]


@pytest.fixture
def mmlu_dir(tmp_path: Path) -> Path:
    """A hand-written MMLU folder: three subjects, per-subject CSVs, no header, dev/ and test/."""
    for split, n in (("dev", 3), ("test", 6)):
        (tmp_path / split).mkdir()
        for s in SUBJECTS:
            with open(tmp_path / split / f"{s}_{split}.csv", "w", newline="") as f:
                csv.writer(f).writerows(_item(s, i + (100 if split == "dev" else 0)) for i in range(n))
    return tmp_path


def _reference(lm, root: Path, tmp: Path, k: int, formulation: str = "mcf") -> dict[str, float]:
    """lm-eval on the raw CSVs through a task YAML written here by hand (lm-eval's MMLU prompts)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tasks = tmp / f"ref_tasks_{formulation}"
    tasks.mkdir()
    if formulation == "cf":  # lm-eval's mmlu_continuation: the question alone, choice texts scored
        kind = "questions"
        text = "Question: {{question.strip()}}\\nAnswer:"
        choice = '"{{[A, B, C, D]}}"'
    else:
        kind = "multiple choice questions"
        text = "{{question.strip()}}\\nA. {{A}}\\nB. {{B}}\\nC. {{C}}\\nD. {{D}}\\nAnswer:"
        choice = '["A", "B", "C", "D"]'
    for s in SUBJECTS:
        (tasks / f"ref_{s}.yaml").write_text(
            textwrap.dedent(f"""\
            task: ref_{s}
            dataset_path: csv
            dataset_kwargs:
              data_files:
                test: {root}/test/{s}_test.csv
                dev: {root}/dev/{s}_dev.csv
              column_names: [question, A, B, C, D, answer]
            test_split: test
            fewshot_split: dev
            fewshot_config:
              sampler: first_n
            output_type: multiple_choice
            description: "The following are {kind} (with answers) about {s.replace("_", " ")}.\\n\\n"
            doc_to_text: "{text}"
            doc_to_choice: {choice}
            doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(answer)}}}}"
            metric_list:
              - metric: acc
                aggregation: mean
                higher_is_better: true
            """)
        )
    res = simple_evaluate(
        model=HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=4),
        tasks=[f"ref_{s}" for s in SUBJECTS],
        num_fewshot=k,
        bootstrap_iters=0,
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
    )
    return {s: res["results"][f"ref_{s}"]["acc,none"] for s in SUBJECTS}


@pytest.mark.parametrize("k,formulation", [(0, "mcf"), (2, "mcf"), (0, "cf"), (2, "cf")])
def test_wrapper_equals_lm_eval(tiny_olmo2, mmlu_dir, tmp_path, k, formulation):
    ref = _reference(tiny_olmo2, mmlu_dir, tmp_path, k, formulation)
    ours = evaluate_mmlu(tiny_olmo2, mmlu_dir, num_fewshot=k, batch_size=4, formulation=formulation)
    assert ours.formulation == formulation
    assert {s.subject: s.acc for s in ours.subjects} == pytest.approx(ref)
    assert all(s.n == 6 for s in ours.subjects)
    assert ours.macro == pytest.approx(sum(ref.values()) / len(ref))
    assert ours.micro == pytest.approx(sum(ref.values()) / len(ref))  # equal sizes: micro == macro


def test_jsonl_layout_equals_csv_layout(tiny_olmo2, mmlu_dir, tmp_path):
    jsonl = tmp_path / "as_jsonl"
    jsonl.mkdir()
    for split in ("dev", "test"):
        with open(jsonl / f"{split}.jsonl", "w") as f:
            for s in SUBJECTS:
                for row in csv.reader(open(mmlu_dir / split / f"{s}_{split}.csv")):
                    f.write(
                        json.dumps(
                            {
                                "question": row[0],
                                "subject": s,
                                "choices": row[1:5],
                                "answer": "ABCD".index(row[5]),
                            }
                        )
                        + "\n"
                    )
    a = evaluate_mmlu(tiny_olmo2, mmlu_dir, num_fewshot=1, batch_size=4)
    b = evaluate_mmlu(tiny_olmo2, jsonl, num_fewshot=1, batch_size=4)
    assert a.subjects == b.subjects


def test_micro_weights_by_size():
    from workbench.evaluation.mmlu import MMLUResult, SubjectScore

    r = MMLUResult([SubjectScore("a", 10, 0.5), SubjectScore("b", 30, 1.0)], 0, "x")
    assert r.macro == pytest.approx(0.75) and r.micro == pytest.approx((5 + 30) / 40)


def test_wrong_header_names_file_and_line(tiny_olmo2, mmlu_dir):
    bad = mmlu_dir / "test" / "anatomy_test.csv"
    rows = bad.read_text()
    bad.write_text("question,A,B,C,D,answer\n" + rows)
    with pytest.raises(WorkbenchError, match=r"anatomy_test\.csv:1: .*header"):
        evaluate_mmlu(tiny_olmo2, mmlu_dir)


def test_kshot_without_enough_dev(tiny_olmo2, mmlu_dir):
    with pytest.raises(WorkbenchError, match="5-shot"):
        evaluate_mmlu(tiny_olmo2, mmlu_dir, num_fewshot=5)
