"""Figures of the theory experiments, drawn from saved metrics (and summaries) only. Agg backend."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.metrics import condition_label  # noqa: E402
from harness.runs import RunDir  # noqa: E402

BAND = (0.9, 1.1)


def _by(rows: list[dict], measure: str) -> dict[str, dict[float, list[float]]]:
    """condition (as a label) -> x -> values over seeds."""
    out: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["measure"] == measure:
            out[condition_label(r["condition"])][float(r["x"])].append(float(r["value"]))
    return out


def draw_simulate(run_dir: RunDir) -> list[Path]:
    rows = run_dir.read_metrics()
    summary = run_dir.read_json("summary.json")
    ratios, exact = _by(rows, "ratio"), _by(rows, "exact_ratio")
    level = summary.get("level", "")
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(ratios), 1)))
    for color, (cond, by_k) in zip(colors, sorted(ratios.items()), strict=False):
        ks = np.array(sorted(by_k))
        vals = [np.abs(np.array(by_k[k])) for k in ks]
        for k, v in zip(ks, vals, strict=True):
            ax.scatter(np.full(v.size, k), v, s=6, color=color, alpha=0.35)
        ax.plot(ks, [np.median(v) for v in vals], "-o", ms=3, color=color, label=f"{level}: {cond}")
        if cond in exact:
            ax.plot(ks, [np.median(np.abs(exact[cond][k])) for k in ks], ":", color=color, lw=1)
    ks_all = np.array(summary["k"])
    ax.plot(ks_all, ks_all, "k--", lw=1, label="y = k (theorem, coefficient 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k = |D_p| / |D_a|")
    ax.set_ylabel("|Δγ_a / Δγ_p| over l ∈ [0, l_max] (ideal lengths)")
    ci = summary.get("slope_ci", [np.nan, np.nan])
    coefs = ", ".join(f"{c:.3g}" for c in summary.get("coefficients", []))
    ax.set_title(f"{summary.get('perturbation')} perturbation, l_max={summary.get('l_max')}: "
                 f"slope {summary.get('slope', np.nan):.3f} [{ci[0]:.3f}, {ci[1]:.3f}]\n"
                 f"coefficient ratio/(-k) by k: {coefs}; signs hold: "
                 f"{sum(summary.get('signs_hold', []))}/{len(summary.get('signs_hold', []))}", fontsize=8)
    ax.legend(fontsize=6, loc="upper left")
    if exact:
        ax.text(0.99, 0.01, "dotted: exact generator masses", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=6)
    written = [save_figure(fig, run_dir.figures_dir / "ratio_vs_k.png")]

    hp, ha = _by(rows, "hooke_p_bits"), _by(rows, "hooke_a_bits")
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    lo, hi = np.inf, -np.inf
    for color, cond in zip(colors, sorted(hp), strict=False):
        xs = np.concatenate([hp[cond][k] for k in sorted(hp[cond])])
        ys = np.concatenate([ha[cond][k] for k in sorted(ha[cond])])
        ax.scatter(xs, ys, s=8, color=color, alpha=0.6, label=cond)
        lo, hi = min(lo, xs.min(), ys.min()), max(hi, xs.max(), ys.max())
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="balance: |D_p|ΔKL_p = -|D_a|ΔKL_a")
    ax.set_xscale("symlog", linthresh=1e-6)
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xlabel("|D_p| · ΔKL(P_p ‖ q)  [|D_a| · bits]")
    ax.set_ylabel("-|D_a| · ΔKL(P_a ‖ q)  [|D_a| · bits]")
    ax.set_title("Hooke balance over l ∈ [0, l_max] (KL data‖model)", fontsize=9)
    ax.legend(fontsize=6)
    written.append(save_figure(fig, run_dir.figures_dir / "hooke.png"))
    counts_file = run_dir.path / "pareto_counts.json"
    if counts_file.exists() and summary.get("pareto_fits"):
        counts = run_dir.read_json("pareto_counts.json")
        fits = summary["pareto_fits"]
        cols = min(3, len(fits))
        rows_n = -(-len(fits) // cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.6 * rows_n), squeeze=False)
        for ax, fit in zip(axes.ravel(), fits, strict=False):
            _ccdf_panel(ax, np.array(counts[fit["condition"]]), fit["x_min"], fit["tail_index_fit"],
                        fit["alpha_fit"], fit["tests"],
                        f"D_p leaf counts, {fit['condition']} (true Zipf α {fit['alpha']:g})")
        for ax in axes.ravel()[len(fits):]:
            ax.axis("off")
        written.append(save_figure(fig, run_dir.figures_dir / "pareto_ccdf.png"))
    return written


def _heatmap(ax, values: np.ndarray, xlabels, ylabels, title: str, holds: np.ndarray | None,
             vmin: float, vmax: float, cmap: str = "coolwarm") -> None:
    im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(xlabels)), xlabels, fontsize=6, rotation=45)
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=6)
    for (i, jx), v in np.ndenumerate(values):
        mark = "*" if holds is not None and holds[i, jx] >= 0.5 else ""
        ax.text(jx, i, f"{v:.2g}{mark}", ha="center", va="center", fontsize=5)
    ax.set_title(title, fontsize=8)
    plt.colorbar(im, ax=ax, fraction=0.046)


def _grid(cells: list[dict], xkey: str, ykey: str, value: str) -> tuple[np.ndarray, list, list]:
    xs = sorted({c[xkey] for c in cells})
    ys = sorted({c[ykey] for c in cells})
    out = np.full((len(ys), len(xs)), np.nan)
    for c in cells:
        out[ys.index(c[ykey]), xs.index(c[xkey])] = c[value]
    return out, xs, ys


def draw_boundary(run_dir: RunDir) -> list[Path]:
    summary = run_dir.read_json("summary.json")
    grids = summary["grids"]
    written = []
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    dist = grids["dist"]
    coef, xs, ys = _grid(dist, "s", "l_max", "coefficient_median")
    held, _, _ = _grid(dist, "s", "l_max", "holds_fraction")
    _heatmap(axes[0, 0], coef, [f"{x:g}" for x in xs], [f"{y:g}" for y in ys],
             "distribution level: median coefficient ratio/(-k)\n(* = holds in ≥ half the seeds: "
             "in [0.9,1.1] with the theorem's signs)", held, 0, 2)
    axes[0, 0].set_xlabel("similarity s (1 = pre-training-like, 0 = novel)")
    axes[0, 0].set_ylabel("l_max")
    tree = grids["tree"]
    coef, xs, ys = _grid(tree, "s", "depth", "coefficient_median")
    held, _, _ = _grid(tree, "s", "depth", "holds_fraction")
    leaves, _, _ = _grid(tree, "s", "depth", "world_leaves")
    ylab = [f"d={int(y)} (M≈{int(leaves[i, 0])})" for i, y in enumerate(ys)]
    _heatmap(axes[0, 1], coef, [f"{x:g}" for x in xs], ylab,
             "sampled level: median coefficient vs similarity and tree size", held, 0, 2)
    axes[0, 1].set_xlabel("similarity s")
    signs, _, _ = _grid(tree, "s", "depth", "signs_fraction")
    _heatmap(axes[1, 0], signs, [f"{x:g}" for x in xs], ylab,
             "sampled level: share of seeds with the theorem's signs", held, 0, 1, cmap="viridis")
    axes[1, 0].set_xlabel("similarity s")
    sample = grids["sample"]
    frac, xs, ys = _grid(sample, "n_align", "depth", "holds_fraction")
    coef, _, _ = _grid(sample, "n_align", "depth", "coefficient_median")
    _heatmap(axes[1, 1], coef, [f"{int(x)}" for x in xs], [f"d={int(y)}" for y in ys],
             "sampled, pre-training-like: median coefficient vs sample size\n(* = holds in ≥ half the seeds)",
             frac, 0, 2)
    axes[1, 1].set_xlabel("|D_a| (|D_t| = l_max |D_a|, |D_p| = k |D_a| capped)")
    fig.suptitle(f"Where Θ(-k) holds: k={summary['k']:g}, α={summary['alpha']:g}", fontsize=10)
    written.append(save_figure(fig, run_dir.figures_dir / "heatmaps.png"))

    rows = run_dir.read_metrics()
    share, coefs = _by(rows, "unseen_mass_share"), _by(rows, "coefficient")
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for cond in share:
        if cond.startswith("grid=dist"):
            continue
        for x in share[cond]:
            ax.scatter(share[cond][x], np.clip(coefs[cond][x], -3, 3), s=6, alpha=0.5,
                       color="tab:blue" if "grid=tree" in cond else "tab:orange")
    ax.axhspan(*BAND, color="green", alpha=0.15, label="[0.9, 1.1]")
    ax.set_xlabel("share of D_t's mass on leaves D_p and D_a never produced")
    ax.set_ylabel("coefficient ratio/(-k) (clipped to ±3)")
    ax.set_title("sampled level: blue = similarity×tree grid, orange = tree×sample grid", fontsize=8)
    ax.legend(fontsize=7)
    written.append(save_figure(fig, run_dir.figures_dir / "unseen_share.png"))
    return written


def _ccdf_panel(ax, values: np.ndarray, x_min: float, tail_index: float, alpha: float,
                tests: dict, title: str) -> None:
    x = np.sort(np.asarray(values, dtype=float))
    x = x[x > 0]
    ccdf = 1.0 - np.arange(x.size) / x.size
    ax.loglog(x, ccdf, ".", ms=2, label="data")
    tail_share = float((x >= x_min).mean())
    xt = np.geomspace(x_min, x.max(), 50)
    ax.loglog(xt, tail_share * (xt / x_min) ** -tail_index, "r-",
              label=f"Pareto tail index {tail_index:.3f} (Zipf α {alpha:.3f})")
    ax.axvline(x_min, color="grey", ls=":", lw=1, label=f"x_min = {x_min:.3g}")
    lines = [f"vs {t['alternative']}: R={t['log_ratio']:.3g}, p={t['p_value']:.2g}" for t in tests.values()]
    ax.set_title(title + "\n" + "; ".join(lines), fontsize=6)
    ax.set_xlabel("leaf mass (count)", fontsize=7)
    ax.set_ylabel("P(X ≥ x)", fontsize=7)
    ax.legend(fontsize=6)


def draw_pareto_ccdf(values: np.ndarray, fit, path: Path, title: str = "") -> Path:
    """Complementary CDF of the mass values on log-log axes, with the fitted Pareto tail."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    _ccdf_panel(ax, values, fit.x_min, fit.tail_index, fit.alpha,
                {n: vars(t) for n, t in fit.tests.items()}, title)
    return save_figure(fig, path)


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay out, write and close a figure (every package's figures are saved this one way)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def draw_size_biased_ccdf(log_mass: np.ndarray, fit: Mapping[str, Any], path: Path, title: str) -> Path:
    """CCDF of leaf masses sampled in proportion to their mass (each draw standing for 1/mass
    leaves), with the fitted power-law tail anchored at the empirical value at x_min."""
    x = np.sort(np.exp(log_mass - log_mass.max()))[::-1]
    w = 1.0 / x  # size-bias correction: each draw stands for 1/mass leaves
    ccdf = np.cumsum(w) / w.sum()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.loglog(x, ccdf, ".", ms=3, label="sampled leaves, size-bias corrected")
    # the fitted tail P(X >= x) = P(X >= x_min) (x / x_min)^-b
    x_min, b = fit["x_min"], fit["tail_index"]
    tail_x = np.array([x_min, x[0]])
    anchor = float(np.interp(x_min, x[::-1], ccdf[::-1]))
    ax.loglog(tail_x, anchor * (tail_x / x_min) ** -b, "k--", lw=1,
              label=f"fitted power law: alpha {fit['alpha']:.2f} (tail index {b:.2f})")
    ax.set_xlabel("leaf mass (relative to the largest sampled)")
    ax.set_ylabel("P(leaf mass >= x), corrected")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path, dpi=110)
