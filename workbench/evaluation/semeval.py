"""SemEval-2025 Task 4 (LUME) metrics: regurgitation, knowledge and the task aggregate.

Follows the organizers' evaluation script (``evaluate_generations.py`` published with the task,
https://llmunlearningsemeval2025.github.io/ ; LUME: Ramakrishna et al. 2025, arXiv:2502.15097):

- the raw ``input`` is fed with no chat template and continued greedily (``do_sample=False``), up to
  ``max_new_tokens`` (default 256) new tokens; special tokens are dropped when decoding;
- sentence completion (ids with ``id[:-1].endswith("sc")``): *regurgitation* = ROUGE-L **recall** of the
  generation against the expected ``output`` (``rouge_score`` with ``use_stemmer=True``, target = the
  expected output, prediction = the generation);
- question answering (``id[:-1].endswith("qa")``): *knowledge* = exact match
  ``gt.strip().lower() == gen.strip().lower()``;
- the mean per split (forget, retain) × task (Task1-3) × metric gives up to 12 values; forget values
  become ``1 - v``; the **task aggregate** is the harmonic mean of them (``statistics.harmonic_mean``,
  which is 0 as soon as one value is 0). Cells with no records (a task or kind absent from the data)
  are left out, as the official ``groupby(...).mean()`` leaves them out, and are reported in
  :attr:`SemEvalResult.missing`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
from collections.abc import Sequence

from ..data import SPLITS, TASKS, SemEvalRecord, read_semeval
from ..errors import WorkbenchError

log = logging.getLogger(__name__)

METRICS = {"sc": "regurgitation", "qa": "knowledge"}


@dataclasses.dataclass(frozen=True)
class SemEvalSample:
    """One scored record: the model's generation and its score (ROUGE-L recall for sc, 0/1 for qa)."""

    id: str
    split: str
    task: str
    kind: str
    input: str
    output: str
    generation: str
    score: float
    part: str | None = None
    """``train`` | ``validation`` where the data has parts (None: the file had none)."""


@dataclasses.dataclass(frozen=True)
class SemEvalCell:
    """The mean of one split × task × metric; ``term`` is what enters the harmonic mean (1 - v on forget)."""

    split: str
    task: str
    metric: str
    value: float
    term: float
    n: int

    @property
    def key(self) -> str:
        """``split/task/metric``, e.g. ``forget/Task1/regurgitation``."""
        return f"{self.split}/{self.task}/{self.metric}"


@dataclasses.dataclass
class SemEvalResult:
    """The SemEval-2025 Task 4 scores of one model on one dataset."""

    cells: list[SemEvalCell]
    task_aggregate: float
    tasks: list[str]
    missing: list[str]
    samples: list[SemEvalSample]
    overall: dict[str, float]

    def cell(self, split: str, task: str, metric: str) -> SemEvalCell:
        """The cell for ``split``/``task``/``metric`` (a WorkbenchError when absent)."""
        for c in self.cells:
            if (c.split, c.task, c.metric) == (split, task, metric):
                return c
        raise WorkbenchError(
            f"no SemEval cell {split}/{task}/{metric}; present: {[c.key for c in self.cells]}"
        )

    def metrics(self) -> dict[str, float | list[str]]:
        """A flat dict for ``metrics.json``."""
        out: dict[str, float | list[str]] = {"task_aggregate": self.task_aggregate}
        out.update({c.key: c.value for c in self.cells})
        out.update({f"{k}": v for k, v in self.overall.items()})
        out["tasks_present"] = list(self.tasks)
        out["cells_missing"] = list(self.missing)
        return out


def harmonic_mean(values: Sequence[float]) -> float:
    """The harmonic mean as the official script computes it (``statistics.harmonic_mean``): 0 if any value is 0."""
    if not values:
        raise WorkbenchError("harmonic mean of no values: the SemEval data produced no scored cells")
    return float(statistics.harmonic_mean([float(v) for v in values]))


