"""Figures of the theory experiments, drawn from saved metrics (and summaries) only. Agg backend."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize, TwoSlopeNorm  # noqa: E402

from harness.figure_style import MIN_FONT_PT, band, log_interval, verdict_line  # noqa: E402
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


def _numbers(label: str) -> tuple[float, ...]:
    """The numbers of a condition label, to order 'depth=4' before 'depth=12'."""
    return tuple(float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", label))


def draw_simulate(run_dir: RunDir) -> list[Path]:
    """|ratio| against k beside y = k, the Hooke balance, and the Pareto CCDFs of the leaf counts."""
    rows = run_dir.read_metrics()
    summary = run_dir.read_json("summary.json")
    written = [_draw_ratio_vs_k(run_dir, rows, summary), _draw_hooke(run_dir, rows)]
    # the leaf counts sit beside the metrics: a sampled-level run writes them with its fits
    if summary.get("pareto_fits") and (run_dir.path / "pareto_counts.json").exists():
        written.append(_draw_pareto_panels(run_dir, summary["pareto_fits"]))
    return written


def _ratio_title(summary: Mapping[str, Any]) -> str:
    ci = summary.get("slope_ci", [np.nan, np.nan])
    coefs = ", ".join(f"{c:.2g}" for c in summary.get("coefficients", []))
    signs = summary.get("signs_hold", [])
    verdicts = verdict_line(summary, ("theorem.",))
    return (f"{summary.get('perturbation')} perturbation, l_max={summary.get('l_max')}: "
            f"slope {summary.get('slope', np.nan):.3f} [{ci[0]:.3f}, {ci[1]:.3f}]\n"
            f"coefficient ratio/(-k) by k: {coefs}\nsigns hold: {sum(signs)}/{len(signs)}"
            + (f"; {verdicts}" if verdicts else ""))


def _draw_ratio_vs_k(run_dir: RunDir, rows: list[dict], summary: Mapping[str, Any]) -> Path:
    """Per-seed |ratio| as dots, their geometric mean over seeds with its 95% interval shaded."""
    ratios, exact = _by(rows, "ratio"), _by(rows, "exact_ratio")
    fig, ax = plt.subplots(figsize=(8, 6.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(ratios), 1)))
    for color, (cond, by_k) in zip(colors, sorted(ratios.items(), key=lambda item: _numbers(item[0])), strict=False):
        ks = np.array(sorted(by_k))
        for k in ks:
            ax.scatter(np.full(len(by_k[k]), k), np.abs(by_k[k]), s=6, color=color, alpha=0.3)
        band(ax, ks, *zip(*(log_interval(by_k[k]) for k in ks), strict=True), color=color,
             label=f"{summary.get('level', '')}: {cond}")
        if cond in exact:
            # above the y = k line, which they follow at the distribution level
            ax.plot(ks, [np.median(np.abs(exact[cond][k])) for k in ks], ":", color=color, lw=1.5, zorder=3)
    ks_all = np.array(summary["k"])
    ax.plot(ks_all, ks_all, "k--", lw=1, label="y = k (theorem, coefficient 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k = |D_p| / |D_a|")
    ax.set_ylabel("|Δγ_a / Δγ_p| over l ∈ [0, l_max] (geometric mean over seeds)")
    ax.set_title(_ratio_title(summary))
    ax.legend(loc="upper left", ncol=2 if len(ratios) > 4 else 1)
    if exact:
        ax.text(0.99, 0.01, "dotted: exact generator masses", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=MIN_FONT_PT)
    return save_figure(fig, run_dir.figures_dir / "ratio_vs_k.png")


def _draw_hooke(run_dir: RunDir, rows: list[dict]) -> Path:
    hp, ha = _by(rows, "hooke_p_bits"), _by(rows, "hooke_a_bits")
    fig, ax = plt.subplots(figsize=(6.4, 6))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(hp), 1)))
    lo, hi = np.inf, -np.inf
    for color, cond in zip(colors, sorted(hp, key=_numbers), strict=False):
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
    ax.set_title("Hooke balance over l ∈ [0, l_max] (KL data‖model)")
    ax.legend(ncol=2 if len(hp) > 4 else 1)
    return save_figure(fig, run_dir.figures_dir / "hooke.png")


def _draw_pareto_panels(run_dir: RunDir, fits: list[dict]) -> Path:
    """One CCDF panel per distinct fit: depths whose samples gave the very same fit (a depth past
    the tree's own changes only a few small counts) share a panel, each depth's counts drawn."""
    counts = run_dir.read_json("pareto_counts.json")
    panels: dict[str, list[dict]] = {}
    for fit in fits:
        same_fit = json.dumps([fit["alpha"], fit["x_min"], fit["tail_index_fit"], fit["n_tail"], fit["tests"]])
        panels.setdefault(same_fit, []).append(fit)
    cols = min(3, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.6 * cols, 4.8 * rows_n), squeeze=False)
    for ax, same in zip(axes.ravel(), panels.values(), strict=False):
        fit = same[0]
        samples = {f"depth {f['depth']}": np.array(counts[f["condition"]]) for f in same}
        depths = ", ".join(str(f["depth"]) for f in same)
        _ccdf_panel(ax, samples, fit["x_min"], fit["tail_index_fit"], fit["alpha_fit"], fit["tests"],
                    f"D_p leaf counts, Zipf α {fit['alpha']:g}, depth {depths}"
                    + (" (one fit)" if len(same) > 1 else ""))
    for ax in axes.ravel()[len(panels):]:
        fig.delaxes(ax)  # no empty panel where the last row is short
    fig.suptitle("Pareto tail of the pruned tree's leaf masses (D_p sample at the largest k, first seed)")
    return save_figure(fig, run_dir.figures_dir / "pareto_ccdf.png")


def _norm(values: np.ndarray, vmin: float, vmax: float, centre: float | None) -> Normalize:
    """Colours over the data's whole range, never clipped: at least ``vmin``..``vmax``, and with
    ``centre`` (the theorem's coefficient 1) at the middle colour of a diverging map."""
    lo, hi = min(vmin, float(np.nanmin(values))), max(vmax, float(np.nanmax(values)))
    return Normalize(lo, hi) if centre is None else TwoSlopeNorm(centre, lo, hi)


def _heatmap(ax, values: np.ndarray, xlabels, ylabels, title: str, holds: np.ndarray | None,
             norm: Normalize, cmap: str = "coolwarm") -> None:
    im = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(len(xlabels)), xlabels, rotation=45)
    ax.set_yticks(range(len(ylabels)), ylabels)
    for (i, jx), v in np.ndenumerate(values):
        mark = "*" if holds is not None and holds[i, jx] >= 0.5 else ""
        red, green, blue, _ = im.cmap(im.norm(v))
        # dark cells get white numbers (perceived luminance below one half)
        color = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"
        ax.text(jx, i, f"{v:.2g}{mark}", ha="center", va="center", fontsize=MIN_FONT_PT, color=color)
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046)


