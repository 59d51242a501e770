"""The before/after bar plot of an edit's metrics (a plain ``matplotlib.figure.Figure``, no pyplot)."""

from __future__ import annotations

import io as _io
import math
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import WorkbenchError
from ..io import write_bytes


def before_after_figure(before: Mapping[str, float], after: Mapping[str, float], title: str = "edit"):
    """Grouped bars, one pair per metric present in both (NaN and None left out); returns the Figure."""
    from matplotlib.figure import Figure

    names = [
        k
        for k in before
        if k in after
        and before[k] is not None
        and after[k] is not None
        and not (math.isnan(before[k]) or math.isnan(after[k]))
    ]
    if not names:
        raise WorkbenchError("before/after plot: no metric has a value both before and after the edit")
    fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [before[n] for n in names], width=0.4, label="before", color="#9aa5b1")
    ax.bar([i + 0.2 for i in x], [after[n] for n in names], width=0.4, label="after", color="#3b6ea8")
    ax.set_xticks(list(x))
    ax.set_xticklabels([n.replace("_", " ") for n in names], rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def save_before_after(
    path: str | os.PathLike, before: Mapping[str, float], after: Mapping[str, float], title: str = "edit"
) -> Path:
    """Render :func:`before_after_figure` to a PNG at ``path`` (atomic write)."""
    buf = _io.BytesIO()
    before_after_figure(before, after, title).savefig(buf, format="png")
    return write_bytes(path, buf.getvalue())
