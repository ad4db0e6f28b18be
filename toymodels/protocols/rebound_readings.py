"""The readings of a rebound run, written once for the toy models and the real checkpoints.

Everything is read from the measured curves alone, the mean scores at every (F, R) and S0, so any
``metrics.csv`` in the documented layout can be judged (:func:`curves_from_rows`). Per arm and F
(:func:`rebound_metrics`), in probability and in log-odds: the initial decay rate (reverse
optimizer steps 1 to 9), the slowdown at S0 (the jump of the decay rate at S0), the rate at a score
every aligned arm passes, R_back (the reverse amount back to S0) and the late slope; and
KL(theta0||model) readings that can be reached (the minimum, and the amount recovering half the
post-alignment KL).

Across F, per independent run (:func:`rebound_predictions`): the trend against log10 F, the mean
over F > 0, or a rank trend for censored amounts. ``PREDICTIONS`` names each reading; the
pre-registration decides which are primary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from harness.errors import ConfigError
from harness.metrics import metric_row
from harness.preregistration import reading
from harness.verdicts import Prediction, log_slope, t_estimate
from toymodels import measures

SCORES = ("prob", "log_odds")
# Pre-registered constants of the readings (see harness/preregistration.toml).
WINDOW_STEPS = (1, 9)  # initial rate: reverse optimizer steps 1..9; step 0 -> 1 is a fresh optimizer's
RD_BANDWIDTH = 0.5  # slowdown at S0: half the arm's start-to-S0 distance on each side of S0
RD_MIN_POINTS = 3  # intervals needed on each side of S0
KL_RECOVERY = 0.5  # the KL reading: the amount that recovers this share of the post-alignment KL
# rebound strength of a cell against its own F = 0 control (see strength_rows)
STRENGTHS = ("excess_initial_rate", "excess_late_slope", "slowdown_at_s0", "r_back_trend")
CURVE_MEASURES = {"score_prob": "prob", "score_log_odds": "log_odds", "kl_theta0_model": "kl"}
NOT_GROUPING = {"F", "steps_F", "steps_R", "prompt"}  # condition fields inside one run's curves


@dataclass(frozen=True)
class MeanCurves:
    """Scores averaged over prompts at every (F, R) of one run: what :func:`rebound_metrics` reads."""

    forward_amounts: tuple[int, ...]
    reverse_amounts: tuple[int, ...]
    reverse_steps: tuple[int, ...]  # optimizer steps behind each reverse amount
    s0_prob: float
    s0_log_odds: float
    prob: np.ndarray  # (n_F, n_R) mean P(aligned)
    log_odds: np.ndarray  # (n_F, n_R) mean log-odds (nats)
    kl_theta0_model: np.ndarray  # (n_F, n_R), NaN where not measured

    def score(self, kind: str) -> np.ndarray:
        return self.prob if kind == "prob" else self.log_odds

    def s0(self, kind: str) -> float:
        return self.s0_prob if kind == "prob" else self.s0_log_odds

    def initial_rate_window(self) -> tuple[float, float]:
        """The reverse amounts (examples) of the initial-rate window: optimizer steps 1 to 9."""
        inside = [a for a, s in zip(self.reverse_amounts, self.reverse_steps, strict=True)
                  if WINDOW_STEPS[0] <= s <= WINDOW_STEPS[1]]
        return (min(inside), max(inside)) if inside else (float("nan"), float("nan"))


def matched_level(curves: MeanCurves, kind: str) -> float:
    """A score every aligned arm passes on its way down: halfway from S0 to the lowest start."""
    starts = curves.score(kind)[[i for i, f in enumerate(curves.forward_amounts) if f > 0], 0]
    return float(curves.s0(kind) + 0.5 * (starts.min() - curves.s0(kind)))


def rate_at_level(amounts: np.ndarray, scores: np.ndarray, level: float, halfwidth: float) -> float:
    """The decay rate (per example) as the curve passes ``level``: a line through the per-interval
    rates against their mid scores within ``halfwidth``, read at ``level`` (NaN with < 3 of them)."""
    rate, mid = -np.diff(scores) / np.diff(amounts), (scores[:-1] + scores[1:]) / 2
    near = np.abs(mid - level) <= halfwidth
    if near.sum() < 3 or not np.isfinite(level):
        return float("nan")
    return float(np.polyval(np.polyfit(mid[near] - level, rate[near], 1), 0.0))


def rebound_metrics(curves: MeanCurves) -> dict[int, dict[str, float]]:
    """Per F: the curve readings in both score scales, and the KL readings.

    Rates are score lost per reverse example; amounts are in examples (NaN when not reached within
    the largest R: censored).
    """
    r = np.asarray(curves.reverse_amounts, float)
    window = curves.initial_rate_window()
    levels = {kind: matched_level(curves, kind) for kind in SCORES}
    out: dict[int, dict[str, float]] = {}
    for i, f in enumerate(curves.forward_amounts):
        m: dict[str, float] = {}
        for kind in SCORES:
            y, s0 = curves.score(kind)[i], curves.s0(kind)
            m[f"score_start_{kind}"] = float(y[0])
            m[f"initial_rate_{kind}"] = measures.initial_decay_rate(r, y, window)
            m[f"r_back_{kind}"] = measures.r_back(r, y, s0)
            m[f"slowdown_at_s0_{kind}"] = (measures.rate_discontinuity(r, y, s0, RD_BANDWIDTH * (y[0] - s0),
                                                                       RD_MIN_POINTS) if f > 0 else float("nan"))
            m[f"rate_at_matched_score_{kind}"] = (rate_at_level(r, y, levels[kind], 0.5 * (levels[kind] - s0))
                                                  if f > 0 else float("nan"))
            m[f"late_slope_{kind}"] = measures.late_slope(r, y)
        m.update(measures.kl_readings(r, curves.kl_theta0_model[i], KL_RECOVERY))
        out[int(f)] = m
    return out


def curves_from_rows(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, tuple], MeanCurves]:
    """The mean curves of every run in a metrics table, keyed by (seed, the run's other condition
    fields: task, size, ...), from its ``score_*``, ``kl_theta0_model`` and ``s0_*`` rows."""
    points: dict[tuple[Any, tuple], dict[str, dict[tuple[int, float], float]]] = {}
    steps: dict[tuple[Any, tuple], dict[float, int]] = {}
    for r in rows:
        c = r["condition"]
        group = (r["seed"], tuple(sorted((k, v) for k, v in c.items() if k not in NOT_GROUPING)))
        if r["measure"] in ("s0_prob", "s0_log_odds"):
            points.setdefault(group, {}).setdefault(r["measure"], {})[(0, 0.0)] = float(r["value"])
        elif r["measure"] in CURVE_MEASURES and "prompt" not in c:
            if "steps_R" not in c:
                raise ConfigError(f"{r['measure']} rows need the steps_R field (the optimizer steps behind each R)")
            key = (int(c["F"]), float(r["x"]))
            points.setdefault(group, {}).setdefault(CURVE_MEASURES[r["measure"]], {})[key] = float(r["value"])
            steps.setdefault(group, {})[float(r["x"])] = int(c["steps_R"])
    out = {}
    for group, by in points.items():
        if "log_odds" not in by:
            continue
        fs = sorted({f for f, _ in by["log_odds"]})
        rs = sorted({x for _, x in by["log_odds"]})

        def grid(name: str, by=by, fs=fs, rs=rs) -> np.ndarray:
            return np.array([[by.get(name, {}).get((f, x), np.nan) for x in rs] for f in fs])

        out[group] = MeanCurves(tuple(fs), tuple(int(x) for x in rs), tuple(steps[group][x] for x in rs),
                                by["s0_prob"][(0, 0.0)], by["s0_log_odds"][(0, 0.0)],
                                grid("prob"), grid("log_odds"), grid("kl"))
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
    ("rebound.rate_at_matched_score_increases_with_F", "rate_at_matched_score_log_odds", "trend",
     "slope vs log10 F of the log-odds decay rate as each arm passes the same score (halfway from S0 to the "
     "lowest start): faster decay beyond a rate set by the score alone"),
    ("rebound.slows_near_s0", "slowdown_at_s0_log_odds", "mean",
     "jump down of the log-odds decay rate at S0 (one cubic in the score both sides, per example), mean over F > 0"),
    ("rebound.slows_near_s0.prob", "slowdown_at_s0_prob", "mean",
     "jump down of the probability decay rate at S0 (one cubic in the score both sides, per example), "
     "mean over F > 0"),
    ("rebound.r_back_decreases_with_F", "r_back_log_odds", "trend",
     "slope of R_back (examples back to S0, log-odds score) vs log10 F"),
    ("rebound.r_back_decreases_with_F.prob", "r_back_prob", "trend",
     "slope of R_back (examples back to S0, probability score) vs log10 F"),
    ("rebound.kl_recovery_decreases_with_F", "kl_recovery_amount", "censored_trend",
     "Kendall tau of F and the reverse amount recovering half the post-alignment KL(theta0||model) "
     "(censored at the largest R)"),
)


PRIMARY_IDS = ("rebound.initial_rate_increases_with_F", "rebound.slows_near_s0")


def metrics_by_run(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, tuple], dict[int, dict[str, float]]]:
    """Per-F metrics of every run (seed, other condition fields) in a metrics table."""
    return {group: rebound_metrics(curves) for group, curves in curves_from_rows(rows).items()}


def _is_control(group: tuple) -> bool:
    """A bridge's control arm is the pseudo-task ``<task>+...``."""
    return any(k == "task" and "+" in str(v) for k, v in group[1])


