"""Small scoring primitives shared by the evaluators and the organism's scorecard.

- :func:`exact_match` and :func:`rouge_l_recall` as the SemEval-2025 Task 4 evaluation computes them
  (stripped, case-insensitive equality; ``rouge_score`` ROUGE-L recall with the Porter stemmer).
- :func:`roc_auc`: the Mann-Whitney U statistic, ties counted one half.
- :func:`document_nll`: mean token negative log-likelihood per document (the MIA loss).
- :func:`mc_accuracy`: MMLU-format multiple choice scored as lm-eval's ``mmlu`` task does
  (``lm_eval/tasks/mmlu/default/_default_template_yaml``): the prompt
  ``"{question}\\nA. {c0}\\nB. {c1}\\nC. {c2}\\nD. {c3}\\nAnswer:"`` after the subject description,
  and the log-likelihood of the continuations ``" A"`` .. ``" D"`` (the *multiple-choice formulation*,
  ``formulation="mcf"``), or lm-eval's ``mmlu_continuation`` (the *cloze formulation*, ``"cf"``): the
  prompt ``"Question: {question}\nAnswer:"`` after ``"The following are questions (with answers) about
  {subject}."`` and the summed log-likelihood of each choice's text. OLMES (Gu et al. 2024,
  arXiv:2406.08446) scores small models in CF because they sit at chance in MCF before they learn the
  answer-letter format, whatever they know.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import WorkbenchError

LETTERS = ("A", "B", "C", "D")
FORMULATIONS = ("mcf", "cf")
DESCRIPTION_KIND = {"mcf": "multiple choice questions", "cf": "questions"}
"""What lm-eval's MMLU description line calls the items in each formulation."""


def description_line(subject: str, formulation: str = "mcf") -> str:
    """lm-eval's MMLU description line (followed by a blank line) for ``subject`` in ``formulation``."""
    check_formulation(formulation)
    return f"The following are {DESCRIPTION_KIND[formulation]} (with answers) about {subject.replace('_', ' ')}.\n\n"


_ROUGE: Any = None


def exact_match(gen: str, gt: str) -> bool:
    """SemEval exact match: the stripped, lower-cased generation equals the stripped, lower-cased answer."""
    return gt.strip().lower() == gen.strip().lower()


def rouge_l_recall(gen: str, ref: str) -> float:
    """ROUGE-L recall of ``gen`` against the reference ``ref`` (``rouge_score``, stemmer on)."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_ROUGE.score(ref, gen)["rougeL"].recall)


def roc_auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Area under the ROC curve for scores of positives vs negatives (Mann-Whitney U; ties count 1/2)."""
    pos_t = torch.as_tensor(list(pos), dtype=torch.float64)
    neg_t = torch.as_tensor(list(neg), dtype=torch.float64)
    if pos_t.numel() == 0 or neg_t.numel() == 0:
        raise WorkbenchError("roc_auc needs at least one positive and one negative score")
    if not (torch.isfinite(pos_t).all() and torch.isfinite(neg_t).all()):
        raise WorkbenchError("roc_auc got a NaN or infinite score; check the scores fed to it")
    scores = torch.cat([pos_t, neg_t])
    values, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    # average rank (1-based) of each distinct value: ties share the mean of the ranks they span
    ends = counts.cumsum(0).to(torch.float64)
    avg_rank = ends - (counts.to(torch.float64) - 1) / 2
    rank_sum = avg_rank[inverse[: pos_t.numel()]].sum().item()
    n_pos, n_neg = pos_t.numel(), neg_t.numel()
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


@torch.inference_mode()
def _token_logprobs(model, rows: list[list[int]], pad_id: int) -> list[torch.Tensor]:
    """Log-probability of every token after the first, per row (right padding, one forward)."""
    ids, mask = _padded(rows, pad_id)
    device = _device(model)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    logp = F.log_softmax(logits[:, :-1], dim=-1)
    tok = logp.gather(-1, ids[:, 1:].to(device)[..., None])[..., 0].cpu()
    return [tok[i, : len(r) - 1] for i, r in enumerate(rows)]


def _batched_logprobs(model, tokenizer, rows: list[list[int]], batch_size: int, desc: str, progress: bool):
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise WorkbenchError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    was_training = model.training
    model.eval()
    try:
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
            idx = order[start : start + batch_size]
            for i, lp in zip(idx, _token_logprobs(model, [rows[i] for i in idx], int(pad_id))):
                out[i] = lp
    finally:
        model.train(was_training)
    return out


