"""What every figure shares: readable text sizes, shaded intervals, ticks at measured amounts and
the verdicts of the readings a figure shows. Agg backend."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from harness.verdicts import mean_ci  # noqa: E402

# the smallest text any figure prints (points); a figure test holds every text to it
MIN_FONT_PT = 8
STYLE = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "legend.fontsize": 8, "legend.title_fontsize": 8, "figure.titlesize": 11}
plt.rcParams.update(STYLE)


def interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean and the project's 95% t-interval over seeds or runs of the finite ``values``
    (a lone value is its own interval: no band, rather than none of the curve)."""
    finite = [float(v) for v in values if np.isfinite(v)]
    if not finite:
        return np.nan, np.nan, np.nan
    mean, (lo, hi) = mean_ci(finite)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lo = hi = mean
    return mean, lo, hi


def log_interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Geometric mean of |value| and its 95% t-interval on log10|value| (the scale on which a
    log-log slope is fitted; a sign flip across seeds does not cancel here). Zeros are left out."""
    logs = [np.log10(abs(v)) for v in values if np.isfinite(v) and v != 0]
    return tuple(10 ** e for e in interval(logs))


def band(ax: Any, xs: Sequence[float], mean: Sequence[float], lo: Sequence[float], hi: Sequence[float],
         **style: Any) -> None:
    """A curve of means with its interval shaded in the curve's colour."""
    (line,) = ax.plot(xs, mean, marker="o", ms=3, **style)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)


def aggregate_band(ax: Any, rows: Sequence[Mapping[str, Any]], xs: Sequence[float], **style: Any) -> None:
    """:func:`band` from aggregated rows (``mean``, ``ci_lo``, ``ci_hi`` over seeds); an undefined
    interval (one seed) draws the mean alone."""
    mean = np.array([r["mean"] for r in rows], dtype=float)
    lo = np.array([r["ci_lo"] for r in rows], dtype=float)
    hi = np.array([r["ci_hi"] for r in rows], dtype=float)
    band(ax, xs, mean, np.where(np.isfinite(lo), lo, mean), np.where(np.isfinite(hi), hi, mean), **style)


def measured_ticks(ax: Any, amounts: Iterable[float], factor: float = 2.0) -> None:
    """Label the x axis at measured amounts only: 0, the smallest positive one, and each next one at
    least ``factor`` times the last labelled (labels stay apart on a log-like axis); a minor tick
    marks every measured amount."""
    measured = sorted({float(a) for a in amounts})
    labelled: list[float] = []
    for amount in measured:
        if not labelled or amount == 0 or labelled[-1] == 0 or amount >= factor * labelled[-1]:
            labelled.append(amount)
    ax.set_xticks(labelled, [f"{a:g}" for a in labelled])
    ax.set_xticks(measured, minor=True)


def verdict_line(summary: Mapping[str, Any], prefixes: Sequence[str]) -> str:
    """'id: verdict' of the primary readings whose id starts with one of ``prefixes`` ('' if none)."""
    shown = [f"{p['id']}: {p.get('verdict', 'not judged')}" for p in summary.get("predictions", [])
             if p.get("primary") and p["id"].startswith(tuple(prefixes))]
    return "; ".join(shown)


def small_texts(fig: Any) -> list[tuple[str, float]]:
    """The visible, non-empty texts of ``fig`` printed under :data:`MIN_FONT_PT` (text, size)."""
    return [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT]
