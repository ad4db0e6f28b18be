"""``elasticity theory simulate``: Delta gamma_p and Delta gamma_a as |D_t| grows, across k, alpha and depth.

For every (alpha, depth, seed) the sweep measures, at each k, over the finite step ``l in [0, l_max]``
and as ``l -> 0``:

- ``Delta gamma_p``, ``Delta gamma_a`` (ideal lengths ``-log2 q``, bits per unit depth), their ratio,
  the coefficient ``ratio / (-k)`` (1 is the theorem's Theta(-k) with unit constant) and whether the
  theorem's signs hold (gamma_p falls, gamma_a rises);
- the pointwise identity ``dgamma_a/dl = -(k + l) dgamma_p/dl`` and the conservation residual;
- the same step with actual Huffman code lengths, and the mass of D_t on leaves D_p and D_a never
  produced.

At the sampled level the leaf counts of D_p (largest k, first seed) are also fitted with a Pareto
tail and tested against lognormal and exponential alternatives (``pareto_fits``).

The theorem's primary reading (:mod:`theory.readings`, pre-registered) is the log-log slope of
``|ratio|`` against ``k`` per seed, averaged over the (alpha, depth) conditions, judged against the band
[0.9, 1.1]. The slope alone is not evidence: the shares of cells with the theorem's signs and with a
coefficient in the band are reported beside it (exploratory, an interval over seeds each).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.config import Preset, require, require_distinct, seeds_of
from harness.experiment import Experiment
from harness.logs import progress
from harness.metrics import metric_row
from harness.runs import RunDir
from harness.verdicts import Prediction, mean_ci
from theory.mixture import Components, derivatives, finite_step, huffman_step
from theory.pareto import fit_pareto
from theory.readings import (
    BAND,
    SIMULATE_L0,
    SIMULATE_STEP,
    cells_from_rows,
    condition_slopes,
    fraction_reading,
    in_band,
    ratio_scales_with_k,
)
from theory.worlds import WorldSpec, distribution_components, sample_components

NAME = "theory.simulate"
IDENTITY_TOLERANCE = 1e-9
CONSERVATION_TOLERANCE = 1e-9
K_DECADES = (10.0, 31.6227766, 100.0, 316.227766, 1000.0, 3162.27766, 10000.0, 31622.7766, 100000.0)


@dataclass(frozen=True, kw_only=True)
class SimulateConfig:
    """Sweep over k (and alpha, depth); see the module docstring and the glossary for the keys."""

    k: tuple[float, ...] = (10.0, 100.0, 1000.0, 10000.0)
    alpha: tuple[float, ...] = (1.2,)
    depth: tuple[int, ...] = (8,)
    perturbation: Literal["pretrain", "align", "novel", "unseen", "mix"] = "pretrain"
    similarity: float = 1.0  # for perturbation=mix: s * pretrain-like + (1 - s) * novel
    level: Literal["distribution", "sampled"] = "sampled"
    l_max: float = 0.1
    seeds: int = 5
    seed: int = 0
    n_align: int = 1000  # |D_a| in sequences
    world: WorldSpec = field(default_factory=WorldSpec)

    def __post_init__(self) -> None:
        require(len(self.k) >= 1 and all(k > 0 for k in self.k), f"every k must be > 0, got {self.k}")
        require(len(self.alpha) >= 1 and all(a > 0 for a in self.alpha), "every alpha must be > 0")
        require(len(self.depth) >= 1 and all(d >= 1 for d in self.depth), "every depth must be >= 1")
        for key in ("k", "alpha", "depth"):
            require_distinct(key, getattr(self, key))
        require(0.0 <= self.similarity <= 1.0, "similarity must be in [0, 1]")
        require(self.l_max > 0, "l_max must be > 0")
        require(self.seeds >= 1, "seeds must be >= 1")
        require(self.n_align >= 1, "n_align must be >= 1")
        if self.level == "sampled":
            self.world.check_alignment_sample(self.n_align)
            require(max(self.depth) <= self.world.seq_len, f"depth {max(self.depth)} exceeds the sampled "
                    f"sequences' length (world.seq_len = {self.world.seq_len}); pruning deeper than that is the same tree")
        unused = ("n_leaves",) if self.level == "sampled" else ("vocab", "n_types", "seq_len", "max_pretrain_samples")
        for key in unused:
            require(getattr(self.world, key) == getattr(WorldSpec(), key),
                    f"world.{key} = {getattr(self.world, key)} is not used at the {self.level} level; "
                    f"leave it out or set level")
        require(not (self.level == "sampled" and self.perturbation == "unseen"),
                "perturbation 'unseen' is a distribution-level construction; at the sampled level "
                "unseen leaves come from sampling")


def measure(c: Components, k: float, l_max: float, depth: int) -> dict[str, float]:
    """Every quantity of one (components, k) point; rates in bits."""
    step = finite_step(c, k, l_max, depth)
    d0 = derivatives(c, k, 0.0, depth)
    dl = derivatives(c, k, l_max, depth)
    huff = huffman_step(c, k, l_max, depth)
    coef_l0 = d0.ratio / (-k)
    return {
        "delta_gamma_p_bits": step.dgamma_p,
        "delta_gamma_a_bits": step.dgamma_a,
        "ratio": step.ratio,
        "coefficient": step.coefficient,
        "signs_hold": float(step.signs_hold),
        "coefficient_l0": coef_l0,
        "dgamma_p_dl_l0_bits": d0.p,
        "dgamma_a_dl_l0_bits": d0.a,
        "identity_rel_error": max(d0.identity_error(), dl.identity_error()),
        "conservation_residual": max(d0.conservation_residual(), dl.conservation_residual()),
        "unseen_mass_share": step.unseen_mass,
        # Hooke balance in units of |D_a| * bits: |D_p| dKL_p and -|D_a| dKL_a, KL(P_i || q)
        "hooke_p_bits": k * depth * step.dgamma_p,
        "hooke_a_bits": -depth * step.dgamma_a,
        "huffman_delta_gamma_p_bits": huff.dgamma_p,
        "huffman_delta_gamma_a_bits": huff.dgamma_a,
        "huffman_coefficient": (huff.dgamma_a / huff.dgamma_p / (-k)) if huff.resolves else float("nan"),
        "huffman_resolves": float(huff.resolves),
        "huffman_bound_holds": float(huff.bound_holds),
        "huffman_component_bound_share": huff.component_bound_share,
    }


def _unit(name: str) -> str:
    return "bits" if name.endswith("_bits") else "1"


def cell_label(alpha: float, depth: int) -> str:
    """The name of an (alpha, depth) condition in summaries and figures."""
    return f"alpha={alpha:g},depth={depth}"


def cell_rows(config: SimulateConfig, alpha: float, depth: int, seed: int) -> list[dict[str, Any]]:
    """All k for one (alpha, depth, seed): tidy records, one per measured point."""
    rows: list[dict[str, Any]] = []
    world = None
    if config.level == "sampled":
        world = config.world.make(seed, alpha)
        exact = world.true_components(depth)
    else:
        comps = distribution_components(alpha, config.world.n_leaves, config.perturbation, seed,
                                        config.similarity)
    for k in config.k:
        extra: dict[str, float] = {}
        if world is not None:
            sample = sample_components(world, depth, k, config.n_align, config.l_max,
                                       config.world.max_pretrain_samples, config.perturbation,
                                       config.similarity, seed)
            comps = sample.components
            ref = finite_step(exact, k, config.l_max, depth)
            extra = {"exact_coefficient": ref.coefficient, "exact_ratio": ref.ratio,
                     "world_leaves": float(sample.world_leaves)}
        values = {**measure(comps, k, config.l_max, depth), **extra}
        for name, value in values.items():
            rows.append(metric_row(name, value, _unit(name), seed=seed, x=k, alpha=alpha, depth=depth))
    return rows


def run(config: SimulateConfig, run_dir: RunDir) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    cells = list(itertools.product(config.alpha, config.depth, seeds_of(config)))
    for alpha, depth, seed in progress(cells, desc="theory.simulate", unit="cell"):
        key = f"alpha={alpha:g}-depth={depth}-seed={seed}"
        # a Huffman step that did not resolve is NaN
        rows.extend(run_dir.metric_cell(key, lambda a=alpha, d=depth, s=seed: cell_rows(config, a, d, s)))
    fits = pareto_fits(config, run_dir) if config.level == "sampled" else []
    for fit in fits:
        rows.append(metric_row("pareto_alpha_fit", fit["alpha_fit"], "1", seed=config.seed, x=max(config.k),
                               alpha=fit["alpha"], depth=fit["depth"]))
    run_dir.write_metrics(rows)
    summary = summarise(config, rows)
    summary["pareto_fits"] = fits
    return summary


def pareto_fits(config: SimulateConfig, run_dir: RunDir) -> list[dict[str, Any]]:
    """Is the pruned tree's leaf-mass distribution Pareto? Fit the D_p sample at the largest k.

    One fit per (alpha, depth) on the first seed's leaf counts, which are saved for the CCDF figure.
    """
    fits, saved = [], {}
    k = max(config.k)
    for alpha in config.alpha:
        world = config.world.make(config.seed, alpha)
        for depth in config.depth:
            sample = sample_components(world, depth, k, config.n_align, config.l_max,
                                       config.world.max_pretrain_samples, config.perturbation,
                                       config.similarity, config.seed)
            counts = np.rint(sample.components.p * sample.n_pretrain_drawn).astype(np.int64)
            counts = counts[counts > 0]
            fit = fit_pareto(counts)
            cond = cell_label(alpha, depth)
            saved[cond] = counts.tolist()
            fits.append({"condition": cond, "alpha": alpha, "depth": depth, "alpha_fit": fit.alpha,
                         "tail_index_fit": fit.tail_index, "x_min": fit.x_min, "n_tail": fit.n_tail,
                         "ks": fit.ks, "tests": {n: vars(t) for n, t in fit.tests.items()}})
    run_dir.write_json("pareto_counts.json", saved)
    return fits


def _table(rows: list[dict[str, Any]], measure_name: str) -> dict[tuple[str, int], dict[float, float]]:
    """(condition, seed) -> {k: value} for one measure."""
    out: dict[tuple[str, int], dict[float, float]] = {}
    for r in rows:
        if r["measure"] == measure_name:
            cond = cell_label(r["condition"]["alpha"], r["condition"]["depth"])
            out.setdefault((cond, int(r["seed"])), {})[float(r["x"])] = float(r["value"])
    return out


def summarise(config: SimulateConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The simulate summary: lists in --k order, pooled over conditions, plus per-condition detail."""
    ks = [float(k) for k in config.k]
    tables = {m: _table(rows, m) for m in ("ratio", "coefficient", "coefficient_l0", "signs_hold",
                                            "delta_gamma_p_bits", "delta_gamma_a_bits",
                                            "conservation_residual", "identity_rel_error",
                                            "unseen_mass_share", "huffman_resolves",
                                            "huffman_bound_holds", "exact_coefficient",
                                            "huffman_coefficient")}
    keys = sorted(tables["ratio"])
    conditions = sorted({c for c, _ in keys}, key=lambda c: [float(v.split("=")[1]) for v in c.split(",")])

    def at(measure_name: str, key: tuple[str, int]) -> list[float]:
        table = tables[measure_name].get(key, {})
        return [table.get(k, float("nan")) for k in ks]

    slopes = {(cell_label(dict(cond)["alpha"], dict(cond)["depth"]), seed): value
              for (seed, cond), value in condition_slopes(cells_from_rows(rows, SIMULATE_STEP)).items()}

    def pooled(measure_name: str, keyset: list[tuple[str, int]], stat=np.nanmean) -> list[float]:
        arr = np.array([at(measure_name, key) for key in keyset], dtype=float)
        with warnings.catch_warnings():  # an all-NaN column (nothing resolved) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return [float(v) for v in stat(arr, axis=0)]

    def block(keyset: list[tuple[str, int]]) -> dict[str, Any]:
        per_seed = {}
        for cond, seed in keyset:
            per_seed.setdefault(seed, []).append(slopes[(cond, seed)])
        slope, slope_ci = mean_ci([float(np.nanmean(v)) for v in per_seed.values()])
        coef_cis = []
        for i in range(len(ks)):
            coef_cis.append(list(mean_ci([at("coefficient", key)[i] for key in keyset])[1]))
        signs = np.array([at("signs_hold", key) for key in keyset])
        out = {
            "slope": slope, "slope_ci": list(slope_ci),
            "ratios": pooled("ratio", keyset),
            "coefficients": pooled("coefficient", keyset),
            "coefficients_ci": coef_cis,
            "coefficients_l0": pooled("coefficient_l0", keyset),
            "signs_hold": [bool(v) for v in np.all(signs == 1.0, axis=0)],
            "signs_hold_fraction": [float(v) for v in signs.mean(axis=0)],
            "in_band": [bool(BAND[0] <= c <= BAND[1]) for c in pooled("coefficient", keyset)],
            "unseen_mass_share": pooled("unseen_mass_share", keyset),
            "huffman_resolves_fraction": pooled("huffman_resolves", keyset),
            # median: a Huffman step that moves one rare leaf gives a tiny Delta gamma_p and a huge ratio
            "huffman_coefficients_median": pooled("huffman_coefficient", keyset, np.nanmedian),
        }
        if tables["exact_coefficient"]:
            out["exact_coefficients"] = pooled("exact_coefficient", keyset)
        return out

    summary: dict[str, Any] = {"k": ks, "level": config.level, "perturbation": config.perturbation,
                               "l_max": config.l_max, **block(keys)}
    summary["max_conservation_residual"] = float(max(
        max(v.values()) for v in tables["conservation_residual"].values()))
    summary["max_identity_rel_error"] = float(max(max(v.values()) for v in tables["identity_rel_error"].values()))
    summary["huffman_bound_holds"] = bool(all(all(x == 1.0 for x in v.values())
                                              for v in tables["huffman_bound_holds"].values()))
    summary["conditions"] = [{"condition": c, **block([key for key in keys if key[0] == c])}
                             for c in conditions]
    summary["predictions"] = readings(rows, NAME)
    failures = []
    if summary["max_conservation_residual"] > CONSERVATION_TOLERANCE:
        failures.append(f"conservation residual {summary['max_conservation_residual']:.3g} > {CONSERVATION_TOLERANCE:g}")
    if (config.level == "distribution" and config.perturbation == "pretrain"
            and summary["max_identity_rel_error"] > IDENTITY_TOLERANCE):
        failures.append(f"dgamma_a/dl = -(k+l) dgamma_p/dl broken: relative error "
                        f"{summary['max_identity_rel_error']:.3g} > {IDENTITY_TOLERANCE:g}")
    if not summary["huffman_bound_holds"]:
        failures.append("a Huffman code broke the 1-bit bound for the coded mixture")
    summary["instrument_failures"] = failures
    return summary


