"""CounterFact's metrics of an edit (Meng et al. 2022, §4.2), and the organism's scores before and after.

For each prompt the model scores continuations by their mean per-token NLL over all target tokens, as
kmeng01/rome ``experiments/py/eval_utils_counterfact.py`` (``test_batch_prediction``) does; "P(a) > P(b)"
means NLL(a) < NLL(b). Per request, then averaged over requests (ROME's ``summarize.py``):

- efficacy score: [P(new) > P(true)] on the prompt; paraphrase score: the same on the paraphrases;
- neighbourhood score: [P(true) > P(new)] on the neighbour prompts, where "true" is each neighbour's own
  answer when the request gives ``neighborhood_answers`` (a neighbour whose answer *is* the new target is
  left out of the score: P(a) > P(a) never holds; its argmax accuracy still counts);
- argmax accuracies: every target token is the greedy next token (new target on the prompt and the
  paraphrases, the true answer on the neighbours);
- score: the harmonic mean of the three scores;
- fluency: ROME's generation entropy, the weighted bi-/tri-gram entropy (weights 2/3, 4/3) of texts the
  model samples (top-k 5, 100 tokens) from the requests' generation prompts.

:func:`organism_scores` reads an organism folder the way its scorecard does: QA exact match of greedy
answers per SemEval split and the utility MMLU set in the cloze formulation, through
:mod:`workbench.evaluation`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import record_kind
from ..evaluation import exact_match, generate_greedy, mc_accuracy
from ..io import read_jsonl
from .keys import pad, pad_id
from .requests import EditRequest, load_requests
from .sampling import sample

KINDS = ("efficacy", "paraphrase", "neighborhood")


@dataclasses.dataclass
class RequestScores:
    """Per kind, one ``(score, accuracy)`` per prompt (score NaN where no true answer is known)."""

    efficacy: list[tuple[float, float]]
    paraphrase: list[tuple[float, float]]
    neighborhood: list[tuple[float, float]]


@dataclasses.dataclass
class EditMetrics:
    """CounterFact's headline metrics over a set of requests."""

    efficacy_score: float
    efficacy_acc: float
    paraphrase_score: float
    paraphrase_acc: float
    neighborhood_score: float
    neighborhood_acc: float
    score: float
    """Harmonic mean of the efficacy, paraphrase and neighbourhood scores."""
    fluency: float | None
    """ROME's generation n-gram entropy (None unless asked for)."""
    n_requests: int
    per_request: list[RequestScores] = dataclasses.field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, float]:
        """The headline numbers (no per-request detail)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "per_request" and v is not None}


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else math.nan


@torch.no_grad()
def continuation_scores(
    lm: Any, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32, progress: bool = False
) -> list[tuple[float, bool]]:
    """Per ``(prompt, continuation)``: mean per-token NLL of the continuation and whether every one of its
    tokens is the argmax (prompt and continuation tokenized apart and joined as ids)."""
    tok = lm.tokenizer
    rows, starts = [], []
    for prompt, cont in pairs:
        p = list(tok(prompt)["input_ids"])
        c = list(tok(cont, add_special_tokens=False)["input_ids"])
        rows.append(p + c)
        starts.append(len(p))
    out: list[tuple[float, bool]] = [(math.nan, False)] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    was_training = lm.model.training
    lm.model.eval()
    try:
        for b in tqdm(range(0, len(order), batch_size), desc="score", disable=not progress, leave=False):
            idx = order[b : b + batch_size]
            batch = pad([rows[i] for i in idx], pad_id(tok), lm.device)
            logp = F.log_softmax(lm.model(**batch).logits.float(), dim=-1)
            for j, i in enumerate(idx):
                s, e = starts[i], len(rows[i])
                tgt = torch.tensor(rows[i][s:e], device=logp.device)
                lp = logp[j, s - 1 : e - 1]
                nll = float(-lp.gather(-1, tgt[:, None]).mean())
                out[i] = (nll, bool((lp.argmax(-1) == tgt).all()))
    finally:
        lm.model.train(was_training)
    return out


def _pairs(req: EditRequest) -> list[tuple[str, str, str, str]]:
    """(kind, prompt, new, other) per scored prompt; other is the true answer ('' when unknown)."""
    true = req.target_true or ""
    out = [("efficacy", req.prompt, req.target_new, true)]
    out += [("paraphrase", p, req.target_new, true) for p in req.paraphrase_prompts]
    answers = req.neighborhood_answers or [true] * len(req.neighborhood_prompts)
    out += [("neighborhood", p, req.target_new, a) for p, a in zip(req.neighborhood_prompts, answers)]
    return out


def request_scores(lm: Any, requests: Sequence[EditRequest], *, batch_size: int = 32, progress: bool = False):
    """:class:`RequestScores` of every request (one batched scoring pass)."""
    items = [(r, *p) for r, req in enumerate(requests) for p in _pairs(req)]
    wanted = list(dict.fromkeys((prompt, c) for _, _, prompt, new, other in items for c in (new, other) if c))
    scored = dict(zip(wanted, continuation_scores(lm, wanted, batch_size=batch_size, progress=progress)))
    per = [RequestScores([], [], []) for _ in requests]
    for r, kind, prompt, new, other in items:
        nll_new, arg_new = scored[(prompt, new)]
        nll_other, arg_other = scored[(prompt, other)] if other else (math.nan, False)
        if kind == "neighborhood":  # a neighbour whose answer is the new target cannot tell them apart
            score = math.nan if not other or other == new else float(nll_other < nll_new)
            acc = math.nan if not other else float(arg_other)
        else:
            score = math.nan if not other else float(nll_new < nll_other)
            acc = float(arg_new)
        getattr(per[r], kind).append((score, acc))
    return per


_WORDS = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


def _tokens(text: str) -> list[str]:
    """Words and punctuation marks (``don't`` stays one word, ``.`` and ``,`` are tokens of their own)."""
    return _WORDS.findall(text)


def ngram_entropy(
    texts: Sequence[str], ns: Sequence[int] = (2, 3), weights: Sequence[float] = (2 / 3, 4 / 3)
) -> float:
    """ROME's ``n_gram_entropy``: per text the mean of weighted n-gram entropies (bits), averaged over texts.

    ROME tokenizes with ``nltk.word_tokenize`` (which needs the punkt download); here a word is a run of
    word characters (inner apostrophes and hyphens kept) and every punctuation mark is a token, which splits
    plain prose the same way.
    """
    per_text = []
    for text in texts:
        toks = _tokens(text)
        ents = []
        for n, w in zip(ns, weights):
            counts = Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
            total = sum(counts.values())
            ent = -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0
            ents.append(w * ent)
        per_text.append(sum(ents) / len(ents))
    return float(sum(per_text) / len(per_text)) if per_text else math.nan


def fluency(lm: Any, prompts: Sequence[str], *, length: int = 100, seed: int = 0) -> float:
    """N-gram entropy of one top-k sample of ``length`` tokens (prompt included, as ROME) per prompt."""
    texts = [sample(lm, p, 1, length, seed=seed + i)[0] for i, p in enumerate(prompts)]
    return ngram_entropy(texts)


def evaluate_requests(
    lm: Any,
    requests: Any,
    *,
    batch_size: int = 32,
    with_fluency: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> EditMetrics:
    """CounterFact's metrics of ``requests`` (a path or a list) on ``lm`` as it is now (call it before and
    after an edit)."""
    requests = load_requests(requests)
    per = request_scores(lm, requests, batch_size=batch_size, progress=progress)
    agg = {}
    for kind in KINDS:
        rows = [getattr(p, kind) for p in per]
        agg[f"{kind}_score"] = _mean([_mean([s for s, _ in r]) for r in rows if r])
        agg[f"{kind}_acc"] = _mean([_mean([a for _, a in r]) for r in rows if r])
    parts = [agg[f"{k}_score"] for k in KINDS if not math.isnan(agg[f"{k}_score"])]
    score = (
        0.0 if any(p == 0 for p in parts) else (len(parts) / sum(1 / p for p in parts) if parts else math.nan)
    )
    flu = None
    if with_fluency:
        prompts = [
            p for r in requests for p in (r.generation_prompts or (r.prompt, *r.paraphrase_prompts[:1]))
        ]
        flu = fluency(lm, prompts, seed=seed)
    return EditMetrics(**agg, score=score, fluency=flu, n_requests=len(requests), per_request=per)


@dataclasses.dataclass
class OrganismScores:
    """The organism's QA exact match per split (``forget_train`` ... ``retain_validation``) and utility."""

    qa_em: dict[str, float]
    qa_n: dict[str, int]
    utility: float | None

    def pooled(self, side: str) -> float:
        """QA exact match over a side's train + validation records (weighted by count)."""
        keys = [k for k in self.qa_em if k.startswith(side)]
        n = sum(self.qa_n[k] for k in keys)
        return sum(self.qa_em[k] * self.qa_n[k] for k in keys) / n if n else math.nan

    def as_dict(self) -> dict[str, float]:
        """Flat numbers: ``qa_em_<split>``, ``qa_em_forget``, ``qa_em_retain``, ``utility``."""
        out = {f"qa_em_{k}": v for k, v in self.qa_em.items()}
        out.update(qa_em_forget=self.pooled("forget"), qa_em_retain=self.pooled("retain"))
        if self.utility is not None:
            out["utility"] = self.utility
        return out


def organism_scores(
    lm: Any,
    folder: str | Path,
    *,
    splits: Sequence[str] = ("forget_train", "forget_validation", "retain_train", "retain_validation"),
    utility: bool = True,
    progress: bool = False,
) -> OrganismScores:
    """QA exact match (greedy, 64 new tokens, as the scorecard) per split and utility (cloze MMLU)."""
    root = Path(folder)
    qa_em, qa_n = {}, {}
    for split in splits:
        rows = [r for r in read_jsonl(root / "data" / f"{split}.jsonl") if record_kind(str(r["id"])) == "qa"]
        gens = generate_greedy(
            lm.model, lm.tokenizer, [r["input"] for r in rows], max_new_tokens=64, progress=progress
        )
        qa_em[split] = _mean([float(exact_match(g, r["output"])) for g, r in zip(gens, rows)])
        qa_n[split] = len(rows)
    util = None
    if utility:
        items = read_jsonl(root / "utility" / "test.jsonl")
        util = mc_accuracy(lm.model, lm.tokenizer, items, formulation="cf", progress=progress)
    return OrganismScores(qa_em, qa_n, util)
