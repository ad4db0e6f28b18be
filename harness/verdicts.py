"""Verdicts on the paper's predictions, the intervals behind them, and the ``summary.json`` schema.

A verdict comes from the predicted sign and a 95% interval: ``holds`` when the interval excludes
0 in the predicted direction, ``contradicted`` when it excludes 0 in the other direction, and
``inconclusive`` otherwise. Intervals: Student-t over independent seeds, a percentile bootstrap,
or a paired percentile bootstrap over prompts (every array resampled with the same prompts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

SCHEMA_VERSION = 1
Verdict = Literal["holds", "contradicted", "inconclusive"]


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """One tested prediction: a value, its 95% interval and the verdict they give."""

    id: str
    verdict: Verdict
    value: float
    ci: tuple[float, float]
    n_seeds: int
    measure: str
    method: str = "t-interval over seeds"
    family: str | None = None  # multiple-comparison family this test belongs to, if any
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = [float(self.ci[0]), float(self.ci[1])]
        out["value"] = float(self.value)
        extra = out.pop("extra")
        out.update(extra)
        return {k: v for k, v in out.items() if v is not None and v != ""}


def log_slope(points: Mapping[float, float]) -> float:
    """Least-squares slope of the values against log10 of their keys, over positive keys and finite
    values (NaN with fewer than two such points)."""
    pts = [(np.log10(x), y) for x, y in points.items() if x > 0 and np.isfinite(y)]
    if len(pts) < 2:
        return float("nan")
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def verdict_from_ci(ci: Sequence[float], predicted_sign: int) -> Verdict:
    """Verdict from a confidence interval and the predicted sign (+1 or -1)."""
    if predicted_sign not in (1, -1):
        raise ValueError("predicted_sign must be +1 or -1")
    lo, hi = float(ci[0]), float(ci[1])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if lo > 0:
        return "holds" if predicted_sign > 0 else "contradicted"
    if hi < 0:
        return "holds" if predicted_sign < 0 else "contradicted"
    return "inconclusive"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean and Student-t interval over independent seeds."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    mean = float(x.mean())
    if x.size < 2 or np.all(x == x[0]):
        return mean, (mean, mean) if x.size >= 2 else (float("nan"), float("nan"))
    lo, hi = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=stats.sem(x))
    return mean, (float(lo), float(hi))


def bootstrap_ci(
    values: Sequence[float], seed: int, confidence: float = 0.95, n_resamples: int = 4999,
    statistic=np.mean,
) -> tuple[float, tuple[float, float]]:
    """Statistic and percentile-bootstrap interval (e.g. paired differences over prompts)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return (float(statistic(x)) if x.size else float("nan")), (float("nan"), float("nan"))
    if np.all(x == x[0]):
        return float(x[0]), (float(x[0]), float(x[0]))
    res = stats.bootstrap(
        (x,), statistic, confidence_level=confidence, n_resamples=n_resamples,
        method="percentile", rng=np.random.default_rng(seed),
    )
    return float(statistic(x)), (float(res.confidence_interval.low), float(res.confidence_interval.high))


def predict(
    id: str, values: Sequence[float], predicted_sign: int, measure: str, *,
    method: Literal["t", "bootstrap"] = "t", seed: int = 0, family: str | None = None,
    note: str = "", **extra: Any,
) -> Prediction:
    """Build a Prediction from per-seed (``t``) or per-prompt (``bootstrap``) values."""
    if method == "t":
        value, ci = mean_ci(values)
        label = "t-interval over seeds"
    else:
        value, ci = bootstrap_ci(values, seed=seed)
        label = "percentile bootstrap"
    return Prediction(
        id=id, verdict=verdict_from_ci(ci, predicted_sign), value=value, ci=ci,
        n_seeds=int(np.isfinite(np.asarray(values, dtype=float)).sum()), measure=measure,
        method=label, family=family, note=note, extra=extra,
    )


def paired_bootstrap(per_prompt: Mapping[str, np.ndarray], statistic: Callable[[Mapping[str, np.ndarray]], float],
                     n_resamples: int, seed: int) -> tuple[float, tuple[float, float], int]:
    """Statistic and 95% percentile interval, resampling prompts jointly across every array.

    ``per_prompt`` maps names to arrays whose first axis is the prompt; the same resampled prompts
    are used for every array (a paired bootstrap). Returns (value, ci, resamples that gave NaN).
    """
    value = float(statistic(per_prompt))
    n = next(iter(per_prompt.values())).shape[0]
    rng = np.random.default_rng((23, seed))
    draws = np.array([statistic({k: v[idx] for k, v in per_prompt.items()})
                      for idx in rng.integers(0, n, size=(n_resamples, n))])
    finite = draws[np.isfinite(draws)]
    if not np.isfinite(value) or finite.size < 0.5 * n_resamples:
        return value, (float("nan"), float("nan")), int(n_resamples - finite.size)
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return value, (float(lo), float(hi)), int(n_resamples - finite.size)


def bootstrap_prediction(pid: str, per_prompt: Mapping[str, np.ndarray], statistic: Callable,
                         sign: int, measure: str, n_resamples: int, seed: int, family: str,
                         note: str = "", **extra: Any) -> Prediction:
    """A Prediction whose interval is a paired bootstrap over prompts (see :func:`paired_bootstrap`)."""
    value, ci, n_nan = paired_bootstrap(per_prompt, statistic, n_resamples, seed)
    n = int(next(iter(per_prompt.values())).shape[0])
    return Prediction(id=pid, verdict=verdict_from_ci(ci, sign), value=value, ci=ci, n_seeds=n,
                      measure=measure, method="paired percentile bootstrap over prompts", family=family,
                      note=note, extra={"n_prompts": n, "n_resamples": n_resamples,
                                        "resamples_nan": n_nan, **extra})


def make_summary(
    experiment: str, config_hash: str, predictions: Sequence[Prediction | Mapping[str, Any]],
    units: Mapping[str, str], **extra: Any,
) -> dict[str, Any]:
    """The summary.json schema shared by every experiment."""
    return {
        "experiment": experiment,
        "schema_version": SCHEMA_VERSION,
        "units": dict(units),
        "config_hash": config_hash,
        "predictions": [p.to_dict() if isinstance(p, Prediction) else dict(p) for p in predictions],
        **extra,
    }