def _grid(cells: list[dict], xkey: str, ykey: str, value: str) -> tuple[np.ndarray, list, list]:
    xs = sorted({c[xkey] for c in cells})
    ys = sorted({c[ykey] for c in cells})
    out = np.full((len(ys), len(xs)), np.nan)
    for c in cells:
        out[ys.index(c[ykey]), xs.index(c[xkey])] = c[value]
    return out, xs, ys


def draw_boundary(run_dir: RunDir) -> list[Path]:
    """Where the coefficient holds, as heatmaps over the grids, and against the unseen mass share."""
    summary = run_dir.read_json("summary.json")
    return [_draw_heatmaps(run_dir, summary), _draw_unseen_share(run_dir)]


def _draw_heatmaps(run_dir: RunDir, summary: Mapping[str, Any]) -> Path:
    grids = summary["grids"]
    fig, axes = plt.subplots(2, 2, figsize=(17, 12))
    coef, xs, ys = _grid(grids["dist"], "s", "l_max", "coefficient_median")
    held, _, _ = _grid(grids["dist"], "s", "l_max", "holds_fraction")
    _heatmap(axes[0, 0], coef, [f"{x:g}" for x in xs], [f"{y:g}" for y in ys],
             "distribution level: median coefficient ratio/(-k)\n(* = holds in ≥ half the seeds: "
             "in [0.9,1.1] with the theorem's signs)", held, _norm(coef, 0, 2, centre=1))
    axes[0, 0].set_xlabel("similarity s (1 = pre-training-like, 0 = novel)")
    axes[0, 0].set_ylabel("l_max")
    tree = grids["tree"]
    coef, xs, ys = _grid(tree, "s", "depth", "coefficient_median")
    held, _, _ = _grid(tree, "s", "depth", "holds_fraction")
    leaves, _, _ = _grid(tree, "s", "depth", "world_leaves")
    ylab = [f"d={int(y)} (M≈{int(leaves[i, 0])})" for i, y in enumerate(ys)]
    _heatmap(axes[0, 1], coef, [f"{x:g}" for x in xs], ylab,
             "sampled level: median coefficient vs similarity and tree size", held, _norm(coef, 0, 2, centre=1))
    axes[0, 1].set_xlabel("similarity s")
    signs, _, _ = _grid(tree, "s", "depth", "signs_fraction")
    _heatmap(axes[1, 0], signs, [f"{x:g}" for x in xs], ylab,
             "sampled level: share of seeds with the theorem's signs", held, _norm(signs, 0, 1, centre=None),
             cmap="viridis")
    axes[1, 0].set_xlabel("similarity s")
    frac, xs, ys = _grid(grids["sample"], "n_align", "depth", "holds_fraction")
    coef, _, _ = _grid(grids["sample"], "n_align", "depth", "coefficient_median")
    _heatmap(axes[1, 1], coef, [f"{int(x)}" for x in xs], [f"d={int(y)}" for y in ys],
             "sampled, pre-training-like: median coefficient vs sample size\n(* = holds in ≥ half the seeds)",
             frac, _norm(coef, 0, 2, centre=1))
    axes[1, 1].set_xlabel("|D_a| (|D_t| = l_max |D_a|, |D_p| = k |D_a| capped)")
    fig.suptitle(f"Where Θ(-k) holds: k={summary['k']:g}, α={summary['alpha']:g} "
                 "(colour scales span each grid's whole range; 1 = the theorem's coefficient)")
    return save_figure(fig, run_dir.figures_dir / "heatmaps.png")


