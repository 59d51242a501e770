"""A small, dependency-free builder for self-contained HTML reports.

Figures are embedded as PNG data URIs, so the page needs no network and no side files. Tables are
plain HTML with numeric columns right-aligned; wide tables scroll inside their own box rather than
pushing the page sideways.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import write_text

_CSS = """
:root { --fg:#1d2330; --muted:#5b6472; --line:#dde1e8; --accent:#2f5db8; --bg:#fbfbfd; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font:15px/1.55 -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif; }
main { max-width: 1060px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 8px;
     padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; color: var(--muted); }
p.lead { color: var(--muted); margin: 0 0 18px; }
p.note { color: var(--muted); font-size: 13.5px; margin: 6px 0 12px; }
nav { font-size: 13.5px; margin: 10px 0 6px; } nav a { margin-right: 14px; color: var(--accent);
      text-decoration: none; }
.tbl { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { background: #f0f2f6; font-weight: 600; } td.num { text-align: right; }
tr:hover td { background: #f6f8fb; }
figure { margin: 10px 0 18px; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line);
         border-radius: 4px; background: white; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 12px; }
code { background: #eef1f5; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
"""


# Records, once the page has loaded, how many figures decoded (read by the headless-browser test).
_SCRIPT = (
    "window.addEventListener('load',function(){var i=document.images,n=0;"
    "for(var j=0;j<i.length;j++){if(i[j].complete&&i[j].naturalWidth>0)n++;}"
    "document.body.setAttribute('data-images-loaded',n+'/'+i.length);});"
)


@dataclasses.dataclass
class Table:
    """Rows of a table: a list of mappings with the same keys (column order from ``columns``)."""

    rows: Sequence[dict[str, Any]]
    columns: Sequence[str] | None = None
    caption: str = ""
    digits: int = 3


@dataclasses.dataclass
class Figure:
    """A PNG file to embed."""

    path: str | os.PathLike
    caption: str = ""


@dataclasses.dataclass
class Section:
    """A titled section: paragraphs (text), tables and figures, in the order given."""

    title: str
    items: list[str | Table | Figure] = dataclasses.field(default_factory=list)
    anchor: str = ""


def _fmt(value: Any, digits: int) -> tuple[str, bool]:
    if isinstance(value, bool) or value is None:
        return ("—" if value is None else str(value)), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        if math.isnan(value):
            return "—", True
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 10 ** (-digits)):
            return f"{value:.{digits}g}", True
        return f"{value:.{digits}f}", True
    return str(value), False


def _table(t: Table) -> str:
    cols = list(t.columns or (t.rows[0].keys() if t.rows else []))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for row in t.rows:
        cells = []
        for c in cols:
            text, num = _fmt(row.get(c), t.digits)
            cells.append(
                f"<td class='num'>{html.escape(text)}</td>" if num else f"<td>{html.escape(text)}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<p class='note'>{html.escape(t.caption)}</p>" if t.caption else ""
    return f"<div class='tbl'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{cap}"


def _figure(f: Figure) -> str:
    path = Path(f.path)
    if not path.is_file():
        return f"<p class='note'>(figure {html.escape(path.name)} was not produced)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = f"<figcaption>{html.escape(f.caption)}</figcaption>" if f.caption else ""
    return f"<figure><img alt='{html.escape(f.caption or path.stem)}' src='data:image/png;base64,{data}'>{cap}</figure>"


@dataclasses.dataclass
class Report:
    """A one-page report: title, lead paragraph and sections."""

    title: str
    lead: str = ""
    sections: list[Section] = dataclasses.field(default_factory=list)

    def render(self) -> str:
        """The whole page as an HTML string."""
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.lead:
            parts.append(f"<p class='lead'>{html.escape(self.lead)}</p>")
        anchors = [(s.anchor or f"s{i}", s.title) for i, s in enumerate(self.sections)]
        parts.append("<nav>" + "".join(f"<a href='#{a}'>{html.escape(t)}</a>" for a, t in anchors) + "</nav>")
        for (anchor, _), sec in zip(anchors, self.sections):
            parts.append(f"<section id='{anchor}'><h2>{html.escape(sec.title)}</h2>")
            figures: list[str] = []
            for item in [*sec.items, None]:
                if isinstance(item, Figure):
                    figures.append(_figure(item))
                    continue
                if figures:  # a run of several figures sits in a responsive grid
                    parts.append(
                        figures[0] if len(figures) == 1 else f"<div class='grid'>{''.join(figures)}</div>"
                    )
                    figures = []
                if isinstance(item, Table):
                    parts.append(_table(item))
                elif item is not None:
                    parts.append(f"<p>{html.escape(str(item))}</p>")
            parts.append("</section>")
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main><script>{_SCRIPT}</script></body></html>"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page atomically."""
        return write_text(path, self.render())