def document_nll(
    model, tokenizer, docs: Sequence[str], batch_size: int = 16, *, progress: bool = False
) -> list[float]:
    """Mean token negative log-likelihood of each document (every token after the first is predicted)."""
    rows = [list(r) for r in tokenizer(list(docs), add_special_tokens=True)["input_ids"]]
    short = [i for i, r in enumerate(rows) if len(r) < 2]
    if short:
        raise WorkbenchError(f"document_nll: document {short[0]} has fewer than 2 tokens; drop it")
    logps = _batched_logprobs(model, tokenizer, rows, batch_size, "nll", progress)
    return [float(-lp.mean()) for lp in logps]


def check_formulation(formulation: str) -> None:
    if formulation not in FORMULATIONS:
        raise WorkbenchError(
            f"unknown MMLU formulation {formulation!r}; use 'mcf' (answer letters) or 'cf' (cloze: choice text)"
        )


def mc_prompt(item: dict, *, description: bool = True, formulation: str = "mcf") -> str:
    """The lm-eval MMLU prompt of one ``{question, subject, choices, answer}`` item (zero-shot).

    ``formulation="mcf"``: lm-eval's ``mmlu`` prompt (choices listed, answered by letter);
    ``"cf"``: lm-eval's ``mmlu_continuation`` prompt (question only, answered by the choice text).
    """
    check_formulation(formulation)
    choices = item["choices"]
    if len(choices) != 4:
        raise WorkbenchError(f"an MMLU item needs 4 choices, got {len(choices)}: {item['question'][:60]!r}")
    if formulation == "cf":
        body = f"Question: {str(item['question']).strip()}\nAnswer:"
    else:
        body = (
            str(item["question"]).strip()
            + "".join(f"\n{k}. {c}" for k, c in zip(LETTERS, choices))
            + "\nAnswer:"
        )
    return description_line(str(item.get("subject", "")), formulation) + body if description else body


def mc_continuations(item: dict, formulation: str = "mcf") -> list[str]:
    """The four scored continuations: ``" A"`` .. ``" D"`` (mcf) or ``" " + choice`` (cf)."""
    check_formulation(formulation)
    return [" " + str(c) for c in item["choices"]] if formulation == "cf" else [" " + k for k in LETTERS]


def _split_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], int]:
    """Token ids of context + continuation and where the continuation starts (lm-eval's whole/context split)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = (
            context[: len(context) - spaces],
            context[len(context) - spaces :] + continuation,
        )
    whole = tokenizer(context + continuation, add_special_tokens=True)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=True)["input_ids"]
    return list(whole), len(ctx)


def mc_choice_logprobs(
    model,
    tokenizer,
    items: Sequence[dict],
    *,
    batch_size: int = 32,
    description: bool = True,
    formulation: str = "mcf",
    progress: bool = False,
) -> torch.Tensor:
    """``[n_items, 4]`` log-likelihoods of each item's four continuations (:func:`mc_continuations`)."""
    rows, starts = [], []
    for item in items:
        prompt = mc_prompt(item, description=description, formulation=formulation)
        for cont in mc_continuations(item, formulation):
            whole, start = _split_pair(tokenizer, prompt, cont)
            rows.append(whole)
            starts.append(start)
    if not rows:
        return torch.empty(0, 4)
    logps = _batched_logprobs(model, tokenizer, rows, batch_size, "mc", progress)
    # logps[i][t] scores token t+1, so the continuation tokens start at index start-1
    scores = [float(lp[s - 1 :].sum()) for lp, s in zip(logps, starts)]
    return torch.tensor(scores, dtype=torch.float64).view(len(items), 4)


def mc_accuracy(
    model,
    tokenizer,
    items: Sequence[dict],
    *,
    batch_size: int = 32,
    description: bool = True,
    formulation: str = "mcf",
    progress: bool = False,
) -> float:
    """Accuracy on MMLU-format items: the continuation with the highest log-likelihood (lm-eval ``acc``).

    ``formulation``: ``"mcf"`` scores the answer letters, ``"cf"`` the choice texts (see the module doc).
    """
    if not items:
        raise WorkbenchError("mc_accuracy got no items; check the utility/MMLU file")
    scores = mc_choice_logprobs(
        model,
        tokenizer,
        items,
        batch_size=batch_size,
        description=description,
        formulation=formulation,
        progress=progress,
    )
    answers = torch.tensor([int(it["answer"]) for it in items])
    return float((scores.argmax(dim=1) == answers).double().mean())


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean, NaN for an empty sequence."""
    return float(sum(values) / len(values)) if values else math.nan
