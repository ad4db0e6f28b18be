"""Calibration of the scale primary readings on synthetic reverse curves.

A synthetic run has the headline reference's shape (``figures/data/toy.scale/config.json``: its
sizes, pre-training budgets, seeds, forward and reverse amounts) and the reference's parameter
counts. Each (seed, size, budget) cell has an F = 0 control arm and F > 0 arms decaying
exponentially, each reading a chosen initial (window) rate: the control's rate, plus the cell's
excess rate in proportion to F. The excess rises by a planted slope per decade of parameters or of
budget. Every level and spread is measured on the committed reference at first use
(:func:`scale_reference`), so a new reference recalibrates:

- the mean control rate and excess rate (largest F minus the control), S0 and each arm's start above
  S0, with their spreads;
- the excess's spread around its cell mean over seeds (``cell_sd``) and the control's
  (``control_sd``);
- the per-seed slopes' spread against log10 parameters and log10 budget beyond what independent
  cells explain: a slope shared by a seed's cells (``size_slope_sd``, ``budget_slope_sd``).

Step noise (an AR(1) share of each step's decrement, sd 0.04, lag-1 0.5) comes from a dense-grid
pilot; the scale readings do not look at single steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from scipy.optimize import brentq

from harness.calibration import Calibration
from harness.metrics import metric_row, metrics_path, read_metrics_csv
from harness.reference import figures_dir, reference_config
from harness.verdicts import Prediction
from toymodels.protocols import scale
from toymodels.protocols.rebound_calibration import (
    WINDOW,
    curve_table,
    headline_shape,
    pick,
    step_noise,
)
from toymodels.protocols.rebound_readings import curves_from_rows, metrics_by_run

EXPERIMENT = "toy.scale"
STEP_SD, STEP_LAG1 = 0.04, 0.5  # a dense-grid pilot's step noise
RATE = "initial_rate_log_odds"


@dataclass(frozen=True)
class ScaleReference:
    """What the generator takes from the committed toy.scale reference."""

    sizes: dict[str, float]  # size -> parameters
    budgets: tuple[int, ...]
    rate_control: float
    excess: float
    s0_mean: float
    s0_sd: float
    start_above_s0: dict[int, float]  # F -> mean start above S0
    start_sd: float
    cell_sd: float
    control_sd: float
    size_slope_sd: float
    budget_slope_sd: float


def _within_sd(values: Mapping[Any, Sequence[float]]) -> float:
    """Pooled sd of values around their group's mean (one group per cell, seeds within it)."""
    residuals = [v - np.mean(group) for group in values.values() for v in group]
    dof = sum(len(group) - 1 for group in values.values())
    return float(np.sqrt(np.sum(np.square(residuals)) / dof))


def _slope_weights(x: Mapping[Any, float]) -> dict[Any, float]:
    """Least-squares slope weights: the slope over points ``x`` is sum_k w_k y_k."""
    centred = {k: v - np.mean(list(x.values())) for k, v in x.items()}
    denominator = sum(c * c for c in centred.values())
    return {k: c / denominator for k, c in centred.items()}


def _slope_sd(excess: Mapping[tuple[Any, str, int], float], axis: int, x: Mapping[Any, float],
              seeds: Sequence[Any], others: Sequence[Any], cell_sd: float) -> float:
    """The per-seed slope of the excess against ``x`` (on ``axis`` of the (seed, size, budget) key,
    averaged over the other axis): its spread over seeds beyond what independent cells explain."""
    weights = _slope_weights(x)

    def key(seed: Any, on_axis: Any, other: Any) -> tuple[Any, ...]:
        return (seed, on_axis, other) if axis == 1 else (seed, other, on_axis)

    per_seed = [np.mean([sum(w * excess[key(seed, k, other)] for k, w in weights.items()) for other in others])
                for seed in seeds]
    explained = cell_sd**2 * sum(w * w for w in weights.values()) / len(others)
    return float(np.sqrt(max(np.var(per_seed, ddof=1) - explained, 0.0)))


@cache
def scale_reference() -> ScaleReference:
    """Levels and spreads measured on figures/data/toy.scale (see the module docstring)."""
    rows = read_metrics_csv(metrics_path(figures_dir() / "data" / EXPERIMENT))
    shape = headline_shape(EXPERIMENT)
    sizes = scale.params_of(rows)
    budgets = tuple(int(b) for b in reference_config(EXPERIMENT)["n_pretrain"])
    curves, metrics = curves_from_rows(rows), metrics_by_run(rows)
    top = shape.forward[-1]
    control, excess, s0, starts = {}, {}, [], {f: [] for f in shape.forward[1:]}
    for (seed, group), per_f in metrics.items():
        cond = dict(group)
        key = (seed, str(cond["size"]), int(cond["n_pretrain"]))
        control[key] = per_f[0][RATE]
        excess[key] = per_f[top][RATE] - per_f[0][RATE]
        c = curves[(seed, group)]
        s0.append(c.s0_log_odds)
        for i, f in enumerate(c.forward_amounts[1:], start=1):
            starts[f].append(c.log_odds[i, 0] - c.s0_log_odds)
    by_cell = lambda values: {(z, b): [v for k, v in values.items() if k[1:] == (z, b)]  # noqa: E731
                              for z in sizes for b in budgets}
    cell_sd = _within_sd(by_cell(excess))
    seeds = sorted({k[0] for k in excess})
    log_size = {z: float(np.log10(n)) for z, n in sizes.items()}
    log_budget = {b: float(np.log10(b)) for b in budgets}
    start_residuals = [v - np.mean(vs) for vs in starts.values() for v in vs]
    return ScaleReference(
        sizes=sizes, budgets=budgets, rate_control=float(np.mean(list(control.values()))),
        excess=float(np.mean(list(excess.values()))), s0_mean=float(np.mean(s0)), s0_sd=float(np.std(s0, ddof=1)),
        start_above_s0={f: float(np.mean(v)) for f, v in starts.items()},
        start_sd=float(np.std(start_residuals, ddof=len(starts))),
        cell_sd=cell_sd, control_sd=_within_sd(by_cell(control)),
        size_slope_sd=_slope_sd(excess, 1, log_size, seeds, budgets, cell_sd),
        budget_slope_sd=_slope_sd(excess, 2, log_budget, seeds, list(sizes), cell_sd))


