"""Figures of the resistance and rebound experiments, drawn from the saved metrics only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.figure_style import band, interval, measured_ticks, verdict_line  # noqa: E402
from harness.runs import RunDir  # noqa: E402
from theory.figures import save_figure  # noqa: E402
from toymodels.mitigation_figures import draw_forest  # noqa: E402
from toymodels.protocols.resistance_readings import BASELINE, by_treatment  # noqa: E402

# the starting points of a resistance run, left to right, and their panel titles
STARTS = {"pretrained": "from pre-trained theta0", "random": "control: no pre-training (random init)",
          "permuted": "control: permuted pre-trained weights"}
RESISTANCE_MEASURES = (("loss_mean_nats", "training loss, mean over the epoch (nats/token)"),
                       ("excess_mean_nats", "KL-excess = loss - data entropy H(p_T), est. KL(data||model) "
                                            "(nats/token)"))


def resistance_points(rows: Sequence[Mapping[str, Any]], measure: str) -> list[dict[str, Any]]:
    """Inverse and forward path per (init, task, size, T, pair): mean and 95% interval over runs."""
    cells: dict[tuple, dict[str, list[float]]] = {}
    for r in rows:
        if r["measure"] == measure:
            c = r["condition"]
            key = (c["init"], c["task"], c["size"], float(c["T"]), c["pair"])
            cells.setdefault(key, {}).setdefault(c["path"], []).append(float(r["value"]))
    return [{"init": k[0], "task": k[1], "T": k[3], "forward": interval(v["forward"]),
             "inverse": interval(v["inverse"])}
            for k, v in sorted(cells.items()) if "inverse" in v and "forward" in v]


def _draw_resistance_panel(ax: Any, pts: Sequence[Mapping[str, Any]], title: str) -> None:
    """Inverse against forward per comparison, both intervals as bars, against y = x."""
    for task, marker in zip(sorted({p["task"] for p in pts}), "osD^v", strict=False):
        sel = [p for p in pts if p["task"] == task]
        fwd, inv = np.array([p["forward"] for p in sel]), np.array([p["inverse"] for p in sel])
        ax.errorbar(fwd[:, 0], inv[:, 0], xerr=[fwd[:, 0] - fwd[:, 1], fwd[:, 2] - fwd[:, 0]],
                    yerr=[inv[:, 0] - inv[:, 1], inv[:, 2] - inv[:, 0]], fmt=marker, capsize=2,
                    alpha=0.8, label=task)
    ends = [e for p in pts for path in ("forward", "inverse") for e in p[path][1:]]
    ax.plot([min(ends), max(ends)], [min(ends), max(ends)], "k--", lw=1, label="y = x")
    below = sum(p["inverse"][0] < p["forward"][0] for p in pts)
    ax.set_title(f"{title}\ninverse < forward in {below}/{len(pts)} comparisons")
    ax.set_xlabel("forward path (nats/token)")
    ax.set_ylabel("inverse path (nats/token)")
    ax.legend()


# the forest plot of a resistance run under mitigations: reading suffix, axis label
RESISTANCE_READINGS = (("resistance_level", "inverse - forward epoch KL-excess\n(nats/token, T = 0.05)"),
                       ("resistance", "the same, minus SFT's\n(paired by run)"),
                       ("resistance_beyond_control", "relative asymmetry beyond\nthe random-init control"))


def _forest_title(rows: Sequence[Mapping[str, Any]]) -> str:
    runs = len({r["seed"] for r in rows})
    return (f"resistance after each alignment condition, 95% intervals over {runs} runs;"
            "\nbelow 0: the inverse path is easier")


def _resistance_title(run_dir: RunDir, rows: Sequence[Mapping[str, Any]], measure: str, label: str) -> str:
    # each start (pre-trained, and the no-pre-training controls) has its own runs, named apart
    runs_per_start: dict[str, set] = {}
    for r in rows:
        if r["measure"] == measure:
            runs_per_start.setdefault(r["condition"].get("init", "pretrained"), set()).add(r["seed"])
    counts = "/".join(str(n) for n in sorted({len(s) for s in runs_per_start.values()}))
    per_start = " per start" if len(runs_per_start) > 1 else ""
    verdicts = verdict_line(run_dir.read_json("summary.json"), ("resistance.",))
    return (f"{label}\ninverse vs forward path, mean and 95% interval over {counts} runs{per_start}"
            + (f"\nprimary readings: {verdicts}" if verdicts else ""))


def draw_resistance(run_dir: RunDir) -> list[Path]:
    """Inverse vs forward per comparison against y = x: one row per sampling temperature,
    pre-trained theta0 on the left, then each no-pre-training control present. A run of several
    alignment conditions draws plain SFT's paths and a forest plot of every condition against SFT."""
    rows = run_dir.read_metrics()
    written, which = [], ""
    if any("treatment" in r["condition"] for r in rows):
        written.append(draw_forest(run_dir.read_json("summary.json"), run_dir.figures_dir / "resistance_forest.png",
                                   _forest_title(rows), RESISTANCE_READINGS))
        rows, which = by_treatment(rows)[BASELINE], " (checkpoints aligned by plain SFT)"
    for measure, label in RESISTANCE_MEASURES:
        pts = resistance_points(rows, measure)
        if not pts:
            continue
        temps = sorted({p["T"] for p in pts})
        inits = [i for i in STARTS if any(p["init"] == i for p in pts)]
        fig, axes = plt.subplots(len(temps), len(inits), figsize=(max(5.5 * len(inits), 8), 4.6 * len(temps) + 0.9),
                                 squeeze=False)
        for row, temp in zip(axes, temps, strict=True):
            for ax, init in zip(row, inits, strict=True):
                cell = [p for p in pts if p["init"] == init and p["T"] == temp]
                if cell:
                    _draw_resistance_panel(ax, cell, f"{STARTS[init]}, sampling T={temp:g}")
                else:  # this start was not run at this temperature: no empty panel
                    fig.delaxes(ax)
        fig.suptitle(_resistance_title(run_dir, rows, measure, label + which))
        written.append(save_figure(fig, run_dir.figures_dir / f"resistance_{measure.removesuffix('_nats')}.png",
                                   dpi=110))
    return written


