"""SemEval-2025 Task 4 metrics: hand-computed aggregates, the harmonic-mean rule, the real LUME files."""

from __future__ import annotations

import pytest

from workbench.data import SemEvalRecord, read_semeval
from workbench.errors import WorkbenchError
from workbench.evaluation.semeval import evaluate_semeval, harmonic_mean, sample_records, score_generations


def _rec(rid: str, split: str, task: str, output: str) -> SemEvalRecord:
    return SemEvalRecord(rid, "prompt " + rid, output, task, split)


# (record, generation, expected score computed by hand)
CASES = [
    # ROUGE-L recall = LCS tokens / reference tokens; rouge_score lowercases and drops punctuation
    (_rec("a1sc1", "forget", "Task1", "the cat sat on the mat"), "the cat sat", 3 / 6),
    (_rec("a2sc1", "forget", "Task1", "Running dogs bark loudly"), "run dog", 2 / 4),  # stemmer on
    (_rec("a3qa1", "forget", "Task1", "Paris"), "  paris \n", 1.0),
    (_rec("a4qa1", "forget", "Task1", "Vell"), "Vell.", 0.0),  # exact match, punctuation counts
    (_rec("b1sc1", "retain", "Task1", "alpha beta gamma delta"), "alpha gamma", 2 / 4),
    (_rec("b2qa1", "retain", "Task1", "42"), "42", 1.0),
    (_rec("c1sc1", "forget", "Task2", "one two three four five"), "one two three four five six", 1.0),
    (_rec("c2qa1", "forget", "Task2", "Blue"), "Red", 0.0),
    (_rec("c3qa2", "forget", "Task2", "Blue"), "blue", 1.0),
    (_rec("d1sc1", "retain", "Task2", "x y z w"), "w z y x", 1 / 4),
    (_rec("d2qa1", "retain", "Task2", "yes"), "Yes", 1.0),
    (_rec("d3qa1", "retain", "Task2", "no"), "yes", 0.0),
]


def test_aggregate_matches_hand_computation():
    records = [c[0] for c in CASES]
    result = score_generations(records, [c[1] for c in CASES])
    assert [s.score for s in result.samples] == pytest.approx([c[2] for c in CASES])
    expected_cells = {  # split/task/metric -> mean of the scores above
        "forget/Task1/regurgitation": (0.5 + 0.5) / 2,
        "forget/Task1/knowledge": (1 + 0) / 2,
        "retain/Task1/regurgitation": 0.5,
        "retain/Task1/knowledge": 1.0,
        "forget/Task2/regurgitation": 1.0,
        "forget/Task2/knowledge": 0.5,
        "retain/Task2/regurgitation": 0.25,
        "retain/Task2/knowledge": 0.5,
    }
    assert {c.key: c.value for c in result.cells} == pytest.approx(expected_cells)
    # forget terms are 1 - v; forget/Task2/regurgitation is 1 -> term 0 -> the harmonic mean is 0
    assert result.task_aggregate == 0.0
    assert result.tasks == ["Task1", "Task2"]
    assert set(result.missing) == {
        f"{s}/Task3/{m}" for s in ("forget", "retain") for m in ("regurgitation", "knowledge")
    }


def test_aggregate_nonzero_hand_computation():
    cases = [c for c in CASES if c[0].id != "c1sc1"]  # drop the perfect forget regurgitation
    result = score_generations([c[0] for c in cases], [c[1] for c in cases])
    terms = [1 - 0.5, 1 - 0.5, 0.5, 1.0, 1 - 0.5, 0.25, 0.5]  # forget/Task2/regurgitation now absent
    assert sorted(c.term for c in result.cells) == pytest.approx(sorted(terms))
    assert result.task_aggregate == pytest.approx(len(terms) / sum(1 / t for t in terms))
    assert "forget/Task2/regurgitation" in result.missing


def test_harmonic_mean_zero_when_any_value_zero():
    assert harmonic_mean([0.9, 0.8, 0.0, 0.7]) == 0.0
    assert harmonic_mean([0.5, 0.5]) == pytest.approx(0.5)
    assert harmonic_mean([1.0, 0.25]) == pytest.approx(2 / (1 + 4))
    with pytest.raises(WorkbenchError):
        harmonic_mean([])


def test_mismatched_lengths_are_an_error():
    with pytest.raises(WorkbenchError, match="generations"):
        score_generations([CASES[0][0]], [])


def test_lume_sample_scored_on_tiny_model(lume_dir, tiny_olmo2):
    from rouge_score import rouge_scorer

    records = sample_records(read_semeval(lume_dir), 2, seed=0)
    assert len(records) == 2 * 12  # 2 splits x 3 tasks x 2 kinds, stray-quoted ids parsed
    result = evaluate_semeval(tiny_olmo2, records, max_new_tokens=8, batch_size=8)
    assert len(result.cells) == 12 and result.missing == [] and result.tasks == ["Task1", "Task2", "Task3"]
    # the official call: scorer.score(gt, gen)['rougeL'].recall with the stemmer on
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for s in result.samples:
        if s.kind == "sc":
            assert s.score == pytest.approx(scorer.score(s.output, s.generation)["rougeL"].recall)
        else:
            assert s.score == float(s.output.strip().lower() == s.generation.strip().lower())
    terms = [c.term for c in result.cells]
    expected = 0.0 if min(terms) == 0 else len(terms) / sum(1 / t for t in terms)
    assert result.task_aggregate == pytest.approx(expected)


def test_qa_by_part_separates_the_given_records_from_the_unseen_ones():
    recs = [
        SemEvalRecord("a1qa0", "q", "Paris", "Task1", "forget", "train"),
        SemEvalRecord("a2qa0", "q", "Rome", "Task1", "forget", "train"),
        SemEvalRecord("a3qa0", "q", "Oslo", "Task1", "forget", "validation"),
        SemEvalRecord("b1qa0", "q", "Lima", "Task1", "retain", "validation"),
        SemEvalRecord("b2sc0", "q", "a b", "Task1", "retain", "validation"),
    ]
    res = score_generations(recs, ["Paris", "no", "Oslo", "no", "a b"])
    assert res.overall["forget/train/knowledge"] == 0.5 and res.overall["forget/validation/knowledge"] == 1.0
    assert (
        res.overall["retain/validation/knowledge"] == 0.0
        and res.overall["retain/validation/regurgitation"] == 1.0
    )
    assert "retain/train/knowledge" not in res.overall and res.samples[2].part == "validation"
    no_parts = score_generations([_rec("c1qa0", "forget", "Task1", "x")], ["x"])
    assert set(no_parts.overall) == {"forget/overall/knowledge"}