RunMetrics = Mapping[tuple[Any, tuple], Mapping[int, Mapping[str, float]]]


def per_run_values(rows: Sequence[Mapping[str, Any]] | RunMetrics, key: str, stat: str
                   ) -> tuple[dict[Any, float], int]:
    """One value of a reading per independent run (the mean over the run's tasks, which share its
    model), control arms left out, and the number of censored (run, task, F) arms. ``rows`` may be
    a metrics table or its :func:`metrics_by_run`, computed once for many readings."""
    metrics = rows if isinstance(rows, Mapping) else metrics_by_run(rows)
    by_run = {k: v for k, v in metrics.items() if not _is_control(k)}
    per_run: dict[Any, list[float]] = {}
    censored = 0
    for (run, _group), metrics in by_run.items():
        per_run.setdefault(run, []).append(reading_of(stat, key, metrics))
        censored += sum(1 for f, m in metrics.items() if f > 0 and not np.isfinite(m[key]))
    return run_means(per_run), censored


def finite_mean(values: Sequence[float]) -> float:
    """The mean of ``values`` with NaN left out; NaN when none is finite."""
    return float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")


def run_means(per_run: Mapping[Any, Sequence[float]]) -> dict[Any, float]:
    """The mean of each run's values over its tasks (NaN values left out; NaN when all are)."""
    return {run: finite_mean(v) for run, v in per_run.items()}