def readings(rows: list[dict[str, Any]], experiment: str = NAME) -> list[Prediction]:
    """The predictions of any theory.simulate metrics table: the theorem's slope (primary) and, per
    seed, the shares of (condition, k) cells with the theorem's signs and coefficient (exploratory)."""
    preds: list[Prediction] = []
    step = cells_from_rows(rows, SIMULATE_STEP)
    if step:
        preds.append(ratio_scales_with_k(step, experiment))
        for pid, holds, what in (
            ("simulate.gamma_p_falls_fraction", lambda c: c.p < 0, "Delta gamma_p < 0 over [0, l_max]"),
            ("simulate.gamma_a_rises_fraction", lambda c: c.a > 0, "Delta gamma_a > 0 over [0, l_max]"),
            ("simulate.coefficient_in_band_fraction", lambda c: in_band(c.coefficient),
             "ratio/(-k) over [0, l_max] is in [0.9, 1.1]"),
        ):
            preds.append(fraction_reading(pid, step, holds, what, experiment))
    l0 = cells_from_rows(rows, SIMULATE_L0)
    if l0:
        preds.append(fraction_reading("simulate.coefficient_l0_in_band_fraction", l0,
                                      lambda c: in_band(c.coefficient), "ratio/(-k) as l -> 0 is in [0.9, 1.1]",
                                      experiment))
    return preds


