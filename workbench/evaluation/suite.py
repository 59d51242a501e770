"""The evaluation suite: SemEval-2025 Task 4 metrics, membership inference, MMLU and stability probes.

:func:`evaluate` runs the chosen suites on one model and one data folder and, with ``out``, writes
``metrics.json`` and ``samples.jsonl`` (one row per scored SemEval record and per MIA document)
atomically. The **final** score is the SemEval-2025 Task 4 one:
``mean(task aggregate, MIA score, MMLU accuracy)`` (official ``evaluate_generations.py``); on the model
organism its utility multiple-choice set stands in for MMLU, through the same lm-eval code path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from ..config import make_config
from ..errors import WorkbenchError
from .config import SUITES, EvalConfig, EvalRun, parse_suites  # noqa: F401  (parse_suites re-exported)
from .mia import MIAResult
from .mmlu import MMLUResult
from .semeval import SemEvalResult
from .stability import StabilityResult

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalReport:
    """Results of :func:`evaluate`; a suite that was not run is ``None``."""

    model: str
    data: str
    semeval: SemEvalResult | None = None
    mia: MIAResult | None = None
    mmlu: MMLUResult | None = None
    stability: StabilityResult | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def final(self) -> float | None:
        """``mean(task aggregate, MIA score, MMLU accuracy)``, or None unless all three suites ran."""
        if self.semeval is None or self.mia is None or self.mmlu is None:
            return None
        return (self.semeval.task_aggregate + self.mia.score + self.mmlu.acc) / 3

    def metrics(self) -> dict[str, Any]:
        """Everything for ``metrics.json``."""
        out: dict[str, Any] = {"model": self.model, "data": self.data, "final": self.final}
        for name in SUITES:
            result = getattr(self, name)
            if result is not None:
                out[name] = result.metrics()
        out["notes"] = list(self.notes)
        return out

    def samples(self) -> list[dict[str, Any]]:
        """Per-sample rows for ``samples.jsonl``: SemEval generations and MIA document scores."""
        rows: list[dict[str, Any]] = []
        if self.semeval is not None:
            rows += [{"suite": "semeval", **dataclasses.asdict(s)} for s in self.semeval.samples]
        if self.mia is not None:
            rows += [{"suite": "mia", **dataclasses.asdict(d)} for d in self.mia.docs]
        return rows

    def write(self, out: str | os.PathLike) -> Path:
        """Write ``metrics.json`` and ``samples.jsonl`` into the folder ``out`` (atomic writes)."""
        from ..io import run_dir, write_json, write_jsonl

        folder = run_dir(out)
        write_json(folder / "metrics.json", self.metrics())
        write_jsonl(folder / "samples.jsonl", self.samples())
        return folder

    def table(self) -> str:
        """A compact plain-text table of the headline numbers."""
        lines = []
        if self.semeval is not None:
            se = self.semeval
            tasks = sorted({c.task for c in se.cells})
            lines.append(f"{'semeval':<26}" + "".join(f"{t:>9}" for t in tasks))
            for split in ("forget", "retain"):
                for metric in ("regurgitation", "knowledge"):
                    vals = {c.task: c.value for c in se.cells if (c.split, c.metric) == (split, metric)}
                    if vals:
                        lines.append(
                            f"  {split + ' ' + metric:<24}"
                            + "".join(f"{vals[t]:>9.3f}" if t in vals else f"{'-':>9}" for t in tasks)
                        )
            lines.append(
                f"  {'task aggregate':<24}{se.task_aggregate:>9.3f}   (harmonic mean of "
                f"{len(se.cells)} values; tasks {', '.join(se.tasks)})"
            )
        if self.mia is not None:
            lines.append(f"{'mia':<26}{'AUC':>9}{'score':>9}")
            for a in self.mia.attacks.values():
                lines.append(f"  {a.name:<24}{a.auc:>9.3f}{a.score:>9.3f}")
        if self.mmlu is not None:
            m = self.mmlu
            lines.append(
                f"{'mmlu':<26}{m.micro:>9.3f}   (micro; macro {m.macro:.3f}; {len(m.subjects)} subjects, "
                f"{sum(s.n for s in m.subjects)} questions, {m.num_fewshot}-shot, {m.formulation.upper()})"
            )
        if self.stability is not None:
            st = self.stability
            lines.append(
                f"{'stability':<26}max attn logit {float(st.attn_logit_max.max()):.2f}; log Z mean "
                f"{st.logits.mean_log_z:.2f} max {st.logits.max_log_z:.2f}; mean logit "
                f"{st.logits.mean_logit:.3f}"
            )
        if self.final is not None:
            lines.append(f"{'final':<26}{self.final:>9.3f}   mean(task aggregate, MIA score, MMLU)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _mmlu_source(data_dir: Path, mmlu: str | os.PathLike | None) -> str | os.PathLike:
    if mmlu is not None:
        return mmlu
    for cand in (data_dir / "utility", data_dir / "mmlu", data_dir):
        if (cand / "test.jsonl").is_file() or (cand / "test").is_dir():
            return cand
    return "mmlu"


def _probe_texts(data_dir: Path, n: int, seed: int) -> list[str]:
    from ..data import read_mia, read_semeval
    from .stability import sample_texts

    try:
        texts = [r.input for r in read_semeval(data_dir)]
    except WorkbenchError:
        members, nonmembers = read_mia(data_dir)
        texts = [d.document for d in members + nonmembers]
    return sample_texts(texts, n, seed)


def _stability(lm: Any, data: Path, n: int, max_tokens: int, seed: int) -> StabilityResult:
    from .stability import probe

    texts = _probe_texts(data, n, seed)
    return probe(lm, lm.tokenize(texts, padding_side="right", truncation=True, max_length=max_tokens))


def run_eval(cfg: EvalRun) -> EvalReport:
    """``workbench eval``: load ``cfg.model``, evaluate it on ``cfg.data``, write ``cfg.out`` (if given)."""
    from ..config import dump_config
    from ..models import load

    if not Path(cfg.data).exists():
        raise WorkbenchError(
            f"data folder {cfg.data} does not exist; pass an organism or SemEval data folder"
        )
    lm = load(cfg.model, dtype=cfg.dtype, device=cfg.device)
    names = {f.name for f in dataclasses.fields(EvalConfig)}
    settings = EvalConfig(**{k: getattr(cfg, k) for k in names})
    report = evaluate(lm, cfg.data, settings, out=cfg.out, progress=True)
    if cfg.out is not None:
        dump_config(cfg, Path(cfg.out) / "config.yaml")
    return report


def evaluate(
    lm: Any,
    data_dir: str | os.PathLike,
    config: EvalConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    progress: bool = False,
    **overrides: Any,
) -> EvalReport:
    """Run the evaluation suites on ``lm`` (a LoadedModel or a model spec) over ``data_dir``.

    ``data_dir``: an organism folder (``data/``, ``mia/``, ``utility/``) or a SemEval folder (the public
    LUME files). Settings come from ``config`` (:class:`EvalConfig`: suites, limit, generation length,
    MMLU source and formulation, ...) or keyword overrides of its fields (``suites="semeval,mia"``,
    ``limit=8``). ``out``: a folder that receives ``metrics.json`` and ``samples.jsonl``.
    """
    from .mia import evaluate_mia
    from .mmlu import evaluate_mmlu
    from .semeval import evaluate_semeval

    cfg = make_config(EvalConfig, config, overrides)
    names, limit, seed, batch_size = cfg.suites, cfg.limit, cfg.seed, cfg.batch_size
    if isinstance(lm, (str, os.PathLike)):
        from ..models import load

        lm = load(lm)
    data = Path(data_dir)
    if not data.exists():
        raise WorkbenchError(f"data folder {data} does not exist; pass an organism or SemEval data folder")
    report = EvalReport(model=str(getattr(lm, "spec", "<memory>")), data=str(data))
    if "semeval" in names:
        report.semeval = evaluate_semeval(
            lm,
            data,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=batch_size,
            part=cfg.part,
            limit=limit,
            seed=seed,
            progress=progress,
        )
        if report.semeval.missing:
            report.notes.append(
                f"SemEval aggregate over tasks {', '.join(report.semeval.tasks)}; cells "
                f"without records: {', '.join(report.semeval.missing)}"
            )
    if "mia" in names:
        report.mia = evaluate_mia(
            lm,
            data,
            k=cfg.mia_k,
            batch_size=max(1, batch_size // 4),
            limit=limit,
            seed=seed,
            progress=progress,
        )
    if "mmlu" in names:
        source = _mmlu_source(data, cfg.mmlu)
        organism = source != "mmlu" and (Path(source).parent / "organism.yaml").is_file()
        formulation = cfg.mmlu_formulation or ("cf" if organism else "mcf")
        report.mmlu = evaluate_mmlu(
            lm, source, num_fewshot=cfg.num_fewshot, batch_size=batch_size, formulation=formulation
        )
        if organism:
            report.notes.append(
                f"MMLU = the organism's utility set through lm-eval ({formulation.upper()}: "
                f"{'choice texts scored' if formulation == 'cf' else 'answer letters scored'})"
            )
    if "stability" in names:
        report.stability = _stability(lm, data, cfg.probe_texts, cfg.probe_max_tokens, seed)
    if out is not None:
        report.write(out)
    return report
