"""Figures of a mitigations run, drawn from its saved metrics and summary only: a forest plot of
condition x reading, and the deepest alignment's way back under reverse fine-tuning per condition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.dashboard import colour  # noqa: E402
from harness.figure_style import band, interval, measured_ticks  # noqa: E402
from harness.runs import RunDir  # noqa: E402
from theory.figures import save_figure  # noqa: E402

# the forest plot's panels: reading suffix, axis label
READINGS = (("retention", "retention minus SFT's\n(share of the alignment gain kept, steps 1-9)"),
            ("gain_log_odds", "alignment gain minus SFT's\n(log-odds above S0 at the largest F)"),
            ("kl_after_alignment", "KL(theta0||model) after alignment\nminus SFT's (nats/token)"),
            ("rebound", "rebound reading under the condition\n(initial-rate slope per decade of F)"))


def forest_rows(predictions: Sequence[Mapping[str, Any]], conditions: Sequence[str], suffix: str
                ) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, prediction) of one reading for each condition, the pre-trained start's only."""
    by_id = {p["id"]: p for p in predictions}
    return [(c, by_id[f"mitigation.{c}_{suffix}"]) for c in conditions if f"mitigation.{c}_{suffix}" in by_id]


def draw_forest(summary: Mapping[str, Any], path: Path, title: str,
                readings: Sequence[tuple[str, str]] = READINGS) -> Path:
    """Condition x reading (``readings``: id suffix, axis label): value and 95% interval over runs,
    coloured by verdict (primary readings; exploratory ones grey), the band of a band claim shaded."""
    conditions = summary["treatments"]
    fig, axes = plt.subplots(1, len(readings), figsize=(4.2 * len(readings), 0.5 * len(conditions) + 2.2),
                             sharey=True)
    for ax, (suffix, label) in zip(axes, readings, strict=True):
        for name, p in forest_rows(summary["predictions"], conditions, suffix):
            y = conditions.index(name)  # one row per condition in every panel
            value, (lo, hi) = p["value"], p["ci"]
            c = colour(p.get("verdict_adjusted") or p.get("verdict") or "")
            ax.plot([lo, hi], [y, y], color=c, lw=2.4)
            ax.plot([value], [y], "o", color=c, ms=6 if p.get("primary") else 4,
                    mfc=c if p.get("primary") else "white")
            if p.get("band"):
                ax.fill_between(p["band"], y - 0.3, y + 0.3, color=c, alpha=0.12, linewidth=0)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(range(len(conditions)), conditions)
        ax.set_xlabel(label)
        ax.invert_yaxis()
    primaries = any(p.get("primary") for p in summary["predictions"])
    legend = ("filled: pre-registered primary (coloured by Holm-adjusted verdict: green holds, orange "
              "contradicted, grey inconclusive); open: exploratory") if primaries else "all exploratory: no verdicts"
    fig.suptitle(f"{title}\n{legend}")
    return save_figure(fig, path, dpi=110)


def retention_curves(rows: Sequence[Mapping[str, Any]], init: str) -> dict[str, dict[float, list[float]]]:
    """condition -> R -> per (run, task) share of the alignment gain held at the largest F."""
    top = max(int(r["condition"]["F"]) for r in rows if r["measure"] == "score_log_odds")
    s0 = {(r["seed"], r["condition"]["treatment"], r["condition"]["task"]): r["value"] for r in rows
          if r["measure"] == "s0_log_odds" and str(r["condition"].get("init", "pretrained")) == init}
    curves: dict[tuple, dict[float, float]] = {}
    for r in rows:
        c = r["condition"]
        if (r["measure"] == "score_log_odds" and int(c["F"]) == top and "+" not in str(c["task"])
                and str(c.get("init", "pretrained")) == init):
            curves.setdefault((r["seed"], c["treatment"], c["task"]), {})[float(r["x"])] = float(r["value"])
    out: dict[str, dict[float, list[float]]] = {}
    for key, curve in curves.items():
        gain = curve[0.0] - s0[key]
        for x, v in curve.items():
            out.setdefault(key[1], {}).setdefault(x, []).append((v - s0[key]) / gain if gain > 0 else np.nan)
    return out


def draw_retention(rows: Sequence[Mapping[str, Any]], conditions: Sequence[str], path: Path, title: str) -> Path:
    """The share of the alignment gain held against R at the largest F, per condition and start."""
    inits = sorted({str(r["condition"].get("init", "pretrained")) for r in rows}, key=lambda i: i != "pretrained")
    fig, axes = plt.subplots(1, len(inits), figsize=(7 * len(inits), 4.8), squeeze=False)
    for ax, init in zip(axes[0], inits, strict=True):
        curves = retention_curves(rows, init)
        for condition in conditions:
            if condition in curves:
                xs = sorted(curves[condition])
                band(ax, xs, *zip(*(interval(curves[condition][x]) for x in xs), strict=True), label=condition)
        ax.axhline(0, color="grey", ls="--", label="S0")
        ax.set_xscale("symlog", linthresh=16)
        measured_ticks(ax, {x for c in curves.values() for x in c})
        ax.set_xlabel("reverse examples R")
        ax.set_ylabel("share of the alignment gain held (log-odds)")
        ax.set_title("from pre-trained theta0" if init == "pretrained" else f"control: {init} start (no pre-training)")
        ax.legend()
    fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


def draw_mitigations(run_dir: RunDir, model: str = "") -> list[Path]:
    summary, rows = run_dir.read_json("summary.json"), run_dir.read_metrics()
    runs = len({r["seed"] for r in rows if r["measure"] == "s0_log_odds"})
    name = f"mitigations{', ' + model if model else ''}"
    return [draw_forest(summary, run_dir.figures_dir / "mitigations_forest.png",
                        f"{name}: each condition against plain SFT, 95% intervals over {runs} runs"),
            draw_retention(rows, summary["treatments"], run_dir.figures_dir / "mitigations_retention.png",
                           f"{name}: the deepest alignment's way back, mean and 95% interval over {runs} runs and tasks")]
