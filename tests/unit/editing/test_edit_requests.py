"""Edit requests: CounterFact's fields, the organism's extras, '{}' placeholders, one-line errors."""

from __future__ import annotations

import json

import pytest

from workbench.editing import EditRequest, load_requests, read_requests
from workbench.errors import WorkbenchError

ORGANISM_ROW = {
    "case_id": 0,
    "side": "retain",
    "split": "train",
    "relation": "birth_city",
    "prompt": "Pasten Hogodale was born in the city of",
    "subject": "Pasten Hogodale",
    "target_true": " Tedor",
    "target_new": " Cador",
    "paraphrase_prompts": ["Question: In which city was Pasten Hogodale born?\nAnswer:"],
    "neighborhood_prompts": ["Bosis Lethholm was born in the city of"],
    "neighborhood_answers": [" Tedor"],
}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_organism_record_keeps_extras_and_roundtrips(tmp_path):
    (req,) = read_requests(_write(tmp_path / "r.jsonl", [ORGANISM_ROW]))
    assert req.extra == {"case_id": 0, "side": "retain", "split": "train", "relation": "birth_city"}
    assert req.neighborhood_answers == (" Tedor",) and req.target_new == " Cador"
    assert load_requests([req.to_dict()])[0] == req


def test_placeholder_and_leading_space():
    (req,) = load_requests(
        [
            {
                "prompt": "{} plays the",
                "subject": "Ann Lee",
                "target_new": "violin",
                "paraphrase_prompts": ["{} is a"],
            }
        ]
    )
    assert req.prompt == "Ann Lee plays the" and req.target_new == " violin"
    assert req.paraphrase_prompts == ("Ann Lee is a",) and isinstance(req, EditRequest)


def test_folder_with_edits_requests(tmp_path):
    (tmp_path / "edits").mkdir()
    _write(tmp_path / "edits" / "requests.jsonl", [ORGANISM_ROW])
    assert len(read_requests(tmp_path)) == 1


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"subject": "Mira Okafor"}, "does not occur in the prompt"),
        ({"target_new": "  "}, "target_new is empty"),
        ({"target_new": None}, "missing field(s) target_new"),
        ({"neighborhood_answers": [" a", " b"]}, "2 neighborhood_answers for 1"),
    ],
)
def test_one_line_errors_name_the_record(tmp_path, change, needle):
    row = {**ORGANISM_ROW, **change}
    path = _write(tmp_path / "bad.jsonl", [ORGANISM_ROW, row])
    with pytest.raises(WorkbenchError) as e:
        read_requests(path)
    msg = str(e.value)
    assert needle in msg and f"{path}:2" in msg and "\n" not in msg


def test_missing_fields_and_empty_file(tmp_path):
    path = _write(tmp_path / "m.jsonl", [{"prompt": "x", "case_id": 3}])
    with pytest.raises(WorkbenchError, match=r"m.jsonl:1: missing field\(s\) subject, target_new"):
        read_requests(path)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(WorkbenchError, match="holds no edit requests"):
        read_requests(empty)
