"""Self-contained HTML pages: escaped text, tables that sort by a click on their header, embedded PNGs.

A page reaches nothing outside itself: images are base64 data URLs, the style and the sorting script are
inline, and its content security policy forbids every other source, so a page that tried would fail
visibly rather than leak a request.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1500px; padding: 0 1em; color: #222; }
.scroll { overflow-x: auto; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[data-dir="asc"]::after { content: " \\25B2"; }
th[data-dir="desc"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.prose { min-width: 14em; }
h2 { scroll-margin-top: 0.6em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { color: #555; font-size: 0.9em; }
code { font-size: 0.95em; }
"""
# Sorts a table's rows by the clicked column: numbers as numbers, blanks last, a second click reverses.
SORT_SCRIPT = """
function compareCells(a, b) {
  if (a === "" || b === "") return (a === "") - (b === "");
  const x = Number(a), y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) ? x - y : a.localeCompare(b);
}
for (const th of document.querySelectorAll("table.sortable th")) {
  th.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0], col = th.cellIndex;
    const dir = th.dataset.dir === "asc" ? -1 : 1;
    for (const other of th.parentNode.children) delete other.dataset.dir;
    th.dataset.dir = dir === 1 ? "asc" : "desc";
    const key = row => row.cells[col].dataset.sort ?? row.cells[col].textContent.trim();
    body.append(...[...body.rows].sort((a, b) => dir * compareCells(key(a), key(b))));
  });
}
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, the key it sorts by (the text when None) and its CSS class."""

    text: str
    sort: str | None = None
    css: str = ""


def esc(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def prose_cell(text: Any) -> Cell:
    """A cell of sentences (a measure, a note): wide enough to read."""
    return Cell("" if text is None else str(text), css="prose")


def number_cell(x: Any, digits: int = 3) -> Cell:
    """A number to ``digits`` significant figures that sorts by its full value; blank when missing."""
    if not isinstance(x, int | float) or isinstance(x, bool):
        return Cell("" if x is None else str(x), css="num")
    return Cell(f"{x:.{digits}g}", sort=repr(float(x)), css="num")


def _td(cell: Cell | str) -> str:
    cell = cell if isinstance(cell, Cell) else Cell(cell)
    attrs = (f' data-sort="{esc(cell.sort)}"' if cell.sort is not None else "") + (
        f' class="{cell.css}"' if cell.css else "")
    return f"<td{attrs}>{esc(cell.text)}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[Cell | str]]) -> str:
    """A table that sorts by any column when its header is clicked."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody></table></div>")


def image(path: Path, caption: str = "") -> str:
    """``path`` (a PNG) embedded as a data URL, with a caption."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    text = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption or path.stem)}">{text}</figure>'


def page(title: str, parts: Iterable[str], style: str = "") -> str:
    """A whole HTML document around ``parts`` (HTML fragments, in order), with ``style`` added to its CSS."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">', f"<title>{esc(title)}</title>", f"<style>{STYLE}{style}</style>",
        "</head><body>", f"<h1>{esc(title)}</h1>", *parts, f"<script>{SORT_SCRIPT}</script>", "</body></html>", "",
    ])
