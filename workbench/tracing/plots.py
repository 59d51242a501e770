"""Figures of a :class:`TraceResult`: ROME's per-fact heatmaps and the AIE-by-layer curves.

The heatmap follows ROME's ``plot_trace_heatmap`` (kmeng01/rome, experiments/causal_trace.py): tokens
down, layers across, subject tokens marked with ``*``, colour floor at the corrupted score; one panel per
kind (hidden: purple, mlp: green, attn: red). Figures are bare matplotlib ``Figure`` objects (no pyplot
state) written atomically by :func:`workbench.reporting.plots.save_figure`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..reporting.plots import save_figure, subplots
from .result import BUCKETS, FactTrace, PatchResult, TraceResult

CMAPS = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}
TITLES = {
    "hidden": "single restored layer (residual)",
    "mlp": "restored MLP window centre",
    "attn": "restored attention window centre",
}


def plot_fact(fact: FactTrace, path: str | os.PathLike, *, window: int = 10) -> Path:
    """ROME's figure for one fact: one heatmap per traced kind, tokens × layers."""
    kinds = list(fact.scores)
    labels = [
        repr(t)[1:-1] + ("*" if fact.subject_span[0] <= i < fact.subject_span[1] else "")
        for i, t in enumerate(fact.tokens)
    ]
    T, L = fact.scores[kinds[0]].shape
    fig, axes = subplots(1, len(kinds), figsize=(3.2 * len(kinds) + 1, 0.28 * T + 1.4))
    for ax, kind in zip(axes[0], kinds):
        im = ax.pcolormesh(
            fact.scores[kind].numpy(),
            cmap=CMAPS.get(kind, "viridis"),
            vmin=min(fact.corrupted_score, float(fact.scores[kind].min())),
        )
        ax.invert_yaxis()
        ax.set_yticks([i + 0.5 for i in range(T)])
        ax.set_yticklabels(labels if ax is axes[0][0] else [], fontsize=7)
        step = max(1, L // 8)
        ax.set_xticks([i + 0.5 for i in range(0, L, step)])
        ax.set_xticklabels(list(range(0, L, step)), fontsize=7)
        ax.set_xlabel(TITLES.get(kind, kind) + ("" if kind == "hidden" else f" ({window})"), fontsize=7)
        ax.set_title(kind, fontsize=9)
        cb = fig.colorbar(im, ax=ax)
        cb.ax.tick_params(labelsize=6)
    fig.suptitle(
        f"p({fact.answer_token.strip()!r}) after restoring, corrupted {fact.corrupted_score:.3f}, "
        f"clean {fact.clean_score:.3f}",
        fontsize=9,
    )
    return save_figure(fig, path)


def plot_aie(result: TraceResult, path: str | os.PathLike) -> Path:
    """AIE by layer for each kind, one curve per token bucket with its 95% CI band."""
    kinds = list(result.kinds)
    fig, axes = subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.2))
    layers = list(range(result.n_layers))
    for ax, kind in zip(axes[0], kinds):
        aie = result.aie(kind)
        for b, name in enumerate(BUCKETS):
            if aie.n[b] == 0:
                continue
            m, c = aie.mean[b].numpy(), aie.ci[b].numpy()
            (line,) = ax.plot(layers, m, label=f"{name} (n={aie.n[b]})", lw=1.4)
            ax.fill_between(layers, m - c, m + c, color=line.get_color(), alpha=0.18)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(layers if len(layers) <= 16 else layers[:: max(1, len(layers) // 8)])
        ax.set_title(f"AIE of restoring {kind}", fontsize=9)
        ax.set_xlabel("layer" if kind == "hidden" else f"centre of {result.window}-layer window", fontsize=8)
    axes[0][0].set_ylabel("average indirect effect on p(answer)", fontsize=8)
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.suptitle(
        f"{len(result.facts)} facts, noise {result.noise}σ (σ={result.sigma:.3g}), {result.samples} samples",
        fontsize=9,
    )
    return save_figure(fig, path)


def plot_patch(result: PatchResult, path: str | os.PathLike) -> Path:
    """Heatmaps of a patching grid per site kind (heads summed over positions)."""
    sites = list(result.scores)
    fig, axes = subplots(1, len(sites), figsize=(3.6 * len(sites), 3.4))
    for ax, site in zip(axes[0], sites):
        grid = result.scores[site]
        base = result.corrupted if result.direction == "denoise" else result.clean
        eff = grid - base
        if site == "heads":
            eff, xlabel, ylabels = eff.sum(1), "head", None
        else:
            xlabel, ylabels = "position", [repr(t)[1:-1] for t in result.tokens]
        lim = float(eff.abs().max()) or 1.0
        im = ax.pcolormesh(eff.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.invert_yaxis()
        ax.set_ylabel("layer", fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        if ylabels is not None:
            ax.set_xticks([i + 0.5 for i in range(len(ylabels))])
            ax.set_xticklabels(ylabels, rotation=90, fontsize=6)
        ax.set_title(f"{site} ({result.method}, {result.direction})", fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.suptitle(
        f"change in {result.metric} (clean {result.clean:.3f}, corrupted {result.corrupted:.3f})", fontsize=9
    )
    return save_figure(fig, path)