def rebound_predictions(rows: Sequence[Mapping[str, Any]], experiment: str,
                        unit: str = "seeds") -> list[Prediction]:
    """Every rebound reading of a metrics table, one value per independent run (the mean over the
    run's tasks, which share its pre-trained model) and a t-interval over runs. Control arms are
    left out."""
    predictions, metrics = [], metrics_by_run(rows)
    for pid, key, stat, desc in PREDICTIONS:
        values, censored = per_run_values(metrics, key, stat)
        predictions.append(reading(pid, t_estimate(list(values.values()), unit), desc, experiment=experiment,
                                   n_censored_arms=censored))
    return predictions


def control_predictions(by_init: Mapping[str, Sequence[Mapping[str, Any]]], experiment: str,
                        unit: str = "seeds", ids: Sequence[str] = PRIMARY_IDS) -> list[Prediction]:
    """The readings ``ids`` from each no-pre-training start (``by_init``: init -> its rows, with the
    ``pretrained`` rows among them), exploratory: the control's own reading (``<id>.control_<init>``)
    and the pre-trained reading minus the control's, paired by run (``<id>.beyond_control_<init>``);
    a run of a control has the pre-trained run's label prefixed with ``<init>-``."""
    predictions, metrics = [], {init: metrics_by_run(rows) for init, rows in by_init.items()}
    for pid, key, stat, desc in (p for p in PREDICTIONS if p[0] in ids):
        base, _ = per_run_values(metrics["pretrained"], key, stat)
        for init in by_init:
            if init == "pretrained":
                continue
            control, censored = per_run_values(metrics[init], key, stat)
            paired = [base[run] - control[f"{init}-{run}"] for run in base if f"{init}-{run}" in control]
            predictions += [
                reading(f"{pid}.control_{init}", t_estimate(list(control.values()), unit),
                        f"{desc}; from the {init} start (no pre-training)", experiment=experiment,
                        n_censored_arms=censored),
                reading(f"{pid}.beyond_control_{init}", t_estimate(paired, unit),
                        f"{desc}; pre-trained minus the {init} start, paired by run", experiment=experiment)]
    return predictions


