"""Evaluation: SemEval-2025 Task 4 metrics, membership inference, MMLU through lm-eval, stability proxies.

``evaluate(lm, data_dir, EvalConfig(...))`` (or keyword overrides: ``suites="semeval,mia"``) runs any subset and writes ``metrics.json`` / ``samples.jsonl``;
the shared primitives (batched greedy generation, exact match, ROUGE-L recall, AUC, document NLL,
multiple-choice scoring) are importable on their own. Heavy pieces are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from .generation import generate_greedy
from .scoring import (
    document_nll,
    exact_match,
    mc_accuracy,
    mc_choice_logprobs,
    mc_continuations,
    mc_prompt,
    roc_auc,
    rouge_l_recall,
)

_LAZY = {
    "evaluate": ".suite",
    "EvalReport": ".suite",
    "SUITES": ".config",
    "parse_suites": ".config",
    "EvalConfig": ".config",
    "EvalRun": ".config",
    "evaluate_semeval": ".semeval",
    "score_generations": ".semeval",
    "SemEvalResult": ".semeval",
    "harmonic_mean": ".semeval",
    "evaluate_mia": ".mia",
    "run_mia": ".mia",
    "MIAResult": ".mia",
    "mia_score": ".mia",
    "ATTACKS": ".mia",
    "evaluate_mmlu": ".mmlu",
    "MMLUResult": ".mmlu",
    "probe": ".stability",
    "attention_logit_max": ".stability",
    "logit_stats": ".stability",
    "optimizer_diagnostics": ".stability",
    "lr_sensitivity": ".stability",
    "z_loss": ".stability",
    "StabilityResult": ".stability",
}

__all__ = [
    "document_nll",
    "exact_match",
    "generate_greedy",
    "mc_accuracy",
    "mc_choice_logprobs",
    "mc_continuations",
    "mc_prompt",
    "roc_auc",
    "rouge_l_recall",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
