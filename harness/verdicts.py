"""Verdicts on the paper's predictions, the intervals and p-values behind them, and ``summary.json``.

A reading's value is estimated over independent runs (seeds, or training runs of a real model):
a Student-t interval over per-run values, or a percentile bootstrap when that is the reading's
method. The p-values come from the same method as the interval, so a verdict and its interval
always agree:

- a *direction* claim (predicted sign +1 or -1) ``holds`` when the 95% interval excludes 0 on the
  predicted side and is ``contradicted`` when it excludes 0 on the other;
- a *band* claim ``holds`` when the interval lies inside the band and is ``contradicted`` when it
  lies wholly outside (two one-sided tests);
- otherwise ``inconclusive``, and ``underpowered`` with fewer than 3 independent runs whatever
  the interval says (prompts are never runs).

Only pre-registered primary readings (:mod:`harness.preregistration`) issue verdicts; they are
also Holm-adjusted within their family. Every other reading is exploratory: a value, an
interval and a two-sided p-value against 0, no verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

SCHEMA_VERSION = 2
ALPHA = 0.05
MIN_RUNS = 3
Verdict = Literal["holds", "contradicted", "inconclusive", "underpowered"]


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What a primary reading predicts: a sign (``direction``) or a ``band`` to lie in."""

    direction: int | None = None
    band: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if (self.direction is None) == (self.band is None):
            raise ValueError("a claim is a direction or a band")
        if self.direction not in (None, 1, -1):
            raise ValueError("direction must be +1 or -1")


@dataclass(frozen=True)
class Estimate:
    """A value over ``n`` independent units, its 95% interval, and one-sided tail probabilities
    from the same method: ``p_above(c)`` is the p-value of the value being above ``c``."""

    value: float
    ci: tuple[float, float]
    n: int
    method: str
    p_above: Callable[[float], float]
    p_below: Callable[[float], float]

    def p_two_sided(self, c: float = 0.0) -> float:
        return min(1.0, 2 * min(self.p_above(c), self.p_below(c)))


def _nan_estimate(n: int, method: str, value: float = float("nan")) -> Estimate:
    return Estimate(value, (float("nan"), float("nan")), n, method, lambda c: 1.0, lambda c: 1.0)