# Readings against a bridge's format-matched control arm (<task>+neutral-forward), per run, exploratory
CONTROL_ARM_READINGS = (
    # id, metric key, statistic, description
    ("rebound.initial_rate_vs_neutral_control", "initial_rate_log_odds", "vs_control",
     "initial log-odds decay rate (steps 1-9), aligned minus the format-matched neutral forward arm at the same F, "
     "mean over F > 0"),
    ("rebound.initial_rate_increases_with_F.neutral_arm", "initial_rate_log_odds", "control_trend",
     "slope vs log10 F of the format-matched neutral forward arm's initial log-odds decay rate"),
    ("rebound.initial_rate_increases_with_F.beyond_neutral_control", "initial_rate_log_odds", "trend_vs_control",
     "slope vs log10 F of the initial log-odds decay rate, aligned arm minus the format-matched neutral forward arm"),
)


def _arm_reading(stat: str, key: str, aligned: Mapping[int, Mapping[str, float]],
                 control: Mapping[int, Mapping[str, float]]) -> float:
    if stat == "control_trend":
        return trend_in_f(control, key)
    if stat == "trend_vs_control":
        return trend_in_f(aligned, key) - trend_in_f(control, key)
    return reading_of(stat, key, aligned, control)


def control_arm_predictions(rows: Sequence[Mapping[str, Any]], experiment: str,
                            unit: str = "seeds") -> list[Prediction]:
    """The readings of the aligned arm against its format-matched control arm (``<task>+...``, which
    shares the F = 0 sweep), one value per run (mean over its tasks), a t-interval over runs."""
    arms: dict[tuple, dict[str, Any]] = {}
    for (run, group), metrics in metrics_by_run(rows).items():
        fields = dict(group)
        task = str(fields.pop("task"))
        arm_key = (run, task.split("+")[0], tuple(sorted(fields.items())))
        arms.setdefault(arm_key, {})["control" if "+" in task else "aligned"] = metrics
    predictions = []
    for pid, key, stat, desc in CONTROL_ARM_READINGS:
        per_run: dict[Any, list[float]] = {}
        for (run, _task, _fields), both in arms.items():
            if "aligned" not in both or "control" not in both:
                continue
            per_run.setdefault(run, []).append(_arm_reading(stat, key, both["aligned"], both["control"]))
        predictions.append(reading(pid, t_estimate(list(run_means(per_run).values()), unit), desc,
                                   experiment=experiment))
    return predictions


def strengths(metrics: Mapping[int, Mapping[str, float]]) -> dict[str, float]:
    """Rebound strength at the largest F against the F = 0 control, in both score scales."""
    top, control = metrics[max(metrics)], metrics[0]
    out = {}
    for kind in SCORES:
        out[f"excess_initial_rate_{kind}"] = top[f"initial_rate_{kind}"] - control[f"initial_rate_{kind}"]
        out[f"excess_late_slope_{kind}"] = top[f"late_slope_{kind}"] - control[f"late_slope_{kind}"]
        out[f"slowdown_at_s0_{kind}"] = top[f"slowdown_at_s0_{kind}"]
        out[f"r_back_trend_{kind}"] = trend_in_f(metrics, f"r_back_{kind}")
    return out


def strengths_by_run(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, tuple], dict[str, float]]:
    """The rebound strengths of every run (seed, cell condition) of a metrics table."""
    return {group: strengths(metrics) for group, metrics in metrics_by_run(rows).items()}


def derived_rows(rows: Sequence[Mapping[str, Any]], with_strengths: bool = False) -> list[dict[str, Any]]:
    """The per-F readings (and, for the scale grids, the strengths) of every run in a metrics table,
    as metric rows to publish beside the curves they come from."""
    out = []
    for (seed, group), metrics in metrics_by_run(rows).items():
        condition = dict(group)
        out += [metric_row(key, value, metric_unit(key), seed=seed, **condition, F=f)
                for f, m in metrics.items() for key, value in m.items()]
        if with_strengths:
            out += [metric_row(key, value, "examples/decade of F" if key.startswith("r_back") else metric_unit(key),
                               seed=seed, **condition) for key, value in strengths(metrics).items()]
    return out
