"""What every stage shares: the resolved config, the run folder, model loading and the evaluation call."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .config import PipelineConfig


@dataclasses.dataclass
class Context:
    """The pipeline run a stage belongs to."""

    cfg: PipelineConfig
    """The resolved config."""
    out: Path
    """The run folder (each stage writes ``out/<stage>/``)."""

    def load(self, spec: str) -> Any:
        """Load the model ``spec`` on the pipeline's device and dtype."""
        from ..models import load

        return load(spec, device=self.cfg.device, dtype=self.cfg.dtype)

    def evaluate(self, lm: Any, data: str, folder: Path) -> dict:
        """Run the ``eval`` suites on ``lm`` over ``data`` into ``folder``; returns the metrics."""
        from ..evaluation.suite import evaluate
        from ..io import write_text

        report = evaluate(lm, data, self.cfg.eval, out=folder)
        write_text(folder / "table.txt", report.table() + "\n")
        return report.metrics()