def with_step_noise(y: np.ndarray, sd: float, lag1: float, rng: np.random.Generator) -> np.ndarray:
    """Each step's decrement off by an AR(1) share (the scale readings do not look at S0)."""
    return np.concatenate([[y[0]], y[0] + np.cumsum(np.diff(y) * (1 + step_noise(y.size - 1, sd, lag1, rng)))])


def exponential_arm(r: np.ndarray, start: float, floor: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """An arm over amounts ``r`` decaying exponentially toward ``floor`` that reads ``rate`` over the window."""
    inside = r[(r >= WINDOW[0]) & (r <= WINDOW[1])]
    weights = (inside - inside.mean()) / np.sum((inside - inside.mean()) ** 2)
    reads = lambda lam: -(start - floor) * float(weights @ np.exp(-lam * inside)) - rate  # noqa: E731
    top = 1.0 / inside.mean()  # the window rate rises with lam up to about here
    lam = brentq(reads, 1e-9, top) if reads(1e-9) < 0 < reads(top) else top
    return with_step_noise(floor + (start - floor) * np.exp(-lam * r), STEP_SD, STEP_LAG1, rng)


def scale_rows(size_trend: float, budget_trend: float, seed: int) -> list[dict[str, Any]]:
    """A run of the headline's shape (curves and parameter counts): the excess window rate rises by
    ``size_trend`` per decade of parameters and ``budget_trend`` per decade of budget."""
    ref, shape, rng = scale_reference(), headline_shape(EXPERIMENT), np.random.default_rng((31, seed))
    x_size = {z: np.log10(n) - np.mean(np.log10(list(ref.sizes.values()))) for z, n in ref.sizes.items()}
    x_budget = {b: np.log10(b) - np.mean(np.log10(ref.budgets)) for b in ref.budgets}
    rows = [metric_row("n_params", n, "parameters", size=z) for z, n in ref.sizes.items()]
    for run in range(shape.seeds):
        size_slope = size_trend + rng.normal(0, ref.size_slope_sd)
        budget_slope = budget_trend + rng.normal(0, ref.budget_slope_sd)
        for z, b in ((z, b) for z in ref.sizes for b in ref.budgets):
            s0 = rng.normal(ref.s0_mean, ref.s0_sd)
            control = ref.rate_control + rng.normal(0, ref.control_sd)
            excess = (ref.excess + size_slope * x_size[z] + budget_slope * x_budget[b]
                      + rng.normal(0, np.sqrt(max(ref.cell_sd**2 - ref.control_sd**2, 0.0))))
            starts = [s0] + [s0 + ref.start_above_s0[f] + rng.normal(0, ref.start_sd) for f in shape.forward[1:]]
            rates = [control + excess * f / shape.forward[-1] for f in shape.forward]
            curves = [exponential_arm(shape.reverse, start, s0 - 8.0, rate, rng)
                      for start, rate in zip(starts, rates, strict=True)]
            rows += curve_table(run, shape.tasks[0], s0, shape.forward, shape.reverse, curves, size=z, n_pretrain=b)
    return rows


def size_replicate(size: float, seed: int) -> Prediction:
    return pick(scale.readings(scale_rows(size, 0.0, seed)), "scale.rebound_grows_with_size")


def budget_replicate(size: float, seed: int) -> Prediction:
    return pick(scale.readings(scale_rows(0.0, size, seed)), "scale.rebound_grows_with_pretraining")


NOISE_SCALE = "toy.scale headline reference: cell and per-seed slope spread of the excess window rate"


def _calibration(reading: str, replicate: Any, scan: tuple[float, ...], per_decade_of: str,
                 paper_size: str) -> Calibration:
    """A scale reading's calibration: the null 0, the stated size 0.0065 nats/example per decade."""
    return Calibration(reading=reading, experiment=EXPERIMENT, replicate=replicate, null=0.0, stated=0.0065,
                       scan=scan, unit=f"rise of the excess initial rate per decade of {per_decade_of} (nats/example)",
                       paper_size=paper_size, noise=NOISE_SCALE)


CALIBRATIONS = (
    _calibration("scale.rebound_grows_with_size", size_replicate, (0.002, 0.004, 0.006, 0.008, 0.01), "parameters",
                 "~0.004 (Fig. 5, eyeballed: IMDb score after 500 reverse examples 0.76 at 0.5B, 0.22 at 7B, the same "
                 "start assumed, over 1.15 decades); stated 0.0065 is half the toy's mean excess per decade"),
    _calibration("scale.rebound_grows_with_pretraining", budget_replicate, (0.001, 0.002, 0.003, 0.004, 0.006),
                 "pre-training examples",
                 "~0.018 (Fig. 6, eyeballed: IMDb score after 1000 reverse examples 0.80 at 2.0T tokens, 0.145 at "
                 "3.0T, the same start assumed, over 0.18 decades); stated 0.0065 as for size"),
)
