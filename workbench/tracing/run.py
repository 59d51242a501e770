"""The tracing jobs of the CLI: ``workbench trace`` (:func:`run_trace`) and ``workbench patch`` (:func:`run_patch`).

Each job has one config: the method's settings (:class:`TraceConfig`, :class:`PatchConfig`) plus where
the model, the inputs and the output are. A job validates its inputs before it creates anything, then
writes the resolved ``config.yaml``, its arrays (safetensors), ``metrics.json`` and figures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .config import PatchConfig, TraceConfig
from .result import PatchResult, TraceResult


@dataclasses.dataclass(kw_only=True)
class TraceRun(TraceConfig):
    """``workbench trace``: ROME causal tracing of a fact file into a run folder."""

    model: str
    """model folder or hub id"""
    facts: str
    """JSONL of {prompt, subject, answer?}, or SemEval records (e.g. LUME's forget.jsonl): their QA records
    are traced with the question's named entity as the subject and the output as the answer"""
    out: str
    """run folder to write"""
    dtype: str | None = None
    """float32 | bfloat16 | float16 (default: float32 on the CPU)"""
    device: str | None = None
    """cpu | cuda | cuda:N (distributed runs use their own)"""
    figures: int = 10
    """per-fact ROME figures to draw"""

    def trace_config(self) -> TraceConfig:
        """The trace settings alone."""
        return _base(self, TraceConfig)


def _base(cfg: Any, cls: type) -> Any:
    """The fields of ``cls`` (a base class of ``cfg``'s) as an instance of ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: getattr(cfg, k) for k in names})


def summary(result: TraceResult) -> dict[str, Any]:
    """``metrics.json``: counts, σ, the window, peak layers and the AIE of every bucket and kind."""
    out: dict[str, Any] = {
        "facts_traced": len(result.facts),
        "facts_skipped": len(result.skipped),
        "sigma": result.sigma,
        "window": result.window,
        "peak_layer_last_subject": {},
        "aie": {},
    }
    if not result.facts:
        return out
    for kind in result.kinds:
        eff = result.layer_effect(kind)
        peak = result.peak_layer(kind)
        out["peak_layer_last_subject"][kind] = {"layer": peak, "aie": float(eff[peak])}
        aie = result.aie(kind)
        out["aie"][kind] = {
            b: {"mean": aie.mean[i], "ci95": aie.ci[i], "n": aie.n[i]} for i, b in enumerate(aie.buckets)
        }
    if "mlp" in result.kinds:
        out["top_mlp_layers"] = result.top_layers("mlp")
        out["peak_mlp_block"] = result.peak_block("mlp")
    return out


def run_trace(cfg: TraceRun) -> TraceResult | None:
    """Trace ``cfg.facts`` with ``cfg.model`` into ``cfg.out``; the main process returns the result.

    Under a multi-process launch the other processes return None. Nothing is written when the facts or
    the model cannot be read.
    """
    from ..config import dump_config
    from ..data import read_facts
    from ..io import run_dir, write_json
    from ..models import load
    from .causal_trace import causal_trace
    from .distributed import process_state, run_sharded
    from .plots import plot_aie, plot_fact

    facts = read_facts(cfg.facts)
    state = process_state(cpu=cfg.device in (None, "cpu"))
    device = state.device if state is not None else cfg.device
    lm = load(cfg.model, dtype=cfg.dtype, device=device)
    main = state is None or state.is_main_process
    out = run_dir(cfg.out)
    if main:
        dump_config(cfg, out / "config.yaml")
    settings = cfg.trace_config()
    result = run_sharded(
        lambda shard: causal_trace(lm, facts, settings, shard=shard, progress=main), out, state
    )
    if result is None:
        return None
    result.save(out)
    write_json(out / "metrics.json", summary(result))
    if result.facts:
        plot_aie(result, out / "aie.png")
        for f in result.facts[: cfg.figures]:
            plot_fact(f, out / "figures" / f"fact{f.index}.png", window=result.window)
    return result


def describe(result: TraceResult, out: str | Path) -> str:
    """Two lines for the terminal: what was traced, and where the peaks are."""
    lines = [
        f"traced {len(result.facts)} facts ({len(result.skipped)} skipped as unknown), "
        f"sigma={result.sigma:.4g}, noise={result.noise}σ, window={result.window} -> {out}"
    ]
    if result.facts:
        peaks = summary(result)["peak_layer_last_subject"]
        lines.append(
            "peak layer at the last subject token: "
            + " | ".join(f"{k} {v['layer']} (AIE {v['aie']:.4f})" for k, v in peaks.items())
        )
    return "\n".join(lines)


@dataclasses.dataclass(kw_only=True)
class PatchRun(PatchConfig):
    """``workbench patch``: token-replacement activation patching of one prompt pair into a run folder."""

    model: str
    """model folder or hub id"""
    clean: str
    """clean prompt"""
    corrupted: str
    """corrupted prompt (the same number of tokens)"""
    out: str
    """run folder to write"""
    method: str = "exact"
    """exact patching, or atp (the attribution-patching estimate: two forwards and one backward)"""
    dtype: str | None = None
    """float32 | bfloat16 | float16 (default: float32 on the CPU)"""
    device: str | None = None
    """cpu | cuda | cuda:N"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in ("exact", "atp"):
            from ..errors import WorkbenchError

            raise WorkbenchError(f"unknown patching method {self.method!r}; use exact or atp")


def patch_peaks(result: PatchResult) -> dict[str, dict]:
    """Per site: the cell with the largest effect, its change of the metric and its token."""
    peaks = {}
    base = result.corrupted if result.direction == "denoise" else result.clean
    for site, grid in result.scores.items():
        idx = result.peak(site)
        peaks[site] = {"index": idx, "effect": float(grid[idx]) - base, "token": result.tokens[idx[1]]}
    return peaks


def run_patch(cfg: PatchRun) -> PatchResult:
    """Patch ``cfg.clean`` against ``cfg.corrupted`` into ``cfg.out`` (nothing is written on bad input)."""
    from ..config import dump_config
    from ..io import run_dir, write_json
    from ..models import load
    from .attribution import attribution_patch
    from .patching import patch
    from .plots import plot_patch

    lm = load(cfg.model, dtype=cfg.dtype, device=cfg.device)
    settings = _base(cfg, PatchConfig)
    if cfg.method == "exact":
        result = patch(lm, cfg.clean, cfg.corrupted, settings)
    else:
        result = attribution_patch(lm, cfg.clean, cfg.corrupted, settings)
    out = run_dir(cfg.out)
    dump_config(cfg, out / "config.yaml")
    result.save(out)
    plot_patch(result, out / "patch.png")
    write_json(
        out / "metrics.json",
        {
            "clean": result.clean,
            "corrupted": result.corrupted,
            "metric": result.metric,
            "answers": result.answers,
            "peaks": patch_peaks(result),
        },
    )
    return result
