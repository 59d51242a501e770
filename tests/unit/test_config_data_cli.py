"""Strict configs, the shared data readers (incl. the public LUME files) and the CLI's error contract."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from workbench.cli import main
from workbench.config import dump_config, load_config, read_yaml
from workbench.data import read_facts, read_mia, read_mmlu, read_semeval, record_kind
from workbench.errors import WorkbenchError


@dataclasses.dataclass
class Inner:
    """Inner block."""

    lr: float = 1e-3
    layers: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Outer:
    """Outer config."""

    name: str = "x"
    steps: int = 10
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_config_strict_overrides_and_roundtrip(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: run\ninner:\n  lr: 0.01\n  layers: [1, 2]\n")
    cfg = load_config(Outer, f, overrides=["steps=5", "inner.lr=3e-4"])
    assert cfg == Outer("run", 5, Inner(3e-4, [1, 2]))
    dump_config(cfg, tmp_path / "out.yaml")
    assert load_config(Outer, tmp_path / "out.yaml") == cfg
    f.write_text("name: run\ninnr: {}\n")
    with pytest.raises(WorkbenchError, match="unknown key.*innr.*valid keys"):
        load_config(Outer, f)
    f.write_text("steps: many\n")
    with pytest.raises(WorkbenchError, match=r"steps: expected int"):
        load_config(Outer, f)
    f.write_text("name: [unclosed\n")
    with pytest.raises(WorkbenchError, match=r"c.yaml:\d+: malformed YAML"):
        read_yaml(f)


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_semeval_reader_organism_layout_and_errors(tmp_path):
    def rec(i, k, split):
        return {
            "id": f"p{i}{k}",
            "input": "in",
            "output": "out",
            "task": "Task2",
            "split": split,
        }  # noqa: E731

    _write(tmp_path / "data" / "forget_train.jsonl", [rec(1, "sc1", "forget"), rec(1, "qa0", "forget")])
    _write(tmp_path / "data" / "retain_train.jsonl", [rec(2, "qa3", "retain")])
    _write(tmp_path / "data" / "forget_validation.jsonl", [rec(3, "qa1", "forget")])
    _write(tmp_path / "data" / "retain_validation.jsonl", [rec(4, "sc1", "retain")])
    recs = read_semeval(tmp_path, part="train")
    assert [(r.split, r.kind, r.part) for r in recs] == [
        ("forget", "sc", "train"),
        ("forget", "qa", "train"),
        ("retain", "qa", "train"),
    ]
    assert len(read_semeval(tmp_path)) == 5
    _write(tmp_path / "bad" / "forget.jsonl", [{"id": "x", "input": "a", "task": "Task1"}])
    with pytest.raises(WorkbenchError, match=r"forget.jsonl:1: missing field\(s\) output"):
        read_semeval(tmp_path / "bad")
    _write(tmp_path / "bad" / "forget.jsonl", [{"id": "xsc1", "input": "a", "output": "b", "task": "Task9"}])
    with pytest.raises(WorkbenchError, match="unknown task 'Task9'"):
        read_semeval(tmp_path / "bad")
    _write(tmp_path / "bad" / "forget.jsonl", [{"id": "xsc1", "input": "a", "output": "b", "task": "Task1"}])
    _write(tmp_path / "bad" / "retain.jsonl", [])
    with pytest.raises(WorkbenchError, match="retain split is empty"):
        read_semeval(tmp_path / "bad")


def test_semeval_reader_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": 'a"qa0', "input": "q", "output": "a", "task": "Task1"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "forget.parquet")
    pq.write_table(pa.Table.from_pylist([dict(rows[0], id="bsc1")]), tmp_path / "retain.parquet")
    recs = read_semeval(tmp_path)
    assert [(r.split, r.kind) for r in recs] == [("forget", "qa"), ("retain", "sc")]


def test_semeval_reader_reads_the_public_lume_files(lume_dir):
    recs = read_semeval(lume_dir)
    assert {r.split for r in recs} == {"forget", "retain"}
    assert {r.task for r in recs} == {"Task1", "Task2", "Task3"}
    assert recs[0].id.startswith('"') and recs[0].kind == "sc"
    task2_qa = [r for r in recs if r.split == "forget" and r.task == "Task2" and r.kind == "qa"]
    assert len(task2_qa) == 5 * len(
        [r for r in recs if r.split == "forget" and r.task == "Task2" and r.kind == "sc"]
    )


def test_kind_rule():
    assert (
        record_kind('"abc"sc1') == "sc" and record_kind("xqa4") == "qa" and record_kind("zzz1") == "unknown"
    )


def test_mmlu_mia_and_facts_readers(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "astronomy_test.csv").write_text('"What orbits Earth?",Moon,Sun,Mars,Venus,A\n')
    items = read_mmlu(tmp_path)
    assert items[0].subject == "astronomy" and items[0].answer == 0 and items[0].choices[1] == "Sun"
    (tmp_path / "test" / "astronomy_test.csv").write_text("question,A,B,C,D,answer\n")
    with pytest.raises(WorkbenchError, match="no header"):
        read_mmlu(tmp_path)
    _write(
        tmp_path / "u" / "test.jsonl",
        [{"question": "q", "subject": "s", "choices": list("abcd"), "answer": 3}],
    )
    assert read_mmlu(tmp_path / "u")[0].answer == 3
    _write(tmp_path / "mia" / "member.jsonl", [{"id": "1", "document": "d"}])
    _write(tmp_path / "mia" / "nonmember.jsonl", [{"id": "2", "document": "e"}])
    members, non = read_mia(tmp_path)
    assert members[0].document == "d" and non[0].id == "2"
    _write(
        tmp_path / "f.jsonl", [{"prompt": "X was born in", "subject": "X", "answer": " Y"}, {"prompt": "p"}]
    )
    with pytest.raises(WorkbenchError, match=r"f.jsonl:2: missing field\(s\) subject"):
        read_facts(tmp_path / "f.jsonl")


def test_cli_help_is_fast_and_errors_are_one_line(capsys, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "organism" in out.stdout
    assert "torch" not in sys.modules or True
    code = subprocess.run(
        [sys.executable, "-c", "import workbench.cli, sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert code.stdout.strip() == "False"
    assert main(["organism", "info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_atomic_writes_keep_the_umask_mode_and_leave_no_temp_file(tmp_path):
    import os

    from workbench.io import atomic_path, write_text

    old = os.umask(0o022)
    try:
        out = write_text(tmp_path / "a.txt", "hello")
        assert out.read_text() == "hello" and (out.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600
        with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
        assert out.read_text() == "hello" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    finally:
        os.umask(old)
