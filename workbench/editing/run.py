"""One edit with its evaluation before and after: what ``workbench edit`` and the pipeline's edit stage wrap.

:func:`edit_and_evaluate` scores the requests (CounterFact's metrics) and, for an organism folder, retain
QA and utility, then edits, scores again and returns an :class:`EditRun`; :meth:`EditRun.save` writes the
run folder: ``model/`` (the edited model, safetensors), ``metrics.json``, ``before_after.md`` and
``before_after.png``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from ..io import run_dir, write_json, write_text
from .eval import evaluate_requests, organism_scores
from .plots import save_before_after
from .requests import load_requests
from .result import EditResult


@dataclasses.dataclass
class EditRun:
    """An edit and the metrics before and after it."""

    result: EditResult
    before: dict[str, float]
    after: dict[str, float]

    def table(self) -> str:
        """A markdown table: one row per metric, before / after / change."""
        lines = ["| metric | before | after | change |", "|---|---|---|---|"]
        for key, b in self.before.items():
            a = self.after.get(key)
            if a is None or key == "n_requests" or math.isnan(b) or math.isnan(a):
                continue
            lines.append(f"| {key} | {b:.3f} | {a:.3f} | {a - b:+.3f} |")
        return "\n".join(lines)

    def save(self, folder: str | os.PathLike, *, model: bool = True) -> Path:
        """Write the run folder (``model/`` unless ``model=False``)."""
        folder = run_dir(folder)
        if model:
            self.result.save(folder / "model")
        write_json(
            folder / "metrics.json",
            {"before": self.before, "after": self.after, "edit": self.result.summary()},
        )
        write_text(folder / "before_after.md", self.table() + "\n")
        title = f"{self.result.method}, {len(self.result.requests)} edit(s), layers {self.result.layers}"
        save_before_after(folder / "before_after.png", self.before, self.after, title)
        return folder


def _organism_folder(lm: Any, organism: Any) -> Path | None:
    if organism is False:
        return None
    path = Path(str(organism if organism not in (None, True) else lm.spec))
    ok = (path / "data" / "retain_train.jsonl").is_file() and (path / "utility" / "test.jsonl").is_file()
    return path if ok else None


def _scores(lm: Any, requests: list, folder: Path | None, with_fluency: bool, progress: bool) -> dict:
    out = evaluate_requests(lm, requests, with_fluency=with_fluency, progress=progress).as_dict()
    if folder is not None:
        out.update(organism_scores(lm, folder, progress=progress).as_dict())
    return out


def edit_and_evaluate(
    lm: Any,
    requests: Any,
    method: str = "memit",
    *,
    layers: Any = None,
    trace: Any = None,
    config: Any = None,
    stats_source: Any = None,
    organism: Any = None,
    with_fluency: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> EditRun:
    """Score, edit (:func:`workbench.editing.edit`, in place), score again.

    ``organism``: a folder with ``data/`` and ``utility/`` whose retain/forget QA and utility are scored too
    (default: the model's own folder when it is an organism; ``False``: never).
    """
    from . import edit

    reqs = load_requests(requests)
    folder = _organism_folder(lm, organism)
    before = _scores(lm, reqs, folder, with_fluency, progress)
    result = edit(
        lm,
        reqs,
        method=method,
        layers=layers,
        trace=trace,
        config=config,
        stats_source=stats_source,
        progress=progress,
        **overrides,
    )
    after = _scores(lm, reqs, folder, with_fluency, progress)
    return EditRun(result, before, after)


@dataclasses.dataclass
class EditJob:
    """``workbench edit``: write CounterFact-style requests into a model with ROME, MEMIT or AlphaEdit.

    Writes into ``out``: ``model/`` (the edited model, safetensors), ``metrics.json`` (CounterFact's metrics
    and, for an organism, retain/forget QA and utility, before and after), ``before_after.md``,
    ``before_after.png`` and ``config.yaml``."""

    model: str
    """model folder (or hub id)"""
    out: str
    """run folder"""
    requests: str | None = None
    """JSONL of {prompt, subject, target_new, target_true?, paraphrase_prompts?, neighborhood_prompts?}
    (default: the model folder's edits/requests.jsonl, which an organism writes)"""
    method: str = "memit"
    """rome | memit | alphaedit"""
    layers: list[int] | None = None
    """layers whose MLP down projection is edited, e.g. 1,2 (or give trace)"""
    trace: str | None = None
    """a `workbench trace` run folder: ROME takes its strongest MLP layer, MEMIT/AlphaEdit its peak block"""
    stats_source: str | None = None
    """text for the key statistics C = E[k kᵀ]: a .txt, .jsonl, datasets folder or model folder (default:
    the model folder's corpus)"""
    side: str | None = None
    """only the requests whose 'side' field is this (an organism's requests: retain | forget)"""
    limit: int | None = None
    """only the first N requests"""
    eval: bool = True
    """score the requests (and an organism's QA and utility) before and after"""
    fluency: bool = False
    """also ROME's generation fluency (n-gram entropy; slower)"""
    save_model: bool = True
    """write the edited model to <out>/model"""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """the method's hyperparameters (ROMEConfig / MEMITConfig / AlphaEditConfig fields), e.g. {v_num_grad_steps: 30}"""

    def __post_init__(self) -> None:
        from ..errors import WorkbenchError
        from . import check_layer_choice, editor

        editor(self.method)  # an unknown method: one line naming the known ones
        check_layer_choice(self.layers, self.trace)
        if self.limit is not None and self.limit < 1:
            raise WorkbenchError(f"limit={self.limit} must be >= 1")


def option_fields() -> dict[str, tuple[Any, str, list[str]]]:
    """Every editor hyperparameter: name -> (type, docstring, the methods that take it)."""
    from ..config import option_union
    from ._base import EDITORS

    return option_union({name: EDITORS[name].config_cls for name in sorted(EDITORS)})


def run_edit(job: EditJob, *, progress: bool = True) -> tuple[EditRun, Path]:
    """Load, select the requests, edit (scored before and after unless ``job.eval`` is off), save the run.

    The requests, the method's options and the layers are checked before the run folder is created.
    """
    from ..config import dump_config
    from ..errors import WorkbenchError
    from ..models import load
    from . import edit, editor_config, resolve_layers

    source = job.requests or job.model
    reqs = load_requests(source)
    if job.side is not None:
        reqs = [r for r in reqs if r.extra.get("side") == job.side]
        if not reqs:
            raise WorkbenchError(
                f"no request in {source} has side={job.side!r}; drop --side or use retain | forget"
            )
    reqs = reqs[: job.limit] if job.limit else reqs
    editor_config(job.method, job.options)  # unknown or bad option: fail before loading
    lm = load(job.model)
    resolve_layers(lm, job.method, job.layers, job.trace)  # out of range: fail before the run folder
    how = {"layers": job.layers, "trace": job.trace, "config": job.options, "stats_source": job.stats_source}
    if job.eval:
        run = edit_and_evaluate(lm, reqs, job.method, with_fluency=job.fluency, progress=progress, **how)
    else:
        run = EditRun(edit(lm, reqs, method=job.method, progress=progress, **how), {}, {})
    folder = run.save(job.out, model=job.save_model)
    dump_config(job, folder / "config.yaml")
    return run, folder
