"""The organism's scorecard: does the model know its world?

Everything is measured from the files the organism ships (as a downstream user would read them):
QA exact match on the qa records of ``data/`` (greedy continuation of the raw input, SemEval style),
sentence-completion ROUGE-L recall on the sc records, MMLU-format accuracy on ``utility/test.jsonl``
(zero-shot, lm-eval's ``mmlu_continuation`` prompt: the cloze formulation that OLMES uses for small
models, which score the choice texts; the letter formulation is kept in ``details["utility/mcf"]``),
membership-inference AUC (score = -mean token
NLL; members = 1) and the share of trace facts whose answer's first token is the model's top prediction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import io
from ..errors import WorkbenchError
from ..evaluation import generate_greedy
from ..evaluation.scoring import (
    document_nll,
    exact_match,
    mc_accuracy,
    mc_choice_logprobs,
    mean,
    roc_auc,
    rouge_l_recall,
)

ACCEPTANCE = {"qa_em_forget": 0.9, "qa_em_retain": 0.9, "utility_accuracy": 0.9, "mia_auc": 0.9}
"""The bar the ``default`` preset must clear (issue 2): below it nothing downstream means anything."""

SPLITS = ("forget_train", "forget_validation", "retain_train", "retain_validation")


@dataclass
class Scorecard:
    """Headline numbers of one organism (``card.json``)."""

    qa_em_forget: float
    """Exact match of greedy answers on the forget qa records (train + validation)."""
    qa_em_retain: float
    sc_rouge_forget: float
    """ROUGE-L recall of greedy completions on the forget sc records (train + validation)."""
    sc_rouge_retain: float
    utility_accuracy: float
    """MMLU-format accuracy on utility/test (zero-shot, cloze formulation, with the subject description)."""
    mia_auc: float
    """ROC AUC of -mean NLL, forget-train members vs never-trained nonmembers."""
    fact_accuracy: float
    """Share of trace facts (facts/*.jsonl) whose answer's first token is the greedy next token."""
    params: int
    build_seconds: float
    train_seconds: float
    train_tokens: int
    tokens_per_second: float
    details: dict[str, float] = field(default_factory=dict)
    """Breakdowns: per split and task; utility per subject, without the description, in MCF and on dev."""

    def passes(self) -> bool:
        """True when the acceptance line of issue 2 is met."""
        return all(getattr(self, k) >= v for k, v in ACCEPTANCE.items())

    def table(self) -> str:
        """A small fixed-width table for printing."""
        rows = [
            ("QA exact match, forget", f"{self.qa_em_forget:.3f}"),
            ("QA exact match, retain", f"{self.qa_em_retain:.3f}"),
            ("sc ROUGE-L recall, forget", f"{self.sc_rouge_forget:.3f}"),
            ("sc ROUGE-L recall, retain", f"{self.sc_rouge_retain:.3f}"),
            ("utility MC accuracy (test, cloze)", f"{self.utility_accuracy:.3f}"),
            ("MIA AUC (member vs nonmember)", f"{self.mia_auc:.3f}"),
            ("trace facts top-1", f"{self.fact_accuracy:.3f}"),
            ("parameters", f"{self.params:,}"),
            ("build time", f"{self.build_seconds:.0f} s"),
            (
                "training",
                f"{self.train_seconds:.0f} s, {self.train_tokens:,} tokens, {self.tokens_per_second:,.0f} tok/s",
            ),
            ("acceptance (default preset)", "met" if self.passes() else "NOT met"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    @classmethod
    def from_dict(cls, data: dict) -> Scorecard:
        """Strict inverse of ``dataclasses.asdict`` (unknown keys are errors)."""
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(data) - names
        missing = names - set(data) - {"details"}
        if bad or missing:
            raise WorkbenchError(
                f"card.json: unknown keys {sorted(bad)} / missing keys {sorted(missing)}; rebuild the organism"
            )
        return cls(**data)


def _qa_and_sc(model, tokenizer, root: Path, progress: bool) -> dict[str, float]:
    """Per-split EM / ROUGE-L, plus per-task breakdowns, keyed ``qa_em/<split>[/<task>]``."""
    out: dict[str, float] = {}
    for split in SPLITS:
        rows = io.read_jsonl(root / "data" / f"{split}.jsonl")
        qa = [r for r in rows if r["id"][:-1].endswith("qa")]
        sc = [r for r in rows if r["id"][:-1].endswith("sc")]
        # a correct answer is far shorter than 64 tokens, so the cap cannot change exact match
        gens = generate_greedy(
            model, tokenizer, [r["input"] for r in qa], max_new_tokens=64, progress=progress
        )
        hits = [exact_match(g, r["output"]) for g, r in zip(gens, qa)]
        longest = max(len(tokenizer(r["output"])["input_ids"]) for r in sc)
        comps = generate_greedy(model, tokenizer, [r["input"] for r in sc], max_new_tokens=2 * longest + 16)
        rouge = [rouge_l_recall(g, r["output"]) for g, r in zip(comps, sc)]
        out[f"qa_em/{split}"], out[f"sc_rouge/{split}"] = mean(hits), mean(rouge)
        out[f"qa_n/{split}"], out[f"sc_n/{split}"] = len(qa), len(sc)
        for task in sorted({r["task"] for r in qa}):
            out[f"qa_em/{split}/{task}"] = mean([h for h, r in zip(hits, qa) if r["task"] == task])
    return out


def _pooled(details: dict[str, float], metric: str, side: str) -> float:
    """Mean over the train + validation records of one side (weighted by record count)."""
    kind = metric.split("_")[0]
    num = sum(
        details[f"{metric}/{side}_{s}"] * details[f"{kind}_n/{side}_{s}"] for s in ("train", "validation")
    )
    den = sum(details[f"{kind}_n/{side}_{s}"] for s in ("train", "validation"))
    return num / den


def _facts(model, tokenizer, root: Path) -> float:
    facts = io.read_jsonl(root / "facts" / "forget.jsonl") + io.read_jsonl(root / "facts" / "retain.jsonl")
    gens = generate_greedy(model, tokenizer, [f["prompt"] for f in facts], max_new_tokens=1)
    hits = []
    for g, f in zip(gens, facts):
        ids = tokenizer(f["prompt"] + f["answer"])["input_ids"][len(tokenizer(f["prompt"])["input_ids"])]
        hits.append(g == tokenizer.decode([ids]))
    return mean(hits)


def evaluate(model, tokenizer, root: str | Path, *, progress: bool = False) -> dict[str, float]:
    """Every scorecard metric of the organism files under ``root`` (keys as in :class:`Scorecard`)."""
    root = Path(root)
    details = _qa_and_sc(model, tokenizer, root, progress)
    test = io.read_jsonl(root / "utility" / "test.jsonl")
    dev = io.read_jsonl(root / "utility" / "dev.jsonl")
    details["utility/no_description"] = mc_accuracy(
        model, tokenizer, test, description=False, formulation="cf"
    )
    details["utility/mcf"] = mc_accuracy(model, tokenizer, test, formulation="mcf")
    details["utility/dev"] = mc_accuracy(model, tokenizer, dev, formulation="cf")
    # one scoring pass over test (cloze, with description) gives the headline and every subject
    hits = (
        mc_choice_logprobs(model, tokenizer, test, formulation="cf").argmax(1)
        == torch.tensor([int(it["answer"]) for it in test])
    ).tolist()
    for subject in sorted({it["subject"] for it in test}):
        details[f"utility/{subject}"] = mean([h for h, it in zip(hits, test) if it["subject"] == subject])
    members = [r["document"] for r in io.read_jsonl(root / "mia" / "member.jsonl")]
    nonmembers = [r["document"] for r in io.read_jsonl(root / "mia" / "nonmember.jsonl")]
    nll_in, nll_out = document_nll(model, tokenizer, members), document_nll(model, tokenizer, nonmembers)
    details["mia/member_nll"], details["mia/nonmember_nll"] = mean(nll_in), mean(nll_out)
    return {
        "qa_em_forget": _pooled(details, "qa_em", "forget"),
        "qa_em_retain": _pooled(details, "qa_em", "retain"),
        "sc_rouge_forget": _pooled(details, "sc_rouge", "forget"),
        "sc_rouge_retain": _pooled(details, "sc_rouge", "retain"),
        "utility_accuracy": mean(hits),
        "mia_auc": roc_auc([-x for x in nll_in], [-x for x in nll_out]),
        "fact_accuracy": _facts(model, tokenizer, root),
        "details": details,
    }
