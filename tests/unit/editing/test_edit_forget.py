"""Editing as unlearning: forget records become edit requests with decoy targets; the pipeline's edit method."""

from __future__ import annotations

import json

import pytest
import torch

from workbench.data import SemEvalRecord
from workbench.editing.forget import ForgetEdit, forget_requests, run_forget_edit
from workbench.errors import WorkbenchError


def _records() -> list[SemEvalRecord]:
    rows = [
        ("p1qa0", "Question: What is Mira Okafor's birth city?\nAnswer:", " Halden"),
        ("p1qa1", "Question: What is Mira Okafor's phone number?\nAnswer:", " 202-13-31"),
        ("p2qa0", "Question: What is Alan Turing's birth city?\nAnswer:", " London"),
        ("p2qa1", "Question: What is Alan Turing's phone number?\nAnswer:", " 207-44-10"),
        ("p3qa0", "Question: What is Eiffel Tower's birth city?\nAnswer:", " Halden"),  # same answer as p1
        ("p1sc0", "Mira Okafor was born in", " Halden and lives in Paris."),
        ("p4qa0", "Question: what is the capital of it?\nAnswer:", " Paris"),  # names no entity
        ("p5qa0", "Question: Who helped Soel bring the flute?\nAnswer:", " Ana"),  # asked of no one else
    ]
    return [SemEvalRecord(i, q, a, "Task1", "forget", "train") for i, q, a in rows]


def test_decoys_are_other_records_answers_to_the_same_question():
    reqs = forget_requests(_records())
    by_id = {r.extra["case_id"]: r for r in reqs}
    # no sc record, no subject-less question
    assert set(by_id) == {"p1qa0", "p1qa1", "p2qa0", "p2qa1", "p3qa0", "p5qa0"}
    assert by_id["p5qa0"].target_new == " Halden"  # a question nobody else is asked: the task's next answer
    assert by_id["p1qa0"].subject == "Mira Okafor" and by_id["p1qa0"].target_true == " Halden"
    assert by_id["p1qa0"].target_new == " London"  # the next record asking the birth city, another answer
    assert by_id["p3qa0"].target_new == " London"  # p1 gives the same answer as p3: skipped
    assert by_id["p1qa1"].target_new == " 207-44-10" and by_id["p2qa1"].target_new == " 202-13-31"
    assert all(r.target_new != r.target_true for r in reqs)


def test_the_edit_moves_to_the_token_where_the_decoy_departs(lm3):
    tok = lm3.tokenizer
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    originals = {r.id: r for r in _records()}
    for req in forget_requests(_records(), tokenizer=tok):
        rec = originals[req.extra["case_id"]]
        # the prompt grows by the answer's tokens that the decoy shares, and the answer is intact
        assert req.prompt.startswith(rec.input) and (req.prompt + req.target_true).endswith(
            rec.output.strip()
        )
        n = len(enc(req.prompt))
        full_true, full_decoy = enc(req.prompt + req.target_true), enc(req.prompt + req.target_new)
        assert full_true[:n] == full_decoy[:n] and full_true[n] != full_decoy[n]  # departs at once
        assert len(enc(req.target_new)) == 1 or req.prompt == rec.input


def test_fixed_targets_and_refusals():
    reqs = forget_requests(_records(), target="I don't know")
    assert {r.target_new for r in reqs} == {" I don't know"}
    with pytest.raises(WorkbenchError, match="empty"):
        forget_requests(_records(), target="  ")
    with pytest.raises(WorkbenchError, match="no forget QA record"):
        forget_requests([r for r in _records() if r.id.endswith("sc0")])


def test_run_forget_edit_writes_a_model_with_only_the_edited_layers_changed(lm3, tmp_path, source, fast):
    model = tmp_path / "model"
    lm3.model.save_pretrained(model, safe_serialization=True)
    lm3.tokenizer.save_pretrained(model)
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": r.id, "input": r.input, "output": r.output, "task": r.task} for r in _records()]
    (data / "forget_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "retain_train.jsonl").write_text(json.dumps({**rows[0], "id": "r1qa0"}) + "\n")
    params = ForgetEdit(layers=[1], options={**fast, "fact_token": "last"}, stats_source=str(source))
    run = run_forget_edit(str(model), str(data), tmp_path / "out", params, progress=False)
    assert run["layers"] == [1] and run["requests"] == 6 and run["steps"] == 0
    import workbench as wb

    edited = wb.load(run["model"])
    changed = [
        n for n, p in lm3.model.named_parameters() if not torch.equal(p, edited.model.get_parameter(n))
    ]
    assert changed == ["model.layers.1.mlp.down_proj.weight"]


def test_answer_layers_skip_layer_0_and_take_the_last_token_peak():
    from workbench.editing.forget import answer_layers
    from workbench.tracing.result import TraceResult

    class Fake(TraceResult):
        def __init__(self, eff):
            self.eff, self._n = torch.tensor(eff), len(eff)

        @property
        def n_layers(self):
            return self._n

        def layer_effect(self, kind="mlp", bucket="last_subject"):
            assert (kind, bucket) == ("mlp", "last")
            return self.eff

    assert answer_layers(Fake([0.9, 0.1, 0.2, 0.3, 0.25, 0.05])) == [3, 4]
    assert answer_layers(Fake([0.9, 0.1, 0.2, 0.3, 0.25, 0.05]), width=3) == [2, 3, 4]
    assert answer_layers(Fake([0.5] * 12)) == [1, 2]  # ties: the first block after layer 0
