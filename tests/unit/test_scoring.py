"""Scoring primitives: hand-computed values and equivalence with HF / lm-eval."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.evaluation import (
    document_nll,
    exact_match,
    mc_accuracy,
    mc_choice_logprobs,
    mc_prompt,
    roc_auc,
    rouge_l_recall,
)

ITEMS = [
    {
        "question": "What is the capital of Norland?",
        "subject": "world_geography",
        "choices": ["Vell", "Paris", "Rome", "Berlin"],
        "answer": 0,
    },
    {"question": " What is 2 + 3? ", "subject": "arithmetic", "choices": ["4", "5", "6", "7"], "answer": 1},
    {
        "question": "The Eiffel Tower is located in",
        "subject": "world_geography",
        "choices": ["London", "Berlin", "Paris", "Halden"],
        "answer": 2,
    },
]


@pytest.fixture(scope="module")
def lm():
    from workbench.models.tiny import tiny_model

    return tiny_model("olmo2", seed=5)


def test_exact_match():
    assert exact_match(" 555-123-4567\n", "555-123-4567")
    assert exact_match("HALDEN", " halden ")
    assert not exact_match("Halden.", "Halden")
    assert not exact_match("", "x")


def test_rouge_l_recall_hand_computed():
    # LCS of "the cat on mat" inside "the cat sat on the mat" is 4 of the reference's 6 tokens
    assert rouge_l_recall("the cat on mat", "the cat sat on the mat") == pytest.approx(4 / 6)
    assert rouge_l_recall("The cat sat on the mat.", "the cat sat on the mat") == pytest.approx(1.0)
    # the Porter stemmer makes "running dogs" match "run dog"
    assert rouge_l_recall("running dogs", "run dog") == pytest.approx(1.0)
    assert rouge_l_recall("completely different", "the cat sat") == 0.0


def test_roc_auc_hand_computed():
    assert roc_auc([3, 2], [1, 2]) == pytest.approx(3.5 / 4)  # one tie counts one half
    assert roc_auc([5, 6, 7], [1, 2]) == 1.0
    assert roc_auc([1, 2], [5, 6, 7]) == 0.0
    assert roc_auc([1, 1, 1], [1, 1]) == 0.5
    # brute-force pair count on random scores with many ties
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 5, (40,), generator=g).tolist()
    neg = torch.randint(0, 5, (30,), generator=g).tolist()
    pairs = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert roc_auc(pos, neg) == pytest.approx(pairs / (40 * 30))


def test_document_nll_equals_hf_loss(lm):
    docs = ["The quick brown fox jumps over the lazy dog.", "Mira Okafor was born in Halden.", "0123 Paris"]
    ours = document_nll(lm.model, lm.tokenizer, docs, batch_size=2)
    for doc, value in zip(docs, ours):
        enc = lm.tokenizer(doc, return_tensors="pt")
        with torch.no_grad():
            ref = lm.model(**enc, labels=enc["input_ids"]).loss.item()
        assert value == pytest.approx(ref, abs=1e-5)


def test_mc_prompt_is_lm_eval_format():
    assert mc_prompt(ITEMS[1], description=False) == "What is 2 + 3?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer:"
    assert mc_prompt(ITEMS[0]).startswith(
        "The following are multiple choice questions (with answers) about world geography.\n\n"
        "What is the capital of Norland?\nA. Vell\n"
    )


def test_mc_scores_are_letter_logprobs(lm):
    scores = mc_choice_logprobs(lm.model, lm.tokenizer, ITEMS, batch_size=5)
    tok = lm.tokenizer
    for item, row in zip(ITEMS, scores):
        n_prompt = len(tok(mc_prompt(item))["input_ids"])
        direct = []
        for k in "ABCD":  # the continuation " k" may span several tokens: sum their log-probs (lm-eval)
            ids = tok(mc_prompt(item) + " " + k, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].double(), -1)
            direct.append(sum(float(logp[t - 1, ids[0, t]]) for t in range(n_prompt, ids.shape[1])))
        assert torch.allclose(row, torch.tensor(direct, dtype=torch.float64), atol=1e-4)
    best = scores.argmax(1).tolist()
    right = [dict(it, answer=b) for it, b in zip(ITEMS, best)]
    wrong = [dict(it, answer=int(scores[i].argmin())) for i, it in enumerate(ITEMS)]
    assert mc_accuracy(lm.model, lm.tokenizer, right) == 1.0
    assert mc_accuracy(lm.model, lm.tokenizer, wrong) == 0.0


def test_mc_loglikelihoods_match_lm_eval(lm):
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=4, device="cpu")
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(mc_prompt(it), " " + k), idx=j)
        for it in ITEMS
        for j, k in enumerate("ABCD")
    ]
    theirs = torch.tensor([ll for ll, _ in harness.loglikelihood(requests)], dtype=torch.float64).view(-1, 4)
    ours = mc_choice_logprobs(lm.model, lm.tokenizer, ITEMS)
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert not math.isnan(float(ours.sum()))


def test_cloze_loglikelihoods_match_lm_eval(lm):
    """CF (lm-eval's mmlu_continuation): each choice's text after "Question: ...\nAnswer:"."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=4, device="cpu")
    prompts = [mc_prompt(it, formulation="cf") for it in ITEMS]
    assert (
        prompts[1]
        == "The following are questions (with answers) about arithmetic.\n\nQuestion: What is 2 + 3?\nAnswer:"
    )
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(p, " " + c), idx=j)
        for p, it in zip(prompts, ITEMS)
        for j, c in enumerate(it["choices"])
    ]
    theirs = torch.tensor([ll for ll, _ in harness.loglikelihood(requests)], dtype=torch.float64).view(-1, 4)
    ours = mc_choice_logprobs(lm.model, lm.tokenizer, ITEMS, formulation="cf")
    assert torch.allclose(ours, theirs, atol=1e-4)
    # the letter formulation scores other strings, so other numbers
    assert not torch.allclose(ours, mc_choice_logprobs(lm.model, lm.tokenizer, ITEMS), atol=1e-2)


def test_unknown_formulation_is_one_line_error(lm):
    with pytest.raises(WorkbenchError, match="unknown MMLU formulation 'letters'"):
        mc_accuracy(lm.model, lm.tokenizer, ITEMS, formulation="letters")
