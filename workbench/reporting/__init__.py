"""Reports: self-contained HTML pages built from tables, figures and notes."""

from .html import Figure, Report, Section, Table

__all__ = ["Figure", "Report", "Section", "Table"]