def t_estimate(values: Sequence[float], unit: str = "seeds") -> Estimate:
    """Mean and Student-t interval over independent runs, with the t-test's tail probabilities."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    method = f"t-interval over {unit}"
    if x.size < 2:
        return _nan_estimate(int(x.size), method, float(x.mean()) if x.size else float("nan"))
    mean, se, df = float(x.mean()), float(stats.sem(x)), x.size - 1
    if se == 0:  # identical values: the interval is a point, and the tails are 0 or 1
        return Estimate(mean, (mean, mean), int(x.size), method,
                        lambda c: 0.0 if mean > c else 1.0, lambda c: 0.0 if mean < c else 1.0)
    lo, hi = stats.t.interval(1 - ALPHA, df=df, loc=mean, scale=se)
    return Estimate(mean, (float(lo), float(hi)), int(x.size), method,
                    lambda c: float(stats.t.sf((mean - c) / se, df)),
                    lambda c: float(stats.t.cdf((mean - c) / se, df)))


def mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    """Mean and Student-t 95% interval over independent seeds."""
    est = t_estimate(values)
    return est.value, est.ci


def draws_estimate(value: float, draws: np.ndarray, n: int, method: str) -> Estimate:
    """A percentile interval and bootstrap tail probabilities from resampled statistics.

    Both come from the empirical distribution of the draws (the interval's ends are its inverse at
    2.5% and 97.5%, the tails its values at c), so the interval excludes c exactly when the
    two-sided p-value is below 0.05: verdicts, intervals and p-values agree.
    """
    finite = np.sort(draws[np.isfinite(draws)])
    if not np.isfinite(value) or finite.size < 0.5 * draws.size:
        return _nan_estimate(n, method, value)
    lo, hi = np.quantile(finite, [ALPHA / 2, 1 - ALPHA / 2], method="inverted_cdf")
    b = finite.size
    return Estimate(float(value), (float(lo), float(hi)), n, method,
                    lambda c: float(np.searchsorted(finite, c, side="right")) / b,
                    lambda c: float(b - np.searchsorted(finite, c, side="left")) / b)


def paired_bootstrap(per_prompt: Mapping[str, np.ndarray], statistic: Callable[[Mapping[str, np.ndarray]], float],
                     n_resamples: int, seed: int) -> Estimate:
    """A statistic and its percentile interval, resampling prompts jointly across every array
    (``per_prompt`` maps names to arrays whose first axis is the prompt): a paired bootstrap.

    Its ``n`` counts prompts, which are not independent runs.
    """
    value = float(statistic(per_prompt))
    n = next(iter(per_prompt.values())).shape[0]
    rng = np.random.default_rng((23, seed))
    draws = np.array([statistic({k: v[idx] for k, v in per_prompt.items()})
                      for idx in rng.integers(0, n, size=(n_resamples, n))])
    return draws_estimate(value, draws, int(n), "paired percentile bootstrap over prompts")


def log_slope(points: Mapping[float, float]) -> float:
    """Least-squares slope of the values against log10 of their keys, over positive keys and finite
    values (NaN with fewer than two such points)."""
    pts = [(np.log10(x), y) for x, y in points.items() if x > 0 and np.isfinite(y)]
    if len(pts) < 2:
        return float("nan")
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def claim_p_values(est: Estimate, claim: Claim) -> tuple[float, float]:
    """(p of the claim holding, p of it being contradicted), consistent with the 95% interval."""
    if claim.direction is not None:
        up, down = est.p_above(0.0), est.p_below(0.0)
        holds, against = (up, down) if claim.direction > 0 else (down, up)
    else:
        lo, hi = claim.band
        holds = max(est.p_above(lo), est.p_below(hi))  # both one-sided tests: inside the band
        against = min(est.p_above(hi), est.p_below(lo))  # wholly above or wholly below it
    return min(1.0, 2 * holds), min(1.0, 2 * against)


def verdict_of(est: Estimate, claim: Claim, n_runs: int) -> tuple[Verdict, float]:
    """The verdict and the p-value of the decision it is closest to."""
    p_holds, p_against = claim_p_values(est, claim)
    p = min(p_holds, p_against)
    if n_runs < MIN_RUNS:
        return "underpowered", p
    if p_holds < ALPHA:
        return "holds", p
    if p_against < ALPHA:
        return "contradicted", p
    return "inconclusive", p


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """One reading: a value and its 95% interval over ``n_runs`` independent runs; a primary
    reading also has its claim, verdict and p-value (raw and Holm-adjusted within its family)."""

    id: str
    value: float
    ci: tuple[float, float]
    n_runs: int
    measure: str
    method: str
    primary: bool = False
    family: str | None = None
    direction: int | None = None
    band: tuple[float, float] | None = None
    verdict: Verdict | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    verdict_adjusted: Verdict | None = None
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = [float(self.ci[0]), float(self.ci[1])]
        out["value"] = float(self.value)
        out.update(out.pop("extra"))
        return {k: v for k, v in out.items() if v is not None and v != ""}


def judge(pid: str, est: Estimate, measure: str, *, claim: Claim | None = None, family: str | None = None,
          n_runs: int | None = None, note: str = "", **extra: Any) -> Prediction:
    """A Prediction from an estimate: with a ``claim`` (a primary reading) it has a verdict; without
    one it is exploratory, with a two-sided p-value against 0 and no verdict."""
    runs = est.n if n_runs is None else n_runs
    common = dict(id=pid, value=est.value, ci=est.ci, n_runs=runs, measure=measure, method=est.method,
                  note=note, extra=extra)
    if claim is None:
        return Prediction(**common, p_value=est.p_two_sided())
    verdict, p = verdict_of(est, claim, runs)
    return Prediction(**common, primary=True, family=family, direction=claim.direction, band=claim.band,
                      verdict=verdict, p_value=p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values. Written here because scipy.stats adjusts only by
    false-discovery rate (``false_discovery_control``), and Holm's method is a few lines."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


def adjust_families(predictions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Holm-adjust the primary predictions (dicts, as in summary.json) within each family.

    Underpowered readings issue no decision and are left out of the family; a decisive verdict
    stays decisive only when its adjusted p-value is below 0.05.
    """
    out = [dict(p) for p in predictions]
    families: dict[str, list[int]] = {}
    for i, p in enumerate(out):
        if not p.get("primary"):
            continue
        p_value = p.get("p_value")
        if p.get("verdict") != "underpowered" and p_value is not None and np.isfinite(p_value):
            families.setdefault(p["family"], []).append(i)
        else:  # no decision to adjust: it keeps its own verdict
            p["verdict_adjusted"] = p.get("verdict")
    for members in families.values():
        for i, adjusted in zip(members, holm([out[i]["p_value"] for i in members]), strict=True):
            out[i]["p_adjusted"] = adjusted
            decisive = out[i]["verdict"] in ("holds", "contradicted") and adjusted < ALPHA
            out[i]["verdict_adjusted"] = out[i]["verdict"] if decisive else "inconclusive"
    return out


def make_summary(
    experiment: str, config_hash: str, predictions: Sequence[Prediction | Mapping[str, Any]],
    units: Mapping[str, str], **extra: Any,
) -> dict[str, Any]:
    """The summary.json schema shared by every experiment (primary readings Holm-adjusted within
    this run's families; results.json adjusts them across every model of a family)."""
    rows = [p.to_dict() if isinstance(p, Prediction) else dict(p) for p in predictions]
    return {
        "experiment": experiment,
        "schema_version": SCHEMA_VERSION,
        "units": dict(units),
        "config_hash": config_hash,
        "predictions": adjust_families(rows),
        "holm_scope": "the primary readings of this run, by family",
        **extra,
    }
