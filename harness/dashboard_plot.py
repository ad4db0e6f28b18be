"""Drawing the dashboard's forest plot; :mod:`harness.dashboard` makes its rows and says what they show.

The layout is set in inches, so that a row, a label and the text at its end keep their size however
many rows there are; every text is at least 8 pt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.dashboard import FAMILY_TITLES, VERDICT_COLOURS, Row, colour, grouped, raw_text

ROW_IN, PANEL_GAP_IN, HEADER_IN, FOOTER_IN = 0.27, 0.55, 0.85, 0.75
# the narrowest margins; each widens to its longest text (a run label, a raw value), measured
LEFT_IN, AXES_IN, RIGHT_IN = 2.6, 4.3, 6.0
MARGIN_PAD_IN = 0.25  # tick marks and white space beside the longest text
DPI = 150
VERDICT_COLUMN_PT = 80  # room for the longest verdict name at 9 pt
LABEL_PT, RAW_PT = 9, 8.5
AXIS_NOTE = ("(value − null) / (MDE − null): 0 is no effect (the band's edge for a band), 1 the minimal "
             "detectable effect (80% power at the reference run's size);\npositive is the predicted direction. "
             "A row off the axis has no MDE in its own unit: its raw value is at the row's end.")


def x_limits(groups: Sequence[tuple[str, Sequence[Row]]]) -> tuple[float, float]:
    """One x range for every panel: all standardised ends, 0 and 1, with a margin."""
    ends = [x for _, rows in groups for r in rows if r.scaled for x in r.scaled if x is not None]
    low, high = min([0.0, *ends]), max([1.0, *ends])
    pad = 0.06 * (high - low)
    return low - pad, high + pad


def slots(rows: Sequence[Row]) -> list[Row | str]:
    """A panel's lines from the top: each reading's name, then its rows."""
    out: list[Row | str] = []
    for row in rows:
        if not out or row.reading != getattr(out[-1], "reading", None):
            out.append(row.reading.removeprefix(row.family + "."))
        out.append(row)
    return out


def row_label(row: Row) -> str:
    return f"{row.experiment}  (n = {row.n_runs})"


def text_width_in(texts: Sequence[str], size: float) -> float:
    """The widest of ``texts`` at ``size`` pt in inches, from the font's outlines (before any drawing)."""
    from matplotlib.textpath import TextPath

    return max((TextPath((0, 0), text, size=size).get_extents().width for text in texts), default=0.0) / 72


def _row_end(ax, y: float, text: str, offset: float, **style) -> None:
    ax.annotate(text, xy=(1, y), xycoords=("axes fraction", "data"), xytext=(offset, 0), textcoords="offset points",
                annotation_clip=False, **{"va": "center", **style})


def _reading_name(ax, y: float, name: str) -> None:
    """A reading's name on its own line inside the panel, over the lines that cross it."""
    ax.annotate(name, xy=(0, y), xycoords=("axes fraction", "data"), xytext=(5, 0), textcoords="offset points",
                va="center", fontsize=9, weight="bold", color="#333333", zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})


def _reading_row(ax, y: float, row: Row) -> None:
    tint = colour(row.verdict)
    if row.scaled:
        value, low, high = row.scaled
        if low is not None:
            ax.plot([low, high], [y, y], color=tint, lw=2.4, solid_capstyle="butt")
        ax.plot(value, y, "o", color=tint, ms=6.5)
    else:
        ax.annotate(f"off axis: {row.off_axis}", xy=(0, y), xycoords=("axes fraction", "data"), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=8, style="italic", color=tint,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    _row_end(ax, y, row.verdict, 8, fontsize=9, weight="bold", color=tint)
    _row_end(ax, y, raw_text(row), 8 + VERDICT_COLUMN_PT, fontsize=RAW_PT, color="#222222")


def draw_panel(ax, family: str, lines: Sequence[Row | str], limits: tuple[float, float]) -> None:
    """One family: each reading's name over its rows, a rule between readings, 0 and 1 marked."""
    ax.axvline(0, color="#444444", lw=0.9)
    ax.axvline(1, color="#444444", lw=0.9, ls=":")
    for y, line in enumerate(lines):
        if isinstance(line, str):
            _reading_name(ax, y, line)
            if y:
                ax.axhline(y - 0.5, color="#bbbbbb", lw=0.8)
        else:
            _reading_row(ax, y, line)
    ticks = [(y, row_label(line)) for y, line in enumerate(lines) if isinstance(line, Row)]
    ax.set_yticks([y for y, _ in ticks], [text for _, text in ticks], fontsize=LABEL_PT)
    ax.set_xlim(limits)
    ax.set_ylim(len(lines) - 0.5, -0.5)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#e6e6e6", lw=0.6)
    ax.set_axisbelow(True)
    ax.set_title(FAMILY_TITLES.get(family, family), loc="left", fontsize=10.5, weight="bold")


def _header(fig, first_ax, title: str) -> None:
    from matplotlib.lines import Line2D

    fig.suptitle(title, x=0.5, y=1 - 0.12 / fig.get_figheight(), va="top", fontsize=12, weight="bold")
    fig.text(0.5, 1 - 0.42 / fig.get_figheight(), "dot: value, bar: 95% interval, both in units of the reading's "
             "minimal detectable effect (MDE); colour: the Holm-adjusted verdict", ha="center", va="top", fontsize=9)
    handles = [Line2D([], [], color=c, marker="o", lw=2.4, ms=6.5, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.62 / fig.get_figheight()))
    _row_end(first_ax, -0.5, "verdict", 8, fontsize=8, color="#555555", va="bottom")
    _row_end(first_ax, -0.5, "raw value [95% interval] unit", 8 + VERDICT_COLUMN_PT,
             fontsize=8, color="#555555", va="bottom")


def forest_figure(groups: Sequence[tuple[str, Sequence[Row]]], title: str) -> Any:
    """Stacked panels, one per family, sharing one x range (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every_row = [row for _, rows in groups for row in rows]
    left = max(LEFT_IN, text_width_in([row_label(r) for r in every_row], LABEL_PT) + MARGIN_PAD_IN)
    right = max(RIGHT_IN, (8 + VERDICT_COLUMN_PT) / 72 + text_width_in([raw_text(r) for r in every_row], RAW_PT)
                + MARGIN_PAD_IN)
    width = left + AXES_IN + right
    panels = [(family, slots(rows)) for family, rows in groups]
    height = HEADER_IN + FOOTER_IN + sum(ROW_IN * len(lines) + PANEL_GAP_IN for _, lines in panels)
    fig = plt.figure(figsize=(width, height))
    limits, top, axes = x_limits(groups), height - HEADER_IN, []
    for family, lines in panels:
        top -= PANEL_GAP_IN
        axes.append(fig.add_axes((left / width, (top - ROW_IN * len(lines)) / height, AXES_IN / width,
                                  ROW_IN * len(lines) / height)))
        top -= ROW_IN * len(lines)
        draw_panel(axes[-1], family, lines, limits)
    _header(fig, axes[0], title)
    fig.text(left / width, 0.12 / height, AXIS_NOTE, ha="left", va="bottom", fontsize=8.5)
    return fig


def draw_dashboard(rows: Sequence[Row], path: str | Path, title: str) -> Path | None:
    """Draw ``rows`` to ``path`` (a PNG); None when there is no row (a stale dashboard is removed)."""
    path = Path(path)
    if not rows:
        path.unlink(missing_ok=True)
        return None
    fig = forest_figure(grouped(rows), title)
    import matplotlib.pyplot as plt  # forest_figure chose the backend

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
