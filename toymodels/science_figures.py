"""Figures of the scale, compression and lifecycle experiments, drawn from saved metrics only.

Every function reads ``metrics.csv`` (and ``summary.json``) of a run folder, aggregates over
seeds (mean and 95% t-interval, shaded) and writes PNGs into the run's ``figures/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.figure_style import aggregate_band, band, log_interval, measured_ticks, verdict_line  # noqa: E402
from harness.runs import RunDir  # noqa: E402
from theory.figures import save_figure  # noqa: E402
from toymodels.sweep import aggregate  # noqa: E402


def _agg(run_dir: RunDir) -> list[dict[str, Any]]:
    return aggregate(r for r in run_dir.read_metrics() if r["seed"] != "")


def _n_seeds(agg: Sequence[Mapping[str, Any]]) -> int:
    """The most seeds any aggregated cell has (every cell has them all in a finished run)."""
    return max(r["n"] for r in agg)


def _select(agg: Sequence[Mapping[str, Any]], measure: str, **cond: Any) -> list[Mapping[str, Any]]:
    return [r for r in agg if r["measure"] == measure
            and all(r["condition"].get(k) == v for k, v in cond.items())]


def draw_compression(run_dir: RunDir) -> None:
    """γ on held-out D_p and D_a against |D_t|, and |dγ_a/dl ÷ dγ_p/dl| against k beside the mixture."""
    agg = _agg(run_dir)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    _draw_gamma_panels(axes[:2], agg)
    _draw_ratio_panel(axes[2], run_dir.read_metrics(),
                      sorted({r["condition"]["perturbation"] for r in agg if "perturbation" in r["condition"]}))
    verdicts = verdict_line(run_dir.read_json("summary.json"), ("theorem.",))
    fig.suptitle("compression of D_p and D_a under perturbation: mean and 95% interval over seeds"
                 + (f"\nprimary reading: {verdicts}" if verdicts else ""))
    save_figure(fig, run_dir.figures_dir / "compression.png")


def _draw_gamma_panels(axes: Sequence[Any], agg: Sequence[Mapping[str, Any]]) -> None:
    ks = sorted({r["condition"]["k"] for r in agg if "k" in r["condition"]})
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(ks)))
    for ax, measure, label in ((axes[0], "gamma_a_bits", "γ_a on held-out D_a"),
                               (axes[1], "gamma_p_bits", "γ_p on held-out D_p")):
        for k, color in zip(ks, colors, strict=False):
            for kind, style in (("like", "-"), ("unlike", ":")):
                sel = sorted(_select(agg, measure, k=k, perturbation=kind), key=lambda r: float(r["x"]))
                if sel:
                    aggregate_band(ax, sel, [float(r["x"]) for r in sel], color=color, linestyle=style,
                                   label=f"k={k:g}, {kind}")
        ax.set_xlabel("|D_t| (perturbation examples)")
        ax.set_ylabel(f"{label} (bits/token)")
        ax.set_title(label)
    axes[0].legend(ncol=2)


def _draw_ratio_panel(ax: Any, rows: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> None:
    """Geometric mean of the trained |ratio| over seeds with its interval, beside the joint mixture's."""
    for kind, color in zip(kinds, ("tab:blue", "tab:red"), strict=False):
        by_k: dict[float, list[float]] = {}
        for r in rows:
            if r["measure"] == "ratio" and r["condition"].get("perturbation") == kind:
                by_k.setdefault(float(r["condition"]["k"]), []).append(float(r["value"]))
        stats = [(k, *log_interval(by_k[k])) for k in sorted(by_k)]
        stats = [s for s in stats if np.isfinite(s[1])]
        if not stats:
            continue
        band(ax, *zip(*stats, strict=True), color=color, label=f"trained, {kind} D_t (geometric mean)")
        mix = sorted((float(r["condition"]["k"]), abs(r["value"])) for r in rows
                     if r["measure"] == "mixture_ratio" and r["condition"]["perturbation"] == kind)
        if mix:
            ax.plot(*zip(*mix, strict=False), color=color, linestyle="--", label=f"joint mixture, {kind} D_t")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k = |D_p| / |D_a|")
    ax.set_ylabel("|dγ_a/dl ÷ dγ_p/dl|")
    ax.set_title("compression-rate ratio vs k (trained vs theory)")
    ax.legend()


def _param_counts(run_dir: RunDir) -> dict[str, float]:
    return {r["condition"]["size"]: r["value"] for r in run_dir.read_metrics() if r["measure"] == "n_params"}


