"""CounterFact metrics, ROME's n-gram entropy, the organism scores, the before/after plot."""

from __future__ import annotations

import json
import math

import torch

from workbench.editing import evaluate_requests, ngram_entropy, organism_scores, save_before_after
from workbench.editing.eval import continuation_scores


def test_ngram_entropy_by_hand():
    # "a b a b": bigrams (a,b) x2, (b,a) x1 -> H2; trigrams (a,b,a), (b,a,b) -> 1 bit; weights 2/3, 4/3
    h2 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert abs(ngram_entropy(["a b a b"]) - (2 / 3 * h2 + 4 / 3 * 1.0) / 2) < 1e-12
    assert ngram_entropy(["the cat sat on the mat today"]) > ngram_entropy(["the the the the the the the"])


def test_continuation_scores_by_hand(lm3):
    prompt, cont = "Mira Okafor was born in", " Paris"
    ((nll, argmax),) = continuation_scores(lm3, [(prompt, cont)])
    p = lm3.tokenizer(prompt)["input_ids"]
    c = lm3.tokenizer(cont, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(lm3.model(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
    want = -sum(float(logp[len(p) - 1 + i, t]) for i, t in enumerate(c)) / len(c)
    assert abs(nll - want) < 1e-4
    assert argmax == all(int(logp[len(p) - 1 + i].argmax()) == t for i, t in enumerate(c))


def test_metrics_use_neighbour_answers(lm3, request_dict):
    m = evaluate_requests(lm3, [request_dict])
    assert m.n_requests == 1 and 0 <= m.score <= 1
    (req,) = m.per_request
    assert len(req.efficacy) == 1 and len(req.paraphrase) == 1 and len(req.neighborhood) == 1
    # the neighbour's own answer (" London") is compared with the new target, not target_true
    nll = dict(
        zip(
            ["new", "london", "true"],
            [
                s
                for s, _ in continuation_scores(
                    lm3,
                    [(request_dict["neighborhood_prompts"][0], x) for x in (" Paris", " London", " Halden")],
                )
            ],
        )
    )
    assert req.neighborhood[0][0] == float(nll["london"] < nll["new"])
    same = dict(request_dict, neighborhood_answers=["Paris"])  # a neighbour whose answer is the new target
    assert math.isnan(evaluate_requests(lm3, [same]).per_request[0].neighborhood[0][0])


def test_organism_scores_and_plot(lm3, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "utility").mkdir()
    for split in ("retain_train", "retain_validation"):
        rows = [
            {"id": f"x{split}qa0", "input": "Question: Where?\nAnswer:", "output": " Paris", "task": "Task2"}
        ]
        (tmp_path / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    item = {
        "question": "Capital?",
        "subject": "geo",
        "choices": ["Paris", "Rome", "Vell", "Halden"],
        "answer": 0,
    }
    (tmp_path / "utility" / "test.jsonl").write_text(json.dumps(item) + "\n")
    s = organism_scores(lm3, tmp_path, splits=("retain_train", "retain_validation"))
    d = s.as_dict()
    assert set(d) == {
        "qa_em_retain_train",
        "qa_em_retain_validation",
        "qa_em_forget",
        "qa_em_retain",
        "utility",
    }
    assert d["qa_em_retain"] in (0.0, 1.0) and d["utility"] in (0.0, 1.0)
    png = save_before_after(
        tmp_path / "plot.png", {"efficacy": 0.1, "utility": 0.9}, {"efficacy": 1.0, "utility": 0.88}
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_edit_and_evaluate_writes_the_run_folder(lm3, request_dict, source, tmp_path, fast):
    from workbench.editing import edit_and_evaluate

    run = edit_and_evaluate(
        lm3, [request_dict], "rome", layers=[1], stats_source=source, progress=False, **fast
    )
    assert set(run.before) == set(run.after) and "efficacy_score" in run.before
    folder = run.save(tmp_path / "run", model=False)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["edit"]["method"] == "rome" and metrics["edit"]["layers"] == [1]
    assert (folder / "before_after.png").is_file() and "| efficacy_score |" in (
        folder / "before_after.md"
    ).read_text()
