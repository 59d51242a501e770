"""The settings of the evaluation suite (:class:`EvalConfig`) and the ``workbench eval`` job (:class:`EvalRun`).

Torch-free, so that the CLI builds its flags from these dataclasses without importing a model library.
"""

from __future__ import annotations

import dataclasses

from ..errors import WorkbenchError

SUITES = ("semeval", "mia", "mmlu", "stability")
"""SemEval-2025 Task 4 metrics, membership inference, MMLU (lm-eval) and the stability proxies."""


def parse_suites(suites: list[str] | tuple[str, ...] | str) -> list[str]:
    """Suite names from a list or a comma-separated string; unknown names are a WorkbenchError."""
    names = [s.strip() for s in (suites.split(",") if isinstance(suites, str) else suites) if s.strip()]
    bad = [s for s in names if s not in SUITES]
    if bad or not names:
        raise WorkbenchError(
            f"unknown suite(s) {', '.join(bad) or '(none)'}; choose from {', '.join(SUITES)}"
        )
    return names


@dataclasses.dataclass
class EvalConfig:
    """What :func:`workbench.evaluation.evaluate` runs and how."""

    suites: list[str] = dataclasses.field(default_factory=lambda: list(SUITES))
    """suites to run: a subset of semeval, mia, mmlu, stability"""
    max_new_tokens: int = 256
    """greedy generation length for the SemEval records (the official setting is 256)"""
    batch_size: int = 32
    """generation / scoring batch"""
    part: str | None = None
    """SemEval files of this part only (train | validation), where the layout has parts"""
    limit: int | None = None
    """at most N records per split × task × kind and N MIA documents per side (seeded; default: all)"""
    mia_k: float = 0.2
    """Min-K% fraction of the membership-inference attacks"""
    mmlu: str | None = None
    """MMLU folder/file or lm-eval task name (default: the data folder's utility/ or mmlu/, else lm-eval's mmlu)"""
    num_fewshot: int = 0
    """MMLU shots taken from dev"""
    mmlu_formulation: str | None = None
    """mcf: answer letters (lm-eval mmlu); cf: choice texts (mmlu_continuation); default: cf on an
    organism's utility set (the formulation its scorecard reads), mcf elsewhere"""
    probe_texts: int = 8
    """texts the stability probes read"""
    probe_max_tokens: int = 256
    """token budget of each stability probe text"""
    seed: int = 0
    """seed of every sampled subset"""

    def __post_init__(self) -> None:
        self.suites = parse_suites(self.suites)
        if self.part not in (None, "train", "validation"):
            raise WorkbenchError(f"part must be train or validation, got {self.part!r}")
        if self.mmlu_formulation not in (None, "mcf", "cf"):
            raise WorkbenchError(
                f"mmlu_formulation {self.mmlu_formulation!r} is unknown; use mcf (answer letters) or cf (cloze)"
            )
        if self.max_new_tokens < 1 or self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise WorkbenchError("max_new_tokens, batch_size and limit must be >= 1")
        if not 0 < self.mia_k <= 1:
            raise WorkbenchError(f"mia_k must be in (0, 1], got {self.mia_k}")


@dataclasses.dataclass(kw_only=True)
class EvalRun(EvalConfig):
    """``workbench eval``: SemEval-2025 Task 4 metrics, membership inference, MMLU and stability probes."""

    model: str
    """model folder (save_pretrained) or hub id"""
    data: str
    """organism folder or SemEval data folder (forget/retain files)"""
    out: str | None = None
    """run folder for config.yaml, metrics.json and samples.jsonl"""
    dtype: str | None = None
    """float32 | bfloat16 | float16 | auto"""
    device: str | None = None
    """cpu | cuda | cuda:N"""
