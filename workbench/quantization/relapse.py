"""Unlearning relapse under quantization (Zhang et al., ICLR 2025, "Catastrophic Failure of LLM
Unlearning via Quantization", arXiv:2410.16454).

Unlearning with a utility constraint moves weights only a little; when those small updates fall in
the same quantization buckets as the original weights, quantizing the unlearned model restores the
original model's weights, and the forgotten knowledge comes back. :func:`relapse` measures it: the
SemEval-2025 Task 4 metrics of the full-precision model and of its quantized copy, and the rise of the
forget QA accuracy (knowledge) and forget regurgitation (ROUGE-L recall) from the first to the second.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

KEYS = {
    "forget_qa": "forget/overall/knowledge",
    "forget_regurgitation": "forget/overall/regurgitation",
    "retain_qa": "retain/overall/knowledge",
    "retain_regurgitation": "retain/overall/regurgitation",
}


@dataclasses.dataclass
class SemEvalSnapshot:
    """The four overall SemEval numbers of one model (fractions in [0, 1]; None when absent)."""

    forget_qa: float | None
    forget_regurgitation: float | None
    retain_qa: float | None
    retain_regurgitation: float | None
    task_aggregate: float

    @classmethod
    def of(cls, result: Any) -> SemEvalSnapshot:
        """From a :class:`workbench.evaluation.semeval.SemEvalResult`."""
        return cls(
            **{k: result.overall.get(v) for k, v in KEYS.items()}, task_aggregate=result.task_aggregate
        )


@dataclasses.dataclass
class RelapseResult:
    """SemEval numbers before (full precision) and after quantization, and the relapse."""

    method: str
    before: SemEvalSnapshot
    after: SemEvalSnapshot

    def rise(self, name: str) -> float | None:
        """``after - before`` of one number, in percentage points."""
        a, b = getattr(self.after, name), getattr(self.before, name)
        return None if a is None or b is None else 100.0 * (a - b)

    @property
    def forget_qa_rise(self) -> float | None:
        """Rise of forget QA accuracy, in points: the relapse."""
        return self.rise("forget_qa")

    @property
    def forget_regurgitation_rise(self) -> float | None:
        """Rise of forget regurgitation (ROUGE-L recall), in points."""
        return self.rise("forget_regurgitation")

    def metrics(self) -> dict[str, Any]:
        """A flat dict for ``metrics.json``."""
        out: dict[str, Any] = {"method": self.method}
        for name in (*KEYS, "task_aggregate"):
            out[f"{name}_before"] = getattr(self.before, name)
            out[f"{name}_after"] = getattr(self.after, name)
            out[f"{name}_rise_points"] = self.rise(name)
        return out

    def table(self) -> str:
        """A printable table of before / after / rise."""

        def fmt(v: float | None, scale: float = 100.0, sign: bool = False) -> str:
            if v is None:
                return f"{'-':>10}"
            return f"{v * scale:>+10.1f}" if sign else f"{v * scale:>10.1f}"

        lines = [f"{'relapse after ' + self.method:34s}{'fp':>10}{'quant':>10}{'rise':>10}"]
        for name in (*KEYS, "task_aggregate"):
            b, a = getattr(self.before, name), getattr(self.after, name)
            lines.append(f"  {name.replace('_', ' '):32s}{fmt(b)}{fmt(a)}{fmt(self.rise(name), 1.0, True)}")
        lines.append("  (percent; rise in points: positive on forget = knowledge coming back)")
        return "\n".join(lines)


def semeval_snapshot(lm: Any, data_dir: str | os.PathLike, **eval_kw: Any) -> SemEvalSnapshot:
    """Run the SemEval suite of :func:`workbench.evaluation.evaluate` on ``lm`` and keep the headline numbers."""
    from ..evaluation.suite import evaluate

    report = evaluate(lm, data_dir, suites=("semeval",), **eval_kw)
    return SemEvalSnapshot.of(report.semeval)


def relapse(
    fp_lm: Any,
    q_lm: Any,
    data_dir: str | os.PathLike,
    *,
    before: SemEvalSnapshot | None = None,
    **eval_kw: Any,
) -> RelapseResult:
    """SemEval metrics of ``fp_lm`` and ``q_lm`` on ``data_dir`` and the relapse between them.

    ``eval_kw`` goes to :func:`workbench.evaluation.evaluate` (``part``, ``limit``, ``max_new_tokens``,
    ``batch_size``...); ``before`` reuses an earlier full-precision snapshot.
    """
    from .registry import quant_info

    info = quant_info(q_lm)
    before = before if before is not None else semeval_snapshot(fp_lm, data_dir, **eval_kw)
    after = semeval_snapshot(q_lm, data_dir, **eval_kw)
    return RelapseResult(method=info.method if info else "?", before=before, after=after)
