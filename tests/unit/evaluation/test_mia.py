"""Membership inference: the MIA score, each attack against a direct computation, AUC against sklearn."""

from __future__ import annotations

import math
import zlib

import pytest
import torch

from workbench.data import MIADoc
from workbench.errors import WorkbenchError
from workbench.evaluation.mia import auc_of, mia_score, run_mia, token_stats

DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "Mira Okafor was born in the city of Halden.",
    "Paris London",
    "Question: What is the capital of Norland?\nAnswer: Vell.",
    "Alan Turing worked in the field of computing. 0123456789",
]


def test_mia_score_endpoints():
    assert mia_score(0.5) == 1.0
    assert mia_score(1.0) == 0.0
    assert mia_score(0.0) == 0.0
    assert mia_score(0.75) == pytest.approx(0.5)


def test_auc_matches_sklearn_with_official_orientation():
    from sklearn.metrics import auc, roc_curve

    member_loss, nonmember_loss = [1.0, 2.0, 2.5, 0.5], [2.0, 3.0, 1.5, 4.0, 2.2]
    # official: roc_curve(labels, -loss) with members = 1
    fp, tp, _ = roc_curve([1] * 4 + [0] * 5, [-x for x in member_loss + nonmember_loss])
    assert auc_of([-x for x in member_loss], [-x for x in nonmember_loss]) == pytest.approx(auc(fp, tp))


def test_attack_scores_match_direct_computation(tiny_olmo2):
    lm = tiny_olmo2
    members = [MIADoc(str(i), d) for i, d in enumerate(DOCS[:3])]
    nonmembers = [MIADoc(str(i), d) for i, d in enumerate(DOCS[3:])]
    result = run_mia(lm, members, nonmembers, k=0.3, batch_size=2)
    for doc, row in zip(members + nonmembers, result.docs):
        ids = lm.tokenizer(doc.document, return_tensors="pt").input_ids
        with torch.no_grad():
            out = lm.model(ids, labels=ids)  # the official per-document loss
        assert row.nll == pytest.approx(out.loss.item(), rel=1e-5)
        logp = torch.log_softmax(out.logits[0, :-1].double(), -1)
        tok = logp.gather(-1, ids[0, 1:, None])[:, 0]
        n = math.ceil(len(tok) * 0.3)
        assert row.scores["loss"] == pytest.approx(-out.loss.item(), rel=1e-5)
        assert row.scores["zlib"] == pytest.approx(
            -out.loss.item() / len(zlib.compress(doc.document.encode())), rel=1e-5
        )
        assert row.scores["min_k"] == pytest.approx(tok.sort().values[:n].mean().item(), rel=1e-4)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        sigma = ((p * logp**2).sum(-1) - mu**2).sqrt()
        normed = (tok - mu) / sigma
        assert row.scores["min_k_pp"] == pytest.approx(normed.sort().values[:n].mean().item(), rel=1e-4)
    for name, attack in result.attacks.items():
        assert attack.score == pytest.approx(1 - 2 * abs(attack.auc - 0.5))
        m = [r.scores[name] for r in result.docs if r.member]
        nm = [r.scores[name] for r in result.docs if not r.member]
        wins = sum((a > b) + 0.5 * (a == b) for a in m for b in nm)
        assert attack.auc == pytest.approx(wins / (len(m) * len(nm)))
    assert result.score == result.attacks["loss"].score


def test_batched_token_stats_equal_unbatched(tiny_olmo2):
    batched = token_stats(tiny_olmo2, DOCS, batch_size=3)
    for doc, st in zip(DOCS, batched):
        (alone,) = token_stats(tiny_olmo2, [doc], batch_size=1)
        torch.testing.assert_close(st.logprob, alone.logprob, rtol=1e-4, atol=1e-5)


def test_bad_k_and_empty_sides(tiny_olmo2):
    docs = [MIADoc("0", DOCS[0])]
    with pytest.raises(WorkbenchError, match="Min-K"):
        run_mia(tiny_olmo2, docs, docs, k=0)
    with pytest.raises(WorkbenchError, match="nonmember"):
        run_mia(tiny_olmo2, docs, [])