def _draw_unseen_share(run_dir: RunDir) -> Path:
    rows = run_dir.read_metrics()
    share, coefs = _by(rows, "unseen_mass_share"), _by(rows, "coefficient")
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    grids = (("grid=tree", "tab:blue", "similarity × tree grid"), ("grid=sample", "tab:orange", "tree × sample grid"))
    for prefix, color, label in grids:
        xs = [v for cond in share if cond.startswith(prefix) for x in share[cond] for v in share[cond][x]]
        ys = [v for cond in share if cond.startswith(prefix) for x in share[cond] for v in coefs[cond][x]]
        if xs:
            ax.scatter(xs, np.clip(ys, -3, 3), s=6, alpha=0.5, color=color, label=label)
    ax.axhspan(*BAND, color="green", alpha=0.15, label="[0.9, 1.1]")
    ax.set_xlabel("share of D_t's mass on leaves D_p and D_a never produced")
    ax.set_ylabel("coefficient ratio/(-k) (clipped to ±3)")
    ax.set_title("sampled level: coefficient against the unseen mass share")
    ax.legend()
    return save_figure(fig, run_dir.figures_dir / "unseen_share.png")


def _ccdf_panel(ax, samples: Mapping[str, np.ndarray], x_min: float, tail_index: float, alpha: float,
                tests: dict, title: str) -> None:
    """CCDF of each sample (label -> values) with the fitted Pareto tail, anchored on the first."""
    for (label, values), marker in zip(samples.items(), ".x+", strict=False):
        x = np.sort(np.asarray(values, dtype=float))
        x = x[x > 0]
        ax.loglog(x, 1.0 - np.arange(x.size) / x.size, marker, ms=2 if marker == "." else 3, ls="none",
                  label=label)
    first = np.asarray(next(iter(samples.values())), dtype=float)
    first = first[first > 0]
    tail_share = float((first >= x_min).mean())
    xt = np.geomspace(x_min, first.max(), 50)
    ax.loglog(xt, tail_share * (xt / x_min) ** -tail_index, "r-",
              label=f"Pareto tail index {tail_index:.3f} (Zipf α {alpha:.3f})")
    ax.axvline(x_min, color="grey", ls=":", lw=1, label=f"x_min = {x_min:.3g}")
    lines = [f"vs {t['alternative']}: R={t['log_ratio']:.3g}, p={t['p_value']:.2g}" for t in tests.values()]
    ax.set_title(title + "\n" + "\n".join(lines))
    ax.set_xlabel("leaf mass (count)")
    ax.set_ylabel("P(X ≥ x)")
    ax.legend(loc="lower left")


def draw_pareto_ccdf(values: np.ndarray, fit, path: Path, title: str = "") -> Path:
    """Complementary CDF of the mass values on log-log axes, with the fitted Pareto tail."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    _ccdf_panel(ax, {"data": values}, fit.x_min, fit.tail_index, fit.alpha,
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
    ax.legend()
    ax.set_title(title)
    return save_figure(fig, path, dpi=110)
