"""The main job, ``workbench pipeline`` / :func:`run_pipeline`: organism → baseline → trace → select →
unlearn → evaluate → quantize → sae → report.

Each stage (one file in :mod:`.stages`) writes ``<out>/<stage>/`` and is skipped on a re-run when its
inputs (its slice of the resolved config and the stages it reads) are unchanged; a failure names the
stage and keeps what earlier stages wrote (:mod:`.runner`). :mod:`.context` loads models and runs the
evaluation for every stage; :mod:`.report` builds the page one section at a time. The config
(:class:`PipelineConfig`) embeds the modules' own configs; ``--quick`` runs tiny sizes end to end::

    import workbench as wb
    results = wb.run_pipeline(None, "runs/pipeline", quick=True, overrides=["unlearn.train.max_steps=30"])
    wb.pipeline.summary("runs/pipeline")["methods"]
"""

from __future__ import annotations

from .config import QUICK, PipelineConfig, resolve_config
from .job import run_pipeline, summary
from .runner import Stage, StageResult, run_stages
from .stages import STAGES

__all__ = [
    "QUICK",
    "STAGES",
    "PipelineConfig",
    "Stage",
    "StageResult",
    "resolve_config",
    "run_pipeline",
    "run_stages",
    "summary",
]
