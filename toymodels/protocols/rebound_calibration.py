"""Calibration of the rebound primary readings on synthetic reverse curves.

A synthetic run has the headline reference's shape (``figures/data/toy.rebound/config.json``: its
seeds, tasks, forward amounts F and reverse amounts R, every optimizer step of 16 examples) and is
written as the rows a run writes (``score_*`` and ``s0_*``), so it goes through the experiment's own
code (:func:`~toymodels.protocols.rebound_readings.rebound_predictions`). Each (seed, task) decays
by a smooth rate law fitted to the committed reference, ``dy/dR = -m c sigmoid(a (y - b))``: the
dense toy curves' rates fall smoothly from about 0.045 nats/example far above S0 to under 0.01
far below it, with the inflection anywhere from 2 nats below S0 to 2 above. That curvature is what
the slowdown reading must not mistake for a slowdown. Each arm starts where the reference's arm
of that F starts (with the reference's seed-to-seed spread) and its multiplier ``m`` is solved so
that the initial-rate window reads a chosen rate; each step's decrement is off by an AR(1) share
with the lag-1 correlation of the reference's step residuals around their fitted law, its amplitude
set so that each reading spreads over synthetic seeds as it does over the reference's
(``STEP_NOISE_SCALE``). The initial rate's
trend in F is planted with the reference's spread between seeds, tasks and arms (measured with the
pre-registered reading); the slowdown is planted as a cut of the rate by a share once the curve
passes S0. The shape and all noise levels are read from the committed reference at first use
(:func:`headline_shape`, :func:`rebound_reference`), so a new reference recalibrates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from scipy.optimize import brentq, least_squares
from scipy.special import expit, wrightomega

from harness.calibration import Calibration
from harness.metrics import metric_row, metrics_path, read_metrics_csv
from harness.reference import figures_dir, reference_config
from harness.verdicts import Prediction
from toymodels.protocols.rebound_readings import (
    WINDOW_STEPS,
    curves_from_rows,
    metrics_by_run,
    rebound_predictions,
)

STEP = 16  # examples per optimizer step of the toy presets
WINDOW = (WINDOW_STEPS[0] * STEP, WINDOW_STEPS[1] * STEP)


@dataclass(frozen=True)
class Shape:
    """A headline run's shape: its seeds, tasks, forward amounts and reverse amounts."""

    seeds: int
    tasks: tuple[str, ...]
    forward: tuple[int, ...]
    reverse: np.ndarray


@cache
def headline_shape(experiment: str = "toy.rebound") -> Shape:
    """The shape of the committed reference of ``experiment`` (a rebound-probe experiment)."""
    config = reference_config(experiment)
    tasks = config["tasks"] if "tasks" in config else [config["task"]]
    return Shape(int(config["seeds"]), tuple(tasks), tuple(int(f) for f in config["probe"]["forward_amounts"]),
                 np.asarray(config["probe"]["reverse_amounts"], dtype=float))


def law_curve(r: np.ndarray, start: float, c: float, a: float, b: float, s0: float = np.inf,
              slowdown: float = 0.0) -> np.ndarray:
    """The score along ``r`` under dy/dR = -c sigmoid(a (y - b)) from ``start``; once it passes
    ``s0`` the rate is cut by the share ``slowdown``. Closed form: with z = a (y - b),
    z - exp(-z) falls linearly in R, so z = K + omega(-K) (Wright omega)."""
    def run(z0: float, rate: float, t: np.ndarray) -> np.ndarray:
        k = z0 - np.exp(-z0) - a * rate * t
        return b + (k + np.real(wrightomega(-k))) / a

    if slowdown and start <= s0:
        return run(a * (start - b), c * (1 - slowdown), r)
    y = run(a * (start - b), c, r)
    if slowdown and np.any(y <= s0):
        zc = a * (s0 - b)
        crossing = ((a * (start - b) - np.exp(-a * (start - b))) - (zc - np.exp(-zc))) / (a * c)
        past = r > crossing
        y[past] = run(zc, c * (1 - slowdown), r[past] - crossing)
    return y


