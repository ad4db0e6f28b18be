"""The readings of a rebound run: what the mean score curves say, per F and across F.

Per F (:func:`rebound_metrics`): the initial decay rate, R_back (the reverse amount back to S0),
the decay rate while passing S0 minus the F = 0 control's, the late slope, each in probability
and in log-odds, the post-alignment KL and the Table 3 amount. Across F (:func:`reading`): a
trend against log10 F, a mean over F > 0, or a difference from a control arm. ``PREDICTIONS``
says which reading of which metric each paper prediction is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.metrics import metric_row
from harness.verdicts import log_slope
from toymodels import measures

if TYPE_CHECKING:
    from toymodels.protocols.rebound import ReboundSpec

SCORES = ("prob", "log_odds")
# rebound strength of a cell against its own F = 0 control (see strength_rows)
STRENGTHS = ("excess_initial_rate", "excess_late_slope", "knee_vs_control", "r_back_trend")


@dataclass(frozen=True)
class MeanCurves:
    """Scores averaged over prompts at every (F, R): what :func:`rebound_metrics` reads."""

    spec: ReboundSpec
    s0_prob: float
    s0_log_odds: float
    prob: np.ndarray  # (n_F, n_R) mean P(aligned)
    log_odds: np.ndarray  # (n_F, n_R) mean log-odds (nats)
    kl_theta0_model: np.ndarray  # (n_F, n_R)
    forward_steps: list[int]

    def score(self, kind: str) -> np.ndarray:
        return self.prob if kind == "prob" else self.log_odds

    def s0(self, kind: str) -> float:
        return self.s0_prob if kind == "prob" else self.s0_log_odds


def rebound_metrics(curves: MeanCurves) -> dict[int, dict[str, float]]:
    """Per F: initial decay rate, R_back, decay rate at S0 minus the F = 0 control's, late slope
    (each in probability and log-odds), post-alignment KL and the Table 3 amount.

    Rates are score lost per reverse example; R_back and the Table 3 amount are in examples
    (NaN when not reached within the largest R).
    """
    r = np.asarray(curves.spec.reverse_amounts, float)
    out: dict[int, dict[str, float]] = {}
    for i, f in enumerate(curves.spec.forward_amounts):
        m: dict[str, float] = {"steps_forward": curves.forward_steps[i]}
        for kind in SCORES:
            y, s0 = curves.score(kind)[i], curves.s0(kind)
            control_at_s0 = measures.decay_rate_at(r, curves.score(kind)[0], s0)
            m[f"score_start_{kind}"] = float(y[0])
            m[f"initial_rate_{kind}"] = measures.initial_decay_rate(r, y)
            m[f"r_back_{kind}"] = measures.r_back(r, y, s0)
            m[f"rate_at_s0_{kind}"] = measures.decay_rate_at(r, y, s0)
            m[f"knee_vs_control_{kind}"] = m[f"rate_at_s0_{kind}"] - control_at_s0
            m[f"late_slope_{kind}"] = measures.late_slope(r, y)
        m["kl_post_alignment_nats"] = float(curves.kl_theta0_model[i, 0])
        m["table3_reverse_to_eps"] = measures.table3_reverse_to_eps(r, curves.kl_theta0_model[i],
                                                                    curves.spec.kl_eps)
        out[int(f)] = m
    return out


def trend_in_f(metrics: Mapping[int, Mapping[str, float]], key: str) -> float:
    """Least-squares slope of ``key`` against log10(F) over F > 0 (NaN with < 2 finite points)."""
    return log_slope({f: m[key] for f, m in metrics.items()})


def reading(stat: str, key: str, metrics: Mapping[int, Mapping[str, float]],
            control: Mapping[int, Mapping[str, float]] | None = None) -> float:
    """One number from per-F metrics: ``trend`` (slope against log10 F), ``mean`` (over F > 0), or
    ``vs_control`` (mean over F > 0 of the arm minus a control arm at the same F)."""
    if stat == "trend":
        return trend_in_f(metrics, key)
    if stat == "mean":
        vals = [m[key] for f, m in metrics.items() if f > 0 and np.isfinite(m[key])]
        return float(np.mean(vals)) if vals else float("nan")
    diffs = [metrics[f][key] - control[f][key] for f in metrics if f > 0]
    return float(np.nanmean(diffs)) if np.any(np.isfinite(diffs)) else float("nan")


def metric_unit(key: str) -> str:
    """Unit of a ``rebound_metrics`` key, from its name."""
    if key.startswith("steps"):
        return "steps"
    if key.startswith(("r_back", "table3")):
        return "examples"
    if key.endswith("_nats"):
        return "nats/token"
    scale = "nats" if key.endswith("log_odds") else "prob"
    per_example = any(word in key for word in ("rate", "slope", "knee"))
    return f"{scale}/example" if per_example else scale


PREDICTIONS = (
    # id, metric key, statistic, predicted sign, description
    ("rebound.r_back_decreases_with_F", "r_back_log_odds", "trend", -1,
     "slope of R_back (examples, log-odds score) vs log10 F"),
    ("rebound.r_back_decreases_with_F.prob", "r_back_prob", "trend", -1,
     "slope of R_back (examples, probability score) vs log10 F"),
    ("rebound.initial_rate_increases_with_F", "initial_rate_log_odds", "trend", 1,
     "slope of the initial log-odds decay rate (nats/example) vs log10 F"),
    ("rebound.initial_rate_increases_with_F.prob", "initial_rate_prob", "trend", 1,
     "slope of the initial probability decay rate (per example) vs log10 F"),
    ("rebound.knee_at_s0_vs_control", "knee_vs_control_log_odds", "mean", 1,
     "log-odds decay rate while passing S0 minus the F=0 control's at S0, mean over F > 0"),
    ("rebound.knee_at_s0_vs_control.prob", "knee_vs_control_prob", "mean", 1,
     "probability decay rate while passing S0 minus the F=0 control's at S0, mean over F > 0"),
)


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
            metric_row(f"knee_vs_control_{kind}", top[f"knee_vs_control_{kind}"], unit),
            metric_row(f"r_back_trend_{kind}", trend_in_f(metrics, f"r_back_{kind}"), "examples/decade of F"),
        ]
    return rows
