"""The readings of a rebound run, written once for the toy models and the real checkpoints.

Per arm and F (:func:`rebound_metrics`), in probability and in log-odds: the initial decay rate
(over reverse optimizer steps 1 to 9), the slowdown at S0 (a regression discontinuity of the decay
rate), R_back (the reverse amount back to S0) and the late slope; and KL(theta0||model) readings
that can be reached (the minimum, and the amount recovering half the post-alignment KL).

Across F, per independent run (:func:`rebound_predictions`, callable on any ``metrics.csv`` in the
documented layout): the trend against log10 F, the mean over F > 0, or a rank trend for censored
amounts. ``PREDICTIONS`` names each reading; the pre-registration decides which are primary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from harness.metrics import metric_row
from harness.preregistration import reading
from harness.verdicts import Prediction, log_slope, t_estimate
from toymodels import measures

if TYPE_CHECKING:
    from toymodels.protocols.rebound import ReboundSpec

SCORES = ("prob", "log_odds")
# Pre-registered constants of the readings (see harness/preregistration.toml).
WINDOW_STEPS = (1, 9)  # initial rate: reverse optimizer steps 1..9; step 0 -> 1 is a fresh optimizer's
RD_BANDWIDTH = 0.5  # slowdown at S0: half the arm's start-to-S0 distance on each side of S0
RD_MIN_POINTS = 3  # intervals needed on each side of S0
# rebound strength of a cell against its own F = 0 control (see strength_rows)
STRENGTHS = ("excess_initial_rate", "excess_late_slope", "slowdown_at_s0", "r_back_trend")


@dataclass(frozen=True)
class MeanCurves:
    """Scores averaged over prompts at every (F, R): what :func:`rebound_metrics` reads."""

    spec: ReboundSpec
    s0_prob: float
    s0_log_odds: float
    prob: np.ndarray  # (n_F, n_R) mean P(aligned)
    log_odds: np.ndarray  # (n_F, n_R) mean log-odds (nats)
    kl_theta0_model: np.ndarray  # (n_F, n_R), NaN where not measured
    forward_steps: list[int]

    def score(self, kind: str) -> np.ndarray:
        return self.prob if kind == "prob" else self.log_odds

    def s0(self, kind: str) -> float:
        return self.s0_prob if kind == "prob" else self.s0_log_odds


def initial_rate_window(spec: ReboundSpec) -> tuple[float, float]:
    """The reverse amounts (examples) of the initial-rate window: optimizer steps 1 to 9."""
    step = spec.optimizer.examples_per_step
    return WINDOW_STEPS[0] * step, WINDOW_STEPS[1] * step


def rebound_metrics(curves: MeanCurves) -> dict[int, dict[str, float]]:
    """Per F: the curve readings in both score scales, and the KL readings.

    Rates are score lost per reverse example; amounts are in examples (NaN when not reached within
    the largest R: censored).
    """
    r = np.asarray(curves.spec.reverse_amounts, float)
    window = initial_rate_window(curves.spec)
    out: dict[int, dict[str, float]] = {}
    for i, f in enumerate(curves.spec.forward_amounts):
        m: dict[str, float] = {"steps_forward": curves.forward_steps[i]}
        for kind in SCORES:
            y, s0 = curves.score(kind)[i], curves.s0(kind)
            m[f"score_start_{kind}"] = float(y[0])
            m[f"initial_rate_{kind}"] = measures.initial_decay_rate(r, y, window)
            m[f"r_back_{kind}"] = measures.r_back(r, y, s0)
            m[f"slowdown_at_s0_{kind}"] = (measures.rate_discontinuity(r, y, s0, RD_BANDWIDTH * (y[0] - s0),
                                                                       RD_MIN_POINTS) if f > 0 else float("nan"))
            m[f"late_slope_{kind}"] = measures.late_slope(r, y)
        m.update(measures.kl_readings(r, curves.kl_theta0_model[i], curves.spec.kl_recovery))
        out[int(f)] = m
    return out


def trend_in_f(metrics: Mapping[int, Mapping[str, float]], key: str) -> float:
    """Least-squares slope of ``key`` against log10(F) over F > 0 (NaN with < 2 finite points)."""
    return log_slope({f: m[key] for f, m in metrics.items()})


def reading_of(stat: str, key: str, metrics: Mapping[int, Mapping[str, float]],
               control: Mapping[int, Mapping[str, float]] | None = None) -> float:
    """One number from per-F metrics: ``trend`` (slope against log10 F), ``mean`` (over F > 0),
    ``censored_trend`` (Kendall's tau of F and an amount, a censored amount ranking above every
    measured one: right-censoring at the largest R leaves the ranks exact), or ``vs_control`` (mean
    over F > 0 of the arm minus a control arm at the same F)."""
    if stat == "trend":
        return trend_in_f(metrics, key)
    if stat == "mean":
        vals = [m[key] for f, m in metrics.items() if f > 0 and np.isfinite(m[key])]
        return float(np.mean(vals)) if vals else float("nan")
    if stat == "censored_trend":
        fs = [f for f in metrics if f > 0]
        amounts = np.array([metrics[f][key] for f in fs], float)
        if np.all(np.isnan(amounts)) or len(fs) < 3:
            return float("nan")
        ranked = np.where(np.isnan(amounts), np.inf, amounts)
        return float(stats.kendalltau(fs, ranked).statistic)
    diffs = [metrics[f][key] - control[f][key] for f in metrics if f > 0]
    return float(np.nanmean(diffs)) if np.any(np.isfinite(diffs)) else float("nan")


def metric_unit(key: str) -> str:
    """Unit of a ``rebound_metrics`` key, from its name."""
    if key.startswith("steps"):
        return "steps"
    if key.startswith("r_back") or key.endswith("_amount"):
        return "examples"
    if key.endswith("_nats"):
        return "nats/token"
    scale = "nats" if key.endswith("log_odds") else "prob"
    per_example = any(word in key for word in ("rate", "slope", "slowdown"))
    return f"{scale}/example" if per_example else scale


PREDICTIONS = (
    # id, metric key, statistic, description
    ("rebound.initial_rate_increases_with_F", "initial_rate_log_odds", "trend",
     "slope of the initial log-odds decay rate (log-odds per example, reverse steps 1-9) vs log10 F"),
    ("rebound.initial_rate_increases_with_F.prob", "initial_rate_prob", "trend",
     "slope of the initial probability decay rate (per example, reverse steps 1-9) vs log10 F"),
    ("rebound.slows_near_s0", "slowdown_at_s0_log_odds", "mean",
     "drop of the log-odds decay rate at S0 (local lines each side, per example), mean over F > 0"),
    ("rebound.slows_near_s0.prob", "slowdown_at_s0_prob", "mean",
     "drop of the probability decay rate at S0 (local lines each side, per example), mean over F > 0"),
    ("rebound.r_back_decreases_with_F", "r_back_log_odds", "trend",
     "slope of R_back (examples back to S0, log-odds score) vs log10 F"),
    ("rebound.r_back_decreases_with_F.prob", "r_back_prob", "trend",
     "slope of R_back (examples back to S0, probability score) vs log10 F"),
    ("rebound.kl_recovery_decreases_with_F", "kl_recovery_amount", "censored_trend",
     "Kendall tau of F and the reverse amount recovering half the post-alignment KL(theta0||model) "
     "(censored at the largest R)"),
)


def metrics_by_run(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, str], dict[int, dict[str, float]]]:
    """Per-F metrics of every (run seed, task) in a metrics table."""
    out: dict[tuple[Any, str], dict[int, dict[str, float]]] = {}
    for r in rows:
        c = r["condition"]
        if "F" not in c or "steps_F" in c or "prompt" in c:
            continue
        out.setdefault((r["seed"], c["task"]), {}).setdefault(int(c["F"]), {})[r["measure"]] = float(r["value"])
    return out


def rebound_predictions(rows: Sequence[Mapping[str, Any]], experiment: str,
                        unit: str = "seeds") -> list[Prediction]:
    """Every rebound reading of a metrics table, one value per independent run (the mean over the
    run's tasks, which share its pre-trained model) and a t-interval over runs. Control arms (tasks
    named ``<task>+...``) are left out."""
    by_run = {k: v for k, v in metrics_by_run(rows).items() if "+" not in k[1]}
    predictions = []
    for pid, key, stat, desc in PREDICTIONS:
        per_run: dict[Any, list[float]] = {}
        censored = 0
        for (run, _task), metrics in by_run.items():
            per_run.setdefault(run, []).append(reading_of(stat, key, metrics))
            censored += sum(1 for f, m in metrics.items() if f > 0 and not np.isfinite(m[key]))
        values = [float(np.nanmean(v)) if np.any(np.isfinite(v)) else float("nan") for v in per_run.values()]
        predictions.append(reading(pid, t_estimate(values, unit), desc, experiment=experiment,
                                   n_censored_arms=censored))
    return predictions


def strength_rows(metrics: Mapping[int, Mapping[str, float]]) -> list[dict[str, Any]]:
    """Rebound strength at the largest F against the F = 0 control, in both score scales."""
    f_max = max(metrics)
    top, control = metrics[f_max], metrics[0]
    rows = []
    for kind in SCORES:
        unit = "nats/example" if kind == "log_odds" else "prob/example"
        rows += [
            metric_row(f"excess_initial_rate_{kind}",
                       top[f"initial_rate_{kind}"] - control[f"initial_rate_{kind}"], unit),
            metric_row(f"excess_late_slope_{kind}",
                       top[f"late_slope_{kind}"] - control[f"late_slope_{kind}"], unit),
            metric_row(f"slowdown_at_s0_{kind}", top[f"slowdown_at_s0_{kind}"], unit),
            metric_row(f"r_back_trend_{kind}", trend_in_f(metrics, f"r_back_{kind}"), "examples/decade of F"),
        ]
    return rows