def score_record(record: SemEvalRecord, generation: str) -> float:
    """The official per-record score: ROUGE-L recall (sc) or exact match (qa)."""
    from .scoring import exact_match, rouge_l_recall

    if record.kind == "sc":
        return float(rouge_l_recall(generation, record.output))
    if record.kind == "qa":
        return float(exact_match(generation, record.output))
    raise WorkbenchError(f"record {record.id!r}: id ends neither in sc<N> nor qa<N>")


def score_generations(records: Sequence[SemEvalRecord], generations: Sequence[str]) -> SemEvalResult:
    """Score generations against records and aggregate them as the official evaluation does."""
    if len(records) != len(generations):
        raise WorkbenchError(
            f"{len(records)} records but {len(generations)} generations; pass one per record"
        )
    if not records:
        raise WorkbenchError("no SemEval records to score; check the data folder")
    samples = [
        SemEvalSample(r.id, r.split, r.task, r.kind, r.input, r.output, g, score_record(r, g), r.part)
        for r, g in zip(records, generations)
    ]
    cells, missing = [], []
    for split in SPLITS:
        for task in TASKS:
            for kind, metric in METRICS.items():
                vals = [s.score for s in samples if (s.split, s.task, s.kind) == (split, task, kind)]
                if not vals:
                    missing.append(f"{split}/{task}/{metric}")
                    continue
                value = sum(vals) / len(vals)
                term = 1.0 - value if split == "forget" else value
                cells.append(SemEvalCell(split, task, metric, value, term, len(vals)))
    overall = {}
    for split in SPLITS:
        for kind, metric in METRICS.items():
            vals = [s.score for s in samples if (s.split, s.kind) == (split, kind)]
            if vals:
                overall[f"{split}/overall/{metric}"] = sum(vals) / len(vals)
            # by part: train records are the ones an unlearning method is given, validation ones never are
            for part in sorted({s.part for s in samples if s.part is not None}):
                vals = [s.score for s in samples if (s.split, s.kind, s.part) == (split, kind, part)]
                if vals:
                    overall[f"{split}/{part}/{metric}"] = sum(vals) / len(vals)
    tasks = sorted({c.task for c in cells})
    if missing:
        log.info("SemEval aggregate over %d cells; missing %s", len(cells), ", ".join(missing))
    return SemEvalResult(cells, harmonic_mean([c.term for c in cells]), tasks, missing, samples, overall)


def sample_records(records: Sequence[SemEvalRecord], limit: int | None, seed: int = 0) -> list[SemEvalRecord]:
    """A seeded, stratified sample of at most ``limit`` records per split × task × kind (None: all)."""
    if limit is None:
        return list(records)
    import random

    rng = random.Random(seed)
    groups: dict[tuple[str, str, str], list[SemEvalRecord]] = {}
    for r in records:
        groups.setdefault((r.split, r.task, r.kind), []).append(r)
    out = []
    for key in sorted(groups):
        g = groups[key]
        out += g if len(g) <= limit else rng.sample(g, limit)
    return out


def evaluate_semeval(
    lm,
    data: str | os.PathLike | Sequence[SemEvalRecord],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 32,
    part: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> SemEvalResult:
    """Generate greedily on the forget and retain records of ``data`` and score them (official metrics).

    ``lm`` is a :class:`~workbench.models.load.LoadedModel`; ``data`` a SemEval folder/file or records.
    ``part`` picks train|validation files where the layout has them; ``limit`` keeps at most that many
    records per split × task × kind (seeded), for quick looks.
    """
    from .generation import generate_greedy

    records = list(data) if not isinstance(data, (str, os.PathLike)) else read_semeval(data, part=part)
    records = sample_records(records, limit, seed)
    generations = generate_greedy(
        lm.model,
        lm.tokenizer,
        [r.input for r in records],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    return score_generations(records, generations)