def draw_scale(run_dir: RunDir) -> None:
    """Excess initial decay rate (largest F minus the F = 0 control) against pre-training
    examples and against parameters, in log-odds and in probability; and the score curves."""
    agg = [r for r in _agg(run_dir) if "F" not in r["condition"]]
    params = _param_counts(run_dir)
    sizes = sorted(params, key=params.get)
    budgets = sorted({r["condition"]["n_pretrain"] for r in agg if "n_pretrain" in r["condition"]})
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for row_axes, kind, label in ((axes[0], "log_odds", "log-odds (nats/example)"),
                                  (axes[1], "prob", "probability (per example)")):
        measure = f"excess_initial_rate_{kind}"
        for size, color in zip(sizes, plt.cm.viridis(np.linspace(0, 0.85, len(sizes))), strict=False):
            sel = sorted(_select(agg, measure, size=size), key=lambda r: r["condition"]["n_pretrain"])
            aggregate_band(row_axes[0], sel, [r["condition"]["n_pretrain"] for r in sel], color=color,
                           label=f"{size} ({params[size]:.0f} params)")
        for budget, color in zip(budgets, plt.cm.plasma(np.linspace(0, 0.85, len(budgets))), strict=False):
            sel = sorted(_select(agg, measure, n_pretrain=budget), key=lambda r: params[r["condition"]["size"]])
            aggregate_band(row_axes[1], sel, [params[r["condition"]["size"]] for r in sel], color=color,
                           label=f"{budget} pre-training examples")
        for ax, xlabel in ((row_axes[0], "pre-training examples"), (row_axes[1], "parameters")):
            ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"initial decay, largest F − F=0 control\n{label}")
            ax.legend()
    for left, right in axes:
        measured_ticks(left, budgets)
        measured_ticks(right, params.values())
    axes[0][0].set_title("rebound vs pre-training data (Fig. 6 analogue)")
    axes[0][1].set_title("rebound vs model size (Fig. 5 analogue)")
    verdicts = verdict_line(run_dir.read_json("summary.json"), ("scale.",))
    fig.suptitle(f"rebound strength by scale: mean and 95% interval over {_n_seeds(agg)} seeds"
                 + (f"\nprimary readings: {verdicts}" if verdicts else ""))
    save_figure(fig, run_dir.figures_dir / "scale.png")
    _draw_scale_curves(run_dir, sizes, budgets)


def _draw_scale_curves(run_dir: RunDir, sizes: Sequence[str], budgets: Sequence[int]) -> None:
    """Score against reverse amount for every F at the corner cells, S0 dashed (Fig. 4 style)."""
    agg = _agg(run_dir)
    corners = [(sizes[0], budgets[0]), (sizes[-1], budgets[-1])]
    fig, axes = plt.subplots(1, len(corners), figsize=(11, 4), squeeze=False)
    for ax, (size, budget) in zip(axes[0], corners, strict=False):
        curves = _select(agg, "score_log_odds", size=size, n_pretrain=budget)
        fs = sorted({r["condition"]["F"] for r in curves})
        for f, color in zip(fs, plt.cm.magma(np.linspace(0, 0.8, len(fs))), strict=False):
            sel = sorted([r for r in curves if r["condition"]["F"] == f], key=lambda r: float(r["x"]))
            aggregate_band(ax, sel, [float(r["x"]) for r in sel], color=color,
                           label=f"F={f}" + (" (control)" if f == 0 else ""))
        s0 = _select(agg, "s0_log_odds", size=size, n_pretrain=budget)
        if s0:
            ax.axhline(s0[0]["mean"], color="grey", linestyle="--", label="S0 (pre-trained)")
        ax.set_title(f"{size}, {budget} pre-training examples")
        measured_ticks(ax, [float(r["x"]) for r in curves])
        ax.set_xlabel("reverse examples R")
        ax.set_ylabel("mean log-odds of the aligned attribute (nats)")
        ax.legend()
    fig.suptitle(f"score curves at the corner cells: mean and 95% interval over {_n_seeds(agg)} seeds")
    save_figure(fig, run_dir.figures_dir / "scale_curves.png")


def draw_lifecycle(run_dir: RunDir) -> None:
    """Rebound strength (largest F minus the F = 0 control) along pre-training, per probe
    learning rate, in log-odds and in probability; 0 examples is the random init."""
    agg = [r for r in _agg(run_dir) if "F" not in r["condition"]]
    lrs = sorted({r["condition"]["lr"] for r in agg})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind, label in ((axes[0], "log_odds", "log-odds (nats/example)"),
                            (axes[1], "prob", "probability (per example)")):
        for lr, color in zip(lrs, plt.cm.viridis(np.linspace(0, 0.85, len(lrs))), strict=False):
            sel = sorted(_select(agg, f"excess_initial_rate_{kind}", lr=lr),
                         key=lambda r: r["condition"]["pretrain_examples"])
            aggregate_band(ax, sel, [r["condition"]["pretrain_examples"] for r in sel], color=color,
                           label=f"probe lr {lr:g}")
        ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
        checkpoints = sorted({r["condition"]["pretrain_examples"] for r in agg})
        positive = [c for c in checkpoints if c > 0]
        ax.set_xscale("symlog", linthresh=positive[0] if positive else 1)
        measured_ticks(ax, checkpoints, factor=3)  # 2500, 5000, 10000 would crowd at factor 2
        ax.set_xlim(left=0)
        ax.set_xlabel("pre-training examples (0 = random init)")
        ax.set_ylabel(f"initial decay, largest F − F=0 control\n{label}")
        ax.set_title(f"elasticity along pre-training ({kind.replace('_', '-')})")
        ax.legend()
    fig.suptitle(f"rebound strength along pre-training: mean and 95% interval over {_n_seeds(agg)} seeds")
    save_figure(fig, run_dir.figures_dir / "lifecycle.png")
