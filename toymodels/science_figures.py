"""Figures of the scale, compression and lifecycle experiments, drawn from saved metrics only.

Every function reads ``metrics.csv`` (and ``summary.json``) of a run folder, aggregates over
seeds (mean and 95% t-interval) and writes PNGs into the run's ``figures/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.runs import RunDir  # noqa: E402
from harness.verdicts import mean_ci  # noqa: E402
from theory.figures import save_figure  # noqa: E402
from toymodels.sweep import aggregate  # noqa: E402


def _agg(run_dir: RunDir) -> list[dict[str, Any]]:
    return aggregate(r for r in run_dir.read_metrics() if r["seed"] != "")


def _select(agg: Sequence[Mapping[str, Any]], measure: str, **cond: Any) -> list[Mapping[str, Any]]:
    return [r for r in agg if r["measure"] == measure
            and all(r["condition"].get(k) == v for k, v in cond.items())]


def _errorbar(ax: Any, rows: Sequence[Mapping[str, Any]], xs: Sequence[float], **style: Any) -> None:
    mean = np.array([r["mean"] for r in rows])
    lo = np.array([r["ci_lo"] for r in rows])
    hi = np.array([r["ci_hi"] for r in rows])
    yerr = np.vstack([np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)])
    yerr = np.where(np.isfinite(yerr), yerr, 0.0)
    ax.errorbar(xs, mean, yerr=yerr, capsize=3, marker="o", **style)


def draw_compression(run_dir: RunDir) -> None:
    """γ on held-out D_p and D_a against |D_t|, and |dγ_a/dl ÷ dγ_p/dl| against k beside the mixture."""
    agg = _agg(run_dir)
    rows = run_dir.read_metrics()
    kinds = sorted({r["condition"]["perturbation"] for r in agg if "perturbation" in r["condition"]})
    ks = sorted({r["condition"]["k"] for r in agg if "k" in r["condition"]})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(ks)))
    for ax, measure, label in ((axes[0], "gamma_a_bits", "γ_a on held-out D_a"),
                               (axes[1], "gamma_p_bits", "γ_p on held-out D_p")):
        for k, color in zip(ks, colors, strict=False):
            for kind, style in (("like", "-"), ("unlike", ":")):
                sel = sorted(_select(agg, measure, k=k, perturbation=kind), key=lambda r: float(r["x"]))
                if sel:
                    _errorbar(ax, sel, [float(r["x"]) for r in sel], color=color, linestyle=style,
                              label=f"k={k:g}, {kind}")
        ax.set_xlabel("|D_t| (perturbation examples)")
        ax.set_ylabel(f"{label} (bits/token, mean ± 95% CI)")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    ax = axes[2]
    for kind, color in zip(kinds, ("tab:blue", "tab:red"), strict=False):
        # the geometric mean of |ratio| over seeds, with a t-interval on log10|ratio| (the scale
        # on which the log-log slope is fitted); a sign flip across seeds does not cancel here
        logs: dict[float, list[float]] = {}
        for r in rows:
            cond = r["condition"]
            if r["measure"] == "ratio" and cond.get("perturbation") == kind and np.isfinite(r["value"]) \
                    and r["value"] != 0:
                logs.setdefault(float(cond["k"]), []).append(float(np.log10(abs(r["value"]))))
        if not logs:
            continue
        kx = sorted(logs)
        stats = [mean_ci(logs[kv]) for kv in kx]
        centre = np.array([10 ** m for m, _ in stats])
        lo = np.array([10 ** ci[0] if np.isfinite(ci[0]) else 10 ** m for m, ci in stats])
        hi = np.array([10 ** ci[1] if np.isfinite(ci[1]) else 10 ** m for m, ci in stats])
        ax.errorbar(kx, centre, yerr=np.vstack([centre - lo, hi - centre]), fmt="o", capsize=3, color=color,
                    label=f"trained, {kind} D_t (geometric mean ± 95% CI)")
        mix = sorted((float(r["condition"]["k"]), abs(r["value"])) for r in rows
                     if r["measure"] == "mixture_ratio" and r["condition"]["perturbation"] == kind)
        if mix:
            ax.plot(*zip(*mix, strict=False), color=color, linestyle="--", label=f"joint mixture, {kind} D_t")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k = |D_p| / |D_a|")
    ax.set_ylabel("|dγ_a/dl ÷ dγ_p/dl|")
    ax.set_title("compression-rate ratio vs k (trained vs theory)")
    ax.legend(fontsize=7)
    save_figure(fig, run_dir.figures_dir / "compression.png")


def _param_counts(run_dir: RunDir) -> dict[str, float]:
    return {r["condition"]["size"]: r["value"] for r in run_dir.read_metrics() if r["measure"] == "n_params"}


def draw_scale(run_dir: RunDir) -> None:
    """Excess initial decay rate (largest F minus the F = 0 control) against pre-training
    examples and against parameters, in log-odds and in probability; and the score curves."""
    agg = [r for r in _agg(run_dir) if "F" not in r["condition"]]
    params = _param_counts(run_dir)
    sizes = sorted(params, key=params.get)
    budgets = sorted({r["condition"]["n_pretrain"] for r in agg if "n_pretrain" in r["condition"]})
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for row_axes, kind, label in ((axes[0], "log_odds", "log-odds (nats/example)"),
                                  (axes[1], "prob", "probability (per example)")):
        measure = f"excess_initial_rate_{kind}"
        for size, color in zip(sizes, plt.cm.viridis(np.linspace(0, 0.85, len(sizes))), strict=False):
            sel = sorted(_select(agg, measure, size=size), key=lambda r: r["condition"]["n_pretrain"])
            _errorbar(row_axes[0], sel, [r["condition"]["n_pretrain"] for r in sel], color=color,
                      label=f"{size} ({params[size]:.0f} params)")
        for budget, color in zip(budgets, plt.cm.plasma(np.linspace(0, 0.85, len(budgets))), strict=False):
            sel = sorted(_select(agg, measure, n_pretrain=budget), key=lambda r: params[r["condition"]["size"]])
            _errorbar(row_axes[1], sel, [params[r["condition"]["size"]] for r in sel], color=color,
                      label=f"{budget} pre-training examples")
        for ax, xlabel in ((row_axes[0], "pre-training examples"), (row_axes[1], "parameters")):
            ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"initial decay, largest F − F=0 control\n{label}")
            ax.legend(fontsize=7)
    axes[0][0].set_title("rebound vs pre-training data (Fig. 6 analogue)")
    axes[0][1].set_title("rebound vs model size (Fig. 5 analogue)")
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
            _errorbar(ax, sel, [float(r["x"]) for r in sel], color=color,
                      label=f"F={f}" + (" (control)" if f == 0 else ""))
        s0 = _select(agg, "s0_log_odds", size=size, n_pretrain=budget)
        if s0:
            ax.axhline(s0[0]["mean"], color="grey", linestyle="--", label="S0 (pre-trained)")
        ax.set_title(f"{size}, {budget} pre-training examples")
        ax.set_xlabel("reverse examples R")
        ax.set_ylabel("mean log-odds of the aligned attribute (nats)")
        ax.legend(fontsize=7)
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
            _errorbar(ax, sel, [r["condition"]["pretrain_examples"] for r in sel], color=color,
                      label=f"probe lr {lr:g}")
        ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
        checkpoints = sorted({r["condition"]["pretrain_examples"] for r in agg})
        positive = [c for c in checkpoints if c > 0]
        ax.set_xscale("symlog", linthresh=positive[0] if positive else 1)
        ax.set_xticks(checkpoints, [str(c) for c in checkpoints])
        ax.minorticks_off()
        ax.set_xlabel("pre-training examples (0 = random init)")
        ax.set_ylabel(f"initial decay, largest F − F=0 control\n{label}")
        ax.set_title(f"elasticity along pre-training ({kind.replace('_', '-')})")
        ax.legend(fontsize=7)
    save_figure(fig, run_dir.figures_dir / "lifecycle.png")
