"""``run_pipeline``: check the config and the inputs, then run every stage into one run folder."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..config import dump_config
from ..errors import WorkbenchError
from ..io import read_json
from .config import PipelineConfig, resolve_config
from .context import Context
from .runner import StageResult, run_stages
from .stages import build_stages

log = logging.getLogger(__name__)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_inputs(cfg: PipelineConfig, out: Path) -> None:
    """Refuse, before anything is written, inputs that cannot work: missing data, facts or model folders,
    or a run folder that is a file."""
    if cfg.data is not None and not Path(cfg.data).exists():
        raise WorkbenchError(
            f"data {cfg.data} does not exist; point data: at a SemEval-layout folder or file"
        )
    if cfg.facts is not None and not Path(cfg.facts).is_file():
        raise WorkbenchError(f"facts file {cfg.facts} does not exist; point facts: at a JSONL of facts")
    if cfg.model is not None and not Path(cfg.model).exists() and not _HUB_ID.fullmatch(cfg.model):
        raise WorkbenchError(f"model {cfg.model} is neither a folder nor a hub id (owner/name)")
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"run folder {out} is a file; choose another --out")


def run_pipeline(
    config: PipelineConfig | str | Path | None = None,
    out: str | Path = "runs/pipeline",
    *,
    quick: bool = False,
    overrides: list[str] | None = None,
    force: bool = False,
) -> dict[str, StageResult]:
    """Run the main job into ``out`` and return every stage's result (``report.html`` at the top).

    ``config``: a :class:`PipelineConfig`, a YAML file (``configs/pipeline/``) or None (the organism
    defaults); ``quick`` applies tiny sizes and ``overrides`` (``["unlearn.train.max_steps=50"]``) set any
    key, in that order. A stage whose inputs are unchanged since the last run into ``out`` is skipped
    (``force`` reruns all). A refused config or input leaves no run folder behind.
    """
    cfg = resolve_config(config, overrides, quick)
    out = Path(out)
    check_inputs(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    return run_stages(build_stages(Context(cfg, out)), out, force=force, on_stage=_announce)


def _announce(name: str, i: int, n: int) -> None:
    log.info("[%d/%d] stage %s", i + 1, n, name)


def summary(out: str | Path) -> dict:
    """The ``summary.json`` of a finished pipeline run."""
    path = Path(out) / "summary.json"
    if not path.is_file():
        raise WorkbenchError(f"{path} does not exist; run the pipeline into {out} first")
    return read_json(path)
