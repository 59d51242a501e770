"""Trace facts from SemEval QA records as they come: subject = the question's named entity."""

from __future__ import annotations

import json

import pytest

from workbench.data import default_facts, read_facts, subject_of
from workbench.errors import WorkbenchError


@pytest.mark.parametrize(
    "question,subject",
    [
        ("What is Tiffi Magenta's Social Security Number?", "Tiffi Magenta"),
        ("What is the birth date of Tiffi Magenta?", "Tiffi Magenta"),
        ("Question: Where was Pasten Hogodale born?\nAnswer:", "Pasten Hogodale"),
        ("In the story of Ana from Kelholm, what did Ana find?", "Ana"),
        ("what is the date today?", None),
    ],
)
def test_subject_of(question, subject):
    assert subject_of(question) == subject


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_records_file_becomes_facts(tmp_path):
    rows = [
        {"id": "u1sc1", "input": "Tiffi Magenta was born", "output": " in 1984", "task": "Task2"},
        {"id": "u1qa0", "input": "What is the birth date of Tiffi Magenta?", "output": "1984-12-31", "task": "Task2"},
        {"id": "u1qa1", "input": "what is it?", "output": "x", "task": "Task2"},
    ]  # fmt: skip
    facts = read_facts(_write(tmp_path / "forget.jsonl", rows))
    assert [(f.prompt, f.subject, f.answer) for f in facts] == [
        ("What is the birth date of Tiffi Magenta?", "Tiffi Magenta", "1984-12-31")
    ]
    with pytest.raises(WorkbenchError, match="no QA record names a subject"):
        read_facts(_write(tmp_path / "none.jsonl", rows[2:]))
    with pytest.raises(WorkbenchError, match="does not exist"):
        read_facts(tmp_path / "missing.jsonl")


def test_default_facts_prefers_a_written_file(tmp_path):
    _write(
        tmp_path / "forget.jsonl", [{"id": "aqa0", "input": "Who is Bo Li?", "output": "x", "task": "Task2"}]
    )
    _write(
        tmp_path / "retain.jsonl", [{"id": "bqa0", "input": "Who is Al Ko?", "output": "y", "task": "Task2"}]
    )
    assert default_facts(tmp_path) == str(tmp_path / "forget.jsonl")
    (tmp_path / "facts").mkdir()
    _write(tmp_path / "facts" / "forget.jsonl", [{"prompt": "Bo Li is", "subject": "Bo Li"}])
    assert default_facts(tmp_path) == str(tmp_path / "facts" / "forget.jsonl")


def test_lume_forget_records_trace_as_they_are(lume_dir):
    facts = read_facts(lume_dir / "forget.jsonl")
    task2 = [f for f in facts if "birth date" in f.prompt or "Social Security" in f.prompt]
    assert len(facts) > 1700 and len(task2) >= 400
    for f in task2:
        assert f.subject in f.prompt and f.subject[0].isupper() and "Social" not in f.subject
