"""Figures of the resistance and rebound experiments, drawn from the saved metrics only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.runs import RunDir  # noqa: E402
from theory.figures import save_figure  # noqa: E402
from toymodels.protocols.resistance import table1  # noqa: E402

# the starting points of a resistance run, left to right, and their panel titles
STARTS = {"pretrained": "from pre-trained theta0", "random": "control: no pre-training (random init)",
          "permuted": "control: permuted pre-trained weights"}


def draw_resistance(run_dir: RunDir) -> list[Path]:
    """Inverse vs forward per comparison against y = x (mean over runs): one row per sampling
    temperature, pre-trained theta0 on the left, then each no-pre-training control present."""
    rows = run_dir.read_metrics()
    written = []
    for measure, label in (("loss_mean_nats", "training loss, mean over the epoch (nats/token)"),
                           ("excess_mean_nats", "KL-excess = loss - data entropy H(p_T), est. KL(data||model)")):
        cells = table1(rows, measure)
        if not cells:
            continue
        temps = sorted({c["T"] for c in cells})
        inits = [i for i in STARTS if i == "pretrained" or any(c["init"] == i for c in cells)]
        fig, axes = plt.subplots(len(temps), len(inits), figsize=(5 * len(inits), 4.4 * len(temps)), squeeze=False)
        for row, temp in zip(axes, temps, strict=True):
            for ax, init in zip(row, inits, strict=True):
                title = STARTS[init]
                pts = [(c["forward_nats"], c["inverse_nats"], c["task"]) for c in cells
                       if c["init"] == init and c["T"] == temp]
                if not pts:
                    ax.set_axis_off()
                    continue
                for t, marker in zip(sorted({p[2] for p in pts}), "osD^v", strict=False):
                    sel = [p for p in pts if p[2] == t]
                    ax.scatter([p[0] for p in sel], [p[1] for p in sel], marker=marker, label=t, alpha=0.8)
                lo = min(min(p[0], p[1]) for p in pts)
                hi = max(max(p[0], p[1]) for p in pts)
                ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
                below = sum(p[1] < p[0] for p in pts)
                ax.set_title(f"{title}, sampling T={temp}\ninverse < forward in {below}/{len(pts)} "
                             "(means over runs)", fontsize=10)
                ax.set_xlabel(f"forward path: {label}", fontsize=8)
                ax.set_ylabel("inverse path (same measure)", fontsize=8)
                ax.legend(fontsize=7)
        written.append(save_figure(fig, run_dir.figures_dir / f"resistance_{measure.removesuffix('_nats')}.png",
                                   dpi=110))
    return written


def _draw_rate_against_score(ax: Any, rows: Sequence[Mapping[str, Any]], task: str) -> None:
    """The decay rate between measured amounts against the score it passes (mean over seeds), S0
    marked: what the slowdown reading looks at (a slowdown at S0 is a step down at the line)."""
    curves: dict[int, dict[float, list[float]]] = {}
    for r in rows:
        c = r["condition"]
        if r["measure"] == "score_log_odds" and c.get("task") == task:
            curves.setdefault(int(c["F"]), {}).setdefault(float(r["x"]), []).append(r["value"])
    for f in sorted(curves):
        xs = np.array(sorted(curves[f]))
        ys = np.array([np.mean(curves[f][x]) for x in xs])
        ax.plot((ys[:-1] + ys[1:]) / 2, -np.diff(ys) / np.diff(xs), marker="o", ms=3, label=f"F={f}")
    s0 = [r["value"] for r in rows if r["measure"] == "s0_log_odds" and r["condition"].get("task") == task]
    ax.axvline(np.mean(s0), color="grey", ls="--", label="S0")
    ax.invert_xaxis()  # the score falls as R grows: read left to right as the run goes on
    ax.set_xlabel("mean log-odds passed (nats)")
    ax.set_ylabel("decay rate (log-odds lost per reverse example)")
    ax.legend(fontsize=7)


def draw_rebound(run_dir: RunDir, model: str = "") -> list[Path]:
    """Score vs reverse amount per forward amount F, with S0 dashed (probability and log-odds).

    ``model`` names the model in the title (the bridge passes the checkpoint's name).
    """
    every = run_dir.read_metrics()
    starts = sorted({(r["condition"]["task"], str(r["condition"].get("init", "pretrained")))
                     for r in every if r["measure"] == "score_prob"})
    written = []
    for task, init in starts:  # a bridge's no-pre-training controls get figures of their own
        rows = [r for r in every if str(r["condition"].get("init", "pretrained")) == init]
        fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
        for ax, measure, s0_name, ylabel in (
            (axes[0], "score_prob", "s0_prob", "mean P(aligned) (probability)"),
            (axes[1], "score_log_odds", "s0_log_odds", "mean log-odds of aligned (nats)"),
            (axes[2], "kl_theta0_model", None, "KL(theta0 || model), nats/token"),
        ):
            curves: dict[int, dict[float, list[float]]] = {}
            for r in rows:
                c = r["condition"]
                if r["measure"] == measure and c.get("task") == task:
                    curves.setdefault(int(c["F"]), {}).setdefault(float(r["x"]), []).append(r["value"])
            for f in sorted(curves):
                # KL is measured at every kl_every-th amount only: plot the measured points
                points = [(x, np.mean(curves[f][x])) for x in sorted(curves[f]) if np.all(np.isfinite(curves[f][x]))]
                ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=f"F={f}" + (" (control)" if f == 0 else ""))
            if s0_name:
                s0 = [r["value"] for r in rows if r["measure"] == s0_name and r["condition"].get("task") == task]
                ax.axhline(np.mean(s0), color="grey", ls="--", label="S0 (pre-trained)")
            ax.set_xscale("symlog", linthresh=16)
            ax.set_xlim(left=0)
            ax.set_xlabel("reverse examples R (steps = ceil(R / batch))")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
        _draw_rate_against_score(axes[3], rows, task)
        seeds = sorted({r["seed"] for r in rows if r["measure"] == "score_prob" and r["condition"]["task"] == task})
        over = f"run {seeds[0]}" if len(seeds) == 1 else f"mean over {len(seeds)} independent runs"
        start = "" if init == "pretrained" else f", from a {init} start (no pre-training)"
        fig.suptitle(f"rebound{', ' + model if model else ''}, task {task}{start}: {over}")
        name = f"rebound_{task}.png" if init == "pretrained" else f"rebound_{task}.{init}.png"
        written.append(save_figure(fig, run_dir.figures_dir / name, dpi=110))
    return written
