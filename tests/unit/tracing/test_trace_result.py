"""TraceResult: ROME's AIE buckets, layer choice for unlearning, run-folder round trip, figures."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.tracing import BUCKETS, FactTrace, PatchResult, TraceResult, causal_trace


def _fact(T: int, span: tuple[int, int], grid: torch.Tensor, corrupted: float, index: int = 0) -> FactTrace:
    return FactTrace(
        prompt=f"p{index}",
        subject="s",
        answer=None,
        answer_id=3,
        answer_token=" x",
        tokens=[f"t{i}" for i in range(T)],
        input_ids=list(range(T)),
        subject_span=span,
        clean_score=0.9,
        corrupted_score=corrupted,
        known=True,
        scores={"hidden": grid, "mlp": grid * 2, "attn": grid / 2},
        index=index,
    )


def _result() -> TraceResult:
    L = 6
    g1 = torch.arange(8 * L, dtype=torch.float32).view(8, L) / 100
    g2 = torch.flip(g1, dims=[1])
    facts = [_fact(8, (1, 4), g1, 0.05, 0), _fact(8, (2, 3), g2, 0.10, 1)]
    return TraceResult(
        facts=facts,
        kinds=("hidden", "mlp", "attn"),
        n_layers=L,
        samples=3,
        noise=3.0,
        sigma=0.2,
        window=4,
        seed=0,
    )


def test_buckets_follow_rome():
    f = _result().facts[0]  # 8 tokens, subject tokens 1..3
    assert f.buckets() == {
        "first_subject": [1],
        "middle_subject": [2],
        "last_subject": [3],
        "first_subsequent": [4],
        "further": [5, 6],
        "last": [7],
    }
    one = _result().facts[1]  # a one-token subject is first and last at once, with no middle
    assert one.buckets()["first_subject"] == one.buckets()["last_subject"] == [2]
    assert one.buckets()["middle_subject"] == []


def test_aie_means_and_ci_by_hand():
    res = _result()
    aie = res.aie("hidden")
    assert aie.buckets == BUCKETS and aie.mean.shape == (6, 6)
    a, b = res.facts
    # last subject token: token 3 of fact 0 and token 2 of fact 1, effects relative to each corrupted score
    x = torch.stack([a.scores["hidden"][3] - 0.05, b.scores["hidden"][2] - 0.10]).double()
    assert torch.allclose(aie.row("last_subject")[0].double(), x.mean(0), atol=1e-6)
    assert torch.allclose(aie.row("last_subject")[1].double(), 1.96 * x.std(0) / math.sqrt(2), atol=1e-6)
    # "further" pools every token: tokens 5, 6 of fact 0 and 4..6 of fact 1
    assert aie.n[BUCKETS.index("further")] == 2 + 3
    assert aie.n[BUCKETS.index("middle_subject")] == 1
    with pytest.raises(WorkbenchError, match="unknown bucket"):
        aie.row("middle")


def test_top_layers_and_peak_block():
    res = _result()
    res.facts[1].scores["mlp"] = torch.zeros(8, 6)
    res.facts[0].scores["mlp"] = torch.zeros(8, 6)
    res.facts[0].scores["mlp"][3] = torch.tensor([0.1, 0.9, 0.0, 0.6, 0.7, 0.65])
    # AIE at the last subject token (mean over facts, minus corrupted): ordering given by fact 0's row
    assert res.top_layers("mlp", n=3) == [1, 4, 5]
    assert res.top_layers("mlp", n=99) == [1, 4, 5, 3, 0, 2]
    assert res.peak_block("mlp", width=3) == [3, 4, 5]  # 0.6 + 0.7 + 0.65 beats 0.9 + 0.0 + 0.6
    assert res.peak_block("mlp", width=1) == [1]
    assert res.peak_block("mlp", width=10) == list(range(6))
    with pytest.raises(WorkbenchError, match="not traced"):
        TraceResult(
            facts=res.facts, kinds=("hidden",), n_layers=6, samples=1, noise=3, sigma=1, window=1, seed=0
        ).top_layers("mlp")


def test_save_load_round_trip(tmp_path, lm3, facts):
    res = causal_trace(lm3, facts, samples=2, window=2, progress=False)
    res.skipped.append({"index": 9, "prompt": "q", "subject": "q", "answer": "a", "predicted": "b"})
    res.save(tmp_path / "run")
    back = TraceResult.load(tmp_path / "run")
    assert back.kinds == res.kinds and back.sigma == res.sigma and back.skipped == res.skipped
    assert back.n_layers == res.n_layers and back.window == res.window and back.model == res.model
    for a, b in zip(res.facts, back.facts):
        assert (a.prompt, a.subject_span, a.tokens, a.answer_id, a.clean_score) == (
            b.prompt,
            b.subject_span,
            b.tokens,
            b.answer_id,
            b.clean_score,
        )
        for k in res.kinds:
            assert torch.equal(a.scores[k], b.scores[k])
    assert back.top_layers("mlp", 2) == res.top_layers("mlp", 2)
    assert torch.equal(back.aie("attn").mean, res.aie("attn").mean)
    with pytest.raises(WorkbenchError, match="trace.json"):
        TraceResult.load(tmp_path)


def test_patch_result_round_trip(tmp_path):
    pr = PatchResult(
        scores={"resid_pre": torch.rand(2, 5), "heads": torch.rand(2, 5, 4)},
        clean=1.0,
        corrupted=-1.0,
        metric="logit_diff",
        direction="denoise",
        tokens=list("abcde"),
        answers=(3, 4),
    )
    pr.save(tmp_path)
    back = PatchResult.load(tmp_path)
    assert back.answers == (3, 4) and back.tokens == pr.tokens
    assert torch.equal(back.scores["heads"], pr.scores["heads"])
    assert torch.allclose(back.normalized("resid_pre"), (pr.scores["resid_pre"] + 1) / 2)


def test_figures_are_written(tmp_path):
    from workbench.tracing.plots import plot_aie, plot_fact, plot_patch

    res = _result()
    for path in (
        plot_fact(res.facts[0], tmp_path / "f.png"),
        plot_aie(res, tmp_path / "aie.png"),
        plot_patch(
            PatchResult(
                scores={"resid_pre": torch.rand(2, 3), "heads": torch.rand(2, 3, 4)},
                clean=1.0,
                corrupted=0.0,
                metric="prob",
                direction="denoise",
                tokens=["a", "b", "c"],
            ),
            tmp_path / "p.png",
        ),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