# the bridge's format-matched control arm is the pseudo-task <task>+neutral-forward: exploratory,
# so the primary readings' verdicts go on the aligned task's figure only
NEUTRAL_ARM = "+neutral-forward"
REBOUND_PANELS = (("score_prob", "s0_prob", "mean P(aligned) (probability)"),
                  ("score_log_odds", "s0_log_odds", "mean log-odds of aligned (nats)"),
                  ("kl_theta0_model", None, "KL(theta0 || model), nats/token"))


def _per_seed(rows: Sequence[Mapping[str, Any]], measure: str, task: str) -> dict[int, dict[Any, dict[float, float]]]:
    """F -> seed (or run) -> reverse amount -> value, for one task."""
    out: dict[int, dict[Any, dict[float, float]]] = {}
    for r in rows:
        c = r["condition"]
        if r["measure"] == measure and c.get("task") == task:
            out.setdefault(int(c["F"]), {}).setdefault(r["seed"], {})[float(r["x"])] = r["value"]
    return out


def _f_label(f: int) -> str:
    return f"F={f}" + (" (control)" if f == 0 else "")


def _draw_score_panel(ax: Any, by_f: Mapping[int, Mapping[Any, Mapping[float, float]]]) -> None:
    """Mean over seeds or runs against R per F, the 95% interval shaded; KL is measured at every
    kl_every-th amount only, so an amount with no finite value is left out."""
    for f in sorted(by_f):
        amounts = sorted({x for curve in by_f[f].values() for x in curve})
        stats = [(x, *interval(curve.get(x, np.nan) for curve in by_f[f].values())) for x in amounts]
        stats = [s for s in stats if np.isfinite(s[1])]
        if stats:
            band(ax, *zip(*stats, strict=True), label=_f_label(f))