PRESETS = {
    "quick": Preset({}, "sampled level, alpha 1.2, depth 8, k 10..1e4, 5 seeds", est_seconds=10),
    # 40 seeds: the calibration's power for the theorem's band at slope 1 (10 seeds gave 0.25; 25,
    # with the noise their own run measured, 0.59)
    "full": Preset({"k": K_DECADES, "alpha": (0.8, 1.2, 2.0), "depth": (4, 8, 12), "seeds": 40},
                   "sampled level, alpha {0.8,1.2,2}, depth {4,8,12}, k 10..1e5, 40 seeds",
                   est_seconds=415),
    "distribution": Preset({"k": K_DECADES, "alpha": (0.8, 1.2, 2.0), "depth": (4, 8, 12),
                            "level": "distribution", "seeds": 5},
                           "exact leaf masses, pre-training perturbation: the identity to 1e-9",
                           est_seconds=60),
    "novel": Preset({"k": K_DECADES, "level": "distribution", "perturbation": "novel"},
                    "exact leaf masses, a perturbation unlike D_p and D_a (breaks the relation)",
                    est_seconds=15),
}

EXPERIMENT = Experiment(
    name=NAME,
    help="Delta gamma_p and Delta gamma_a as |D_t| grows: slope, coefficient and signs across k",
    config_cls=SimulateConfig,
    presets=PRESETS,
    run=run,
    readings=readings,
    draw="theory.figures:draw_simulate",
    flags={"--k": "k", "--alpha": "alpha", "--depth": "depth", "--perturbation": "perturbation",
             "--level": "level", "--l-max": "l_max", "--seeds": "seeds", "--similarity": "similarity"},
    units={"gamma": "bits", "delta_gamma": "bits", "kl": "bits"},
)
