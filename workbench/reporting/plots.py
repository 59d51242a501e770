"""The one way library code draws a plot: a bare :class:`matplotlib.figure.Figure`, saved atomically.

No ``pyplot`` state and no ``matplotlib.use``: a ``Figure`` built directly renders with the Agg canvas
whatever backend the caller has chosen (a notebook's inline backend stays as it was), and nothing is
left open. Usage::

    fig, axes = subplots(1, 2, figsize=(9, 3))
    axes[0][0].plot(x, y)
    save_figure(fig, out / "curves.png")
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.0, 4.0), **kw: Any):
    """``(figure, axes)`` like ``pyplot.subplots(..., squeeze=False)``: ``axes[row][col]`` always."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Render ``fig`` to PNG and write it to ``path`` atomically (tmp + rename); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..io import write_bytes

    FigureCanvasAgg(fig)  # attach a canvas without touching pyplot's state
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=dpi)
    return write_bytes(path, buf.getvalue())