def _draw_rate_against_score(ax: Any, by_f: Mapping[int, Mapping[Any, Mapping[float, float]]], s0: float) -> None:
    """The decay rate between measured amounts against the score it passes (mean and 95% interval
    over seeds or runs), S0 marked: what the slowdown reading looks at (a slowdown at S0 is a step
    down at the line)."""
    for f in sorted(by_f):
        passed, rates = [], []
        for curve in by_f[f].values():
            xs = np.array(sorted(curve))
            ys = np.array([curve[x] for x in xs])
            passed.append((ys[:-1] + ys[1:]) / 2)
            rates.append(-np.diff(ys) / np.diff(xs))
        stats = [interval(col) for col in np.array(rates).T]
        band(ax, np.array(passed).mean(axis=0), *zip(*stats, strict=True), label=f"F={f}")
    ax.axvline(s0, color="grey", ls="--", label="S0")
    ax.invert_xaxis()  # the score falls as R grows: read left to right as the run goes on
    ax.set_xlabel("mean log-odds passed (nats)")
    ax.set_ylabel("decay rate (log-odds lost per reverse example)")
    ax.legend()


def _rebound_title(run_dir: RunDir, rows: Sequence[Mapping[str, Any]], task: str, init: str, model: str) -> str:
    """What the figure shows, over how many runs, and the verdicts of the primary readings."""
    runs = sorted({r["seed"] for r in rows if r["measure"] == "score_prob" and r["condition"]["task"] == task})
    over = f"run {runs[0]} alone" if len(runs) == 1 else f"mean and 95% interval over {len(runs)} runs"
    start = "" if init == "pretrained" else f", from a {init} start (no pre-training)"
    title = f"rebound{', ' + model if model else ''}, task {task}{start}: {over}"
    verdicts = "" if init != "pretrained" or task.endswith(NEUTRAL_ARM) else \
        verdict_line(run_dir.read_json("summary.json"), ("rebound.",))
    return title + (f"\nprimary readings: {verdicts}" if verdicts else "")


def _draw_rebound_figure(run_dir: RunDir, rows: Sequence[Mapping[str, Any]], task: str, init: str,
                         model: str) -> Any:
    """Probability, log-odds and KL against R, then the decay rate against the score passed."""
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8))
    for ax, (measure, s0_name, ylabel) in zip(axes, REBOUND_PANELS, strict=False):
        by_f = _per_seed(rows, measure, task)
        _draw_score_panel(ax, by_f)
        if s0_name:
            s0 = [r["value"] for r in rows if r["measure"] == s0_name and r["condition"].get("task") == task]
            ax.axhline(np.mean(s0), color="grey", ls="--", label="S0 (pre-trained)")
        ax.set_xscale("symlog", linthresh=16)
        measured_ticks(ax, {x for curves in by_f.values() for curve in curves.values() for x in curve})
        ax.set_xlim(left=0)
        ax.set_xlabel("reverse examples R (steps = ceil(R / batch))")
        ax.set_ylabel(ylabel)
        ax.legend()
    s0_log_odds = [r["value"] for r in rows if r["measure"] == "s0_log_odds" and r["condition"].get("task") == task]
    _draw_rate_against_score(axes[3], _per_seed(rows, "score_log_odds", task), float(np.mean(s0_log_odds)))
    fig.suptitle(_rebound_title(run_dir, rows, task, init, model))
    return fig


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
        fig = _draw_rebound_figure(run_dir, rows, task, init, model)
        name = f"rebound_{task}.png" if init == "pretrained" else f"rebound_{task}.{init}.png"
        written.append(save_figure(fig, run_dir.figures_dir / name, dpi=110))
    return written
