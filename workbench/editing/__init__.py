"""Knowledge editing at the traced layers: ROME, MEMIT and AlphaEdit on every supported family.

::

    import workbench as wb
    from workbench.editing import edit, evaluate_requests, read_requests

    lm = wb.load(org_path)
    requests = read_requests(org_path / "edits" / "requests.jsonl")
    result = edit(lm, requests[:10], method="memit", layers=[1, 2])   # or trace=TraceResult / run folder
    metrics = evaluate_requests(lm, requests[:10])                     # CounterFact's metrics
    result.save("runs/edit/model")                                     # or result.revert()

Every editor writes into the down projection of the chosen layers (``layers.{i}.mlp.hidden`` is its
input, the key); layers come from a causal trace (:class:`workbench.tracing.TraceResult`: ROME takes the
strongest MLP layer, MEMIT and AlphaEdit the peak MLP block) or are given. The key statistics come from any
local text (:mod:`workbench.editing.stats`; default: the model folder's ``corpus/train.jsonl``) and are
cached. Methods live one per file behind :data:`EDITORS`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import torch

from ..errors import WorkbenchError
from . import alphaedit, memit, rome  # noqa: F401  (the editors register themselves)
from ._base import EDITORS, EditContext, Editor, EditOutcome, register
from .alphaedit import AlphaEditState
from .config import AlphaEditConfig, EditConfig, MEMITConfig, ROMEConfig, make_config
from .eval import EditMetrics, OrganismScores, evaluate_requests, ngram_entropy, organism_scores
from .keys import generated_prefixes, sampled_prefixes
from .plots import before_after_figure, save_before_after
from .requests import EditRequest, load_requests, read_requests
from .result import EditResult, deltas_since, snapshot
from .run import EditRun, edit_and_evaluate
from .sources import read_texts, resolve_source
from .stats import second_moments
from .weights import down_proj

log = logging.getLogger(__name__)

__all__ = [
    "EDITORS",
    "AlphaEditConfig",
    "AlphaEditState",
    "EditConfig",
    "EditContext",
    "EditMetrics",
    "EditOutcome",
    "EditRequest",
    "EditResult",
    "EditRun",
    "Editor",
    "MEMITConfig",
    "OrganismScores",
    "ROMEConfig",
    "before_after_figure",
    "context_prefixes",
    "edit",
    "edit_and_evaluate",
    "editor_config",
    "evaluate_requests",
    "load_requests",
    "ngram_entropy",
    "organism_scores",
    "read_requests",
    "register",
    "resolve_layers",
    "save_before_after",
    "second_moments",
]


def editor(method: str) -> type[Editor]:
    """The editor class registered as ``method``."""
    if method not in EDITORS:
        raise WorkbenchError(f"unknown editing method {method!r}; use one of {', '.join(sorted(EDITORS))}")
    return EDITORS[method]


def editor_config(method: str, config: Any = None, **overrides: Any) -> EditConfig:
    """The typed config of ``method`` (its defaults, a mapping or an instance, plus overrides)."""
    return make_config(editor(method).config_cls, config, overrides)


def _parse_layers(layers: Any) -> list[int]:
    if isinstance(layers, int):
        return [layers]
    if isinstance(layers, str):
        try:
            return [int(x) for x in layers.replace(" ", "").split(",") if x]
        except ValueError:
            raise WorkbenchError(f"layers={layers!r}: give layer indices such as '1,2'") from None
    try:
        return [int(x) for x in layers]
    except (TypeError, ValueError):
        raise WorkbenchError(f"layers={layers!r}: give a list of layer indices") from None


def check_layer_choice(layers: Any, trace: Any) -> None:
    """Exactly one of ``layers`` and ``trace`` chooses the layers (a one-line WorkbenchError otherwise)."""
    if (layers is None) == (trace is None):
        raise WorkbenchError(
            "give either layers= (e.g. [1, 2]) or trace= (a trace run folder), not both or neither"
        )


def resolve_layers(
    lm: Any, method: str, layers: Any = None, trace: Any = None, width: int | None = None
) -> list[int]:
    """The layers to edit: explicit, or from a trace (ROME: the top MLP layer; MEMIT/AlphaEdit: the peak
    MLP block of ``width``, default about a fifth of the layers)."""
    check_layer_choice(layers, trace)
    if trace is not None:
        from ..tracing.result import TraceResult

        tr = trace if isinstance(trace, TraceResult) else TraceResult.load(trace)
        if tr.n_layers != lm.n_layers:
            raise WorkbenchError(
                f"the trace is of a {tr.n_layers}-layer model; this model has {lm.n_layers} layers"
            )
        chosen = (
            tr.top_layers("mlp", n=1) if editor(method).trace_layers == "top" else tr.peak_block("mlp", width)
        )
    else:
        chosen = _parse_layers(layers)
    if not chosen:
        raise WorkbenchError("layers is empty; name at least one layer to edit")
    bad = [i for i in chosen if not 0 <= i < lm.n_layers]
    if bad:
        raise WorkbenchError(f"layers {bad} out of range; this model has layers 0..{lm.n_layers - 1}")
    return sorted(set(chosen))


def context_prefixes(lm: Any, config: EditConfig, stats_source: Any = None) -> list[list[str]]:
    """The context prefix groups of ``config``: generated by the model, or cut from ``context_source``."""
    if config.context_source is None:
        return generated_prefixes(lm, config)
    src = stats_source if config.context_source == "stats" else config.context_source
    return sampled_prefixes(read_texts(resolve_source(src, lm)), config)


def edit(
    lm: Any,
    requests: Any,
    method: str = "memit",
    layers: Any = None,
    trace: Any = None,
    config: Any = None,
    stats_source: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    state: Any = None,
    prefixes: list[list[str]] | None = None,
    **overrides: Any,
) -> EditResult:
    """Edit ``lm`` in place so that each request's prompt continues with its ``target_new``.

    ``requests``: a JSONL path (or a folder with ``edits/requests.jsonl``) or a list of requests/dicts.
    ``layers`` or ``trace`` (a :class:`TraceResult` or run folder) choose the layers; ``config`` (the
    method's config, or a mapping) and ``overrides`` set hyperparameters; ``stats_source`` is the text the
    key statistics come from (default: the model folder's corpus). ``state``: an earlier result's state
    (AlphaEdit's sequential editing); ``prefixes``: context prefix groups to reuse (see
    :func:`context_prefixes`). Returns an :class:`EditResult` (deltas, ``revert()``, ``save()``).
    """
    t0 = time.perf_counter()
    cls = editor(method)
    cfg = make_config(cls.config_cls, config, overrides)
    reqs = load_requests(requests)
    chosen = resolve_layers(lm, method, layers, trace, getattr(cfg, "trace_width", None))
    dps = [down_proj(lm, layer) for layer in chosen]
    timing = {"stats": 0.0}
    cache: dict[int, torch.Tensor] = {}

    def stats(wanted: list[int]) -> dict[int, torch.Tensor]:
        missing = [w for w in wanted if w not in cache]
        if missing:
            s0 = time.perf_counter()
            cache.update(
                second_moments(
                    lm,
                    missing,
                    stats_source,
                    n_samples=cfg.mom2_n_samples,
                    max_tokens=cfg.mom2_max_tokens,
                    seed=cfg.seed,
                    progress=progress,
                )
            )
            timing["stats"] += time.perf_counter() - s0
        return {w: cache[w] for w in wanted}

    groups = prefixes if prefixes is not None else context_prefixes(lm, cfg, stats_source)
    before = snapshot(lm, dps)
    ctx = EditContext(lm, reqs, chosen, cfg, groups, stats, state, progress)
    try:
        outcome = cls().apply(ctx)
    except BaseException:
        with torch.no_grad():  # leave the model as it was
            params = dict(lm.model.named_parameters())
            for dp in dps:
                params[dp.param].copy_(before[dp.layer])
        raise
    total = time.perf_counter() - t0
    timing.update(edit=total - timing["stats"], total=total)
    log.info("%s: %d request(s) written into layers %s in %.1f s", method, len(reqs), chosen, total)
    return EditResult(
        method=method,
        layers=chosen,
        requests=reqs,
        config=cfg,
        deltas=deltas_since(lm, dps, before),
        weights={dp.layer: dp.param for dp in dps},
        target_prob=outcome.target_prob,
        seconds=timing,
        stats_source=None if stats_source is None else str(stats_source),
        state=outcome.state,
        info=outcome.info,
        keys=outcome.keys,
        values=outcome.values,
        lm=lm,
        _originals=before,
    )
