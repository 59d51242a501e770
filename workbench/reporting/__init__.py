"""Reports: self-contained HTML pages built from tables, figures and notes."""

from .html import Figure, Report, Section, Table
from .plots import save_figure, subplots

__all__ = ["Figure", "Report", "Section", "Table", "save_figure", "subplots"]