def window_rates(r: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minus the least-squares slope over the window of each curve in ``y`` (..., len(r)): the
    closed form of a line fit, so that many curves are read at once."""
    inside = (r >= WINDOW[0]) & (r <= WINDOW[1])
    centred = r[inside] - r[inside].mean()
    return -(y[..., inside] @ centred) / (centred @ centred)


def window_rate(r: np.ndarray, y: np.ndarray) -> float:
    return float(window_rates(r, y))


MULTIPLIERS = np.geomspace(1e-2, 1e2, 25)


def multiplier_for(r: np.ndarray, start: float, c: float, a: float, b: float, rate: float) -> float:
    """The multiplier of the law's rate that makes an arm from ``start`` read ``rate`` over the
    window of amounts ``r``: the smallest such (the window rate first rises with it, then falls once
    the arm rushes past the law's inflection before the window), or the one reading the most when
    none does."""
    def excess(m: float) -> float:
        return window_rate(r, law_curve(r, start, m * c, a, b)) - rate

    # every multiplier's curve at once (the law's closed form broadcasts over rates)
    values = window_rates(r, law_curve(r, start, MULTIPLIERS[:, None] * c, a, b)) - rate
    above = np.nonzero(values >= 0)[0]
    if above.size == 0:
        return float(MULTIPLIERS[np.argmax(values)])
    if above[0] == 0:
        return float(MULTIPLIERS[0])
    return brentq(excess, MULTIPLIERS[above[0] - 1], MULTIPLIERS[above[0]])


def step_noise(n: int, sd: float, lag1: float, rng: np.random.Generator) -> np.ndarray:
    shares = np.empty(n)
    shares[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        shares[t] = lag1 * shares[t - 1] + np.sqrt(1 - lag1**2) * rng.normal(0.0, sd)
    return shares


def noisy_law_curve(r: np.ndarray, start: float, c: float, a: float, b: float, s0: float, slowdown: float,
                    shares: np.ndarray) -> np.ndarray:
    """:func:`law_curve` step by step, each step's rate off by its share (training noise that persists
    a few steps): the law, and the slowdown at S0, act on the score the noisy curve has reached."""
    y = [start]
    for t, share in enumerate(shares):
        y.append(law_curve(r[t + 1 : t + 2] - r[t], y[-1], c * max(1 + share, 0.05), a, b, s0, slowdown)[0])
    return np.array(y)


@dataclass(frozen=True)
class ReboundReference:
    """What the generator takes from the committed toy.rebound reference."""

    laws: list[tuple[float, float, float]]  # (c, a, b - S0) of each (seed, task)
    s0_mean: float
    s0_sd: float
    start_above_s0: dict[int, tuple[float, float]]  # F -> (mean, sd) of the start above S0
    rate_f: float  # mean window rate of the F > 0 arms (nats/example)
    rate_control: float
    trend_seed_sd: float  # sd of the window rate's trend in log10 F: between seeds ...
    trend_task_sd: float  # ... between the tasks of a seed
    arm_sd: float  # an arm's rate around its (seed, task) trend
    step_sd: float  # share by which a step's decrement is off its law
    step_lag1: float


def fit_law(curves: Any) -> tuple[tuple[float, float, float], list[np.ndarray]]:
    """(c, a, b - S0) of one run's rate law, fitted by least squares to all its arms (each arm with a
    multiplier of its own, the F = 0 control's fixed at 1), and each arm's steps' residual shares
    around its fitted curve while that still falls by at least 0.1 nats a step (nearer the floor a
    share of a vanishing decrement says nothing)."""
    r = np.asarray(curves.reverse_amounts, float)
    y, s0 = curves.log_odds, curves.s0_log_odds

    def fitted(p: np.ndarray) -> list[np.ndarray]:
        multipliers = np.concatenate([[1.0], p[3:]])
        return [law_curve(r, row[0], m * p[0], p[1], s0 + p[2]) for row, m in zip(y, multipliers, strict=True)]

    start = np.concatenate([[0.05, 0.5, 0.0], np.ones(len(y) - 1)])
    lower = np.concatenate([[1e-4, 0.05, -6.0], np.full(len(y) - 1, 0.1)])
    upper = np.concatenate([[1.0, 5.0, 6.0], np.full(len(y) - 1, 10.0)])
    fit = least_squares(lambda p: np.concatenate(fitted(p)) - y.ravel(), start, bounds=(lower, upper))
    shares = []
    for row, curve in zip(y, fitted(fit.x), strict=True):
        step = np.diff(curve)
        fast = step < -0.1
        shares.append(np.diff(row)[fast] / step[fast] - 1)
    return tuple(float(v) for v in fit.x[:3]), shares


@cache
def rebound_reference() -> ReboundReference:
    """The generator's laws and noise, measured on figures/data/toy.rebound (its dense reverse grid)."""
    rows = read_metrics_csv(metrics_path(figures_dir() / "data" / "toy.rebound"))
    shape = headline_shape()
    curves = curves_from_rows(rows)
    metrics = metrics_by_run(rows)
    laws, shares, starts, s0s = [], [], {}, []
    for c in curves.values():
        law, residual = fit_law(c)
        laws.append(law)
        shares += residual
        s0s.append(c.s0_log_odds)
        for i, f in enumerate(c.forward_amounts):
            starts.setdefault(f, []).append(c.log_odds[i, 0] - c.s0_log_odds)
    flat = np.concatenate(shares)
    lag1 = np.mean([np.corrcoef(s[:-1], s[1:])[0, 1] for s in shares if s.size > 3])
    forward = shape.forward[1:]
    trends = {g: np.polyfit(np.log10(forward), [m[f]["initial_rate_log_odds"] for f in forward], 1)
              for g, m in metrics.items()}
    by_seed: dict[Any, list[float]] = {}
    for (seed, _), p in trends.items():
        by_seed.setdefault(seed, []).append(p[0])
    task_sd = float(np.sqrt(np.mean([np.var(v, ddof=1) for v in by_seed.values()])))
    seed_var = np.var([np.mean(v) for v in by_seed.values()], ddof=1) - task_sd**2 / len(shape.tasks)
    arm = [m[f]["initial_rate_log_odds"] - np.polyval(trends[g], np.log10(f)) for g, m in metrics.items()
           for f in forward]
    return ReboundReference(
        laws=laws, s0_mean=float(np.mean(s0s)), s0_sd=float(np.std(s0s, ddof=1)),
        start_above_s0={f: (float(np.mean(v)), float(np.std(v, ddof=1))) for f, v in starts.items()},
        rate_f=float(np.mean([m[f]["initial_rate_log_odds"] for m in metrics.values() for f in forward])),
        rate_control=float(np.mean([m[0]["initial_rate_log_odds"] for m in metrics.values()])),
        trend_seed_sd=float(np.sqrt(max(seed_var, 0.0))), trend_task_sd=task_sd,
        arm_sd=float(np.std(arm, ddof=2 * len(trends))),  # two parameters per (seed, task) line
        step_sd=float(np.std(flat)), step_lag1=float(lag1))


def curve_table(seed: int, task: str, s0: float, forward: Sequence[int], reverse: np.ndarray,
                curves: Sequence[np.ndarray], **condition: Any) -> list[dict[str, Any]]:
    """One run's synthetic curves as the rows a run writes."""
    rows = [metric_row("s0_log_odds", s0, "nats", seed=seed, task=task, **condition),
            metric_row("s0_prob", float(expit(s0)), "prob", seed=seed, task=task, **condition)]
    for f, y in zip(forward, curves, strict=True):
        for x, v in zip(reverse, y, strict=True):
            at = dict(condition, task=task, F=f, steps_F=0, steps_R=int(x) // STEP)
            rows += [metric_row("score_log_odds", float(v), "nats", seed=seed, x=int(x), **at),
                     metric_row("score_prob", float(expit(v)), "prob", seed=seed, x=int(x), **at)]
    return rows


# The step residuals mix noise with the arms' misfit to one rate law, so their amplitude is set for
# each reading so that the synthetic runs spread like the reference's runs do, reading by reading
# (per-seed sd of the initial-rate trend 0.0042 and of the slowdown 0.0032 on the reference of
# commit 291e5b1, 0.0042 and 0.0028 synthetic; tests/toy/test_rebound_calibration.py re-measures
# both against figures/data).
STEP_NOISE_SCALE = {"initial_rate": 0.5, "slowdown": 2.3}


def rebound_rows(trend: float, slowdown: float, seed: int, noise_scale: float = 1.0,
                 shape: Shape | None = None) -> list[dict[str, Any]]:
    """A run of the headline's shape (or ``shape``, its F among the headline's): the F > 0 window
    rate rises by ``trend`` (a share of its mean) per decade of F; every F > 0 arm's rate is cut by
    the share ``slowdown`` once it passes S0; the step residuals' amplitude is scaled by
    ``noise_scale``."""
    ref, rng = rebound_reference(), np.random.default_rng((29, seed))
    shape = shape or headline_shape()
    reverse = shape.reverse
    log_f = np.log10(shape.forward[1:]) - np.log10(shape.forward[1:]).mean()
    rows: list[dict[str, Any]] = []
    for run in range(shape.seeds):
        seed_trend = rng.normal(0, ref.trend_seed_sd)
        for task in shape.tasks:
            c, a, b_rel = ref.laws[rng.integers(len(ref.laws))]
            s0 = rng.normal(ref.s0_mean, ref.s0_sd)
            slope = trend * ref.rate_f + seed_trend + rng.normal(0, ref.trend_task_sd)
            rates = [ref.rate_control, *(ref.rate_f + slope * log_f + rng.normal(0, ref.arm_sd, log_f.size))]
            curves = []
            for f, rate in zip(shape.forward, rates, strict=True):
                mean, sd = ref.start_above_s0[f]
                start = s0 + (rng.normal(mean, sd) if f else 0.0)
                m = multiplier_for(reverse, start, c, a, s0 + b_rel, rate)
                shares = step_noise(reverse.size - 1, noise_scale * ref.step_sd, ref.step_lag1, rng)
                curves.append(noisy_law_curve(reverse, start, m * c, a, s0 + b_rel, s0, slowdown if f else 0.0, shares))
            rows += curve_table(run, task, s0, shape.forward, reverse, curves)
    return rows


def pick(predictions: Sequence[Prediction], pid: str) -> Prediction:
    return next(p for p in predictions if p.id == pid)


def initial_rate_replicate(size: float, seed: int) -> Prediction:
    rows = rebound_rows(size, 0.0, seed, STEP_NOISE_SCALE["initial_rate"])
    return pick(rebound_predictions(rows, "toy.rebound"), "rebound.initial_rate_increases_with_F")


def slowdown_replicate(size: float, seed: int) -> Prediction:
    rows = rebound_rows(0.0, size, seed, STEP_NOISE_SCALE["slowdown"])
    return pick(rebound_predictions(rows, "toy.rebound"), "rebound.slows_near_s0")


NOISE_REBOUND = ("toy.rebound headline reference: rate laws fitted per seed and task, seed/task/arm spread of the "
                 "window rate, start and S0 spread, step residuals")
CALIBRATIONS = (
    Calibration(
        reading="rebound.initial_rate_increases_with_F", experiment="toy.rebound", replicate=initial_rate_replicate,
        null=0.0, stated=0.25, scan=(0.05, 0.1, 0.15, 0.2, 0.3),
        unit="rise of the F > 0 initial rate per decade of F, as a share of its mean",
        paper_size="sign only: Fig. 4 shows faster decay after more alignment, no rate in these units",
        noise=NOISE_REBOUND),
    Calibration(
        reading="rebound.slows_near_s0", experiment="toy.rebound", replicate=slowdown_replicate,
        null=0.0, stated=0.5, scan=(0.05, 0.1, 0.2, 0.3, 0.4),
        unit="share of the decay rate lost on passing S0 (a smooth sigmoid rate law otherwise)",
        paper_size="'slows sharply': a large share, of order one half or more; no number given",
        noise=NOISE_REBOUND),
)
