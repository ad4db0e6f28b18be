"""Calibration of the readings that issue verdicts, on synthetic data with a planted effect and without.

A :class:`Calibration` says how to make one replicate: synthetic measurements with the shape of the
real ones (curves over R, per-seed paired losses, cell grids), with the effect planted at a chosen
size, read by the reading's full verdict pipeline. :func:`calibrate` runs many replicates and
reports

- the false-positive rate: the share of replicates *without* the effect (planted at ``null``: 0
  for a sign, the band's edge for a band) that read any decisive verdict;
- the power: the share of replicates with the effect planted at ``stated`` that read ``holds``;
- the minimal detectable effect: the smallest planted size on the ``scan`` at which the power
  reaches 0.8 (linear interpolation between scanned sizes; NaN when none reaches it).

Monte Carlo standard errors come with both rates. A reading passes when its false-positive rate is
at most 0.05 plus two standard errors and its power at ``stated`` is at least 0.8.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from harness.verdicts import ALPHA, Prediction

POWER_TARGET = 0.8
DECISIVE = ("holds", "contradicted")


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """How to calibrate one reading of one experiment.

    ``replicate(size, seed)`` draws synthetic measurements with the effect planted at ``size``
    (in ``unit``) and returns the reading's Prediction, made by the same code as on real runs.
    """

    reading: str
    experiment: str
    replicate: Callable[[float, int], Prediction]
    null: float
    stated: float
    scan: tuple[float, ...]
    unit: str
    paper_size: str
    noise: str

    @property
    def name(self) -> str:
        return f"{self.experiment}:{self.reading}"


def residual_draws(residuals: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``n_draws`` synthetic runs' residuals (n_draws x n_cells), normal with the sample covariance of
    ``residuals`` (reference runs x cells, about their cell means): standard-normal weights on the
    reference runs' residual vectors, divided by sqrt(n - 1), keep every variance and every
    within-run correlation between cells."""
    return rng.standard_normal((n_draws, residuals.shape[0])) @ residuals / np.sqrt(residuals.shape[0] - 1)


@dataclass(frozen=True, kw_only=True)
class CalibrationResult:
    name: str
    reading: str
    experiment: str
    n_replicates: int
    false_positive_rate: float
    false_positive_mcse: float
    stated_effect: float
    power: float
    power_mcse: float
    minimal_detectable_effect: float
    unit: str
    paper_size: str
    noise: str
    power_curve: dict[str, float] = field(default_factory=dict)

    @property
    def fpr_ok(self) -> bool:
        return self.false_positive_rate <= ALPHA + 2 * self.false_positive_mcse

    @property
    def power_ok(self) -> bool:
        return self.power >= POWER_TARGET

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fpr_ok": self.fpr_ok, "power_ok": self.power_ok}


def _share(flags: Sequence[bool]) -> tuple[float, float]:
    p = float(np.mean(flags))
    return p, float(np.sqrt(p * (1 - p) / len(flags)))


def verdicts_at(cal: Calibration, size: float, n_replicates: int, seed: int, desc: str = "",
                n_jobs: int = 1) -> list[str]:
    """The verdicts of ``n_replicates`` replicates planted at ``size`` (replicate seeds from ``seed``),
    in ``n_jobs`` processes (joblib's convention: -1 is every core). Each replicate is seeded alone,
    so the verdicts do not depend on ``n_jobs``."""
    seeds = np.random.SeedSequence(seed).generate_state(n_replicates)
    verdicts = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(cal.replicate)(size, int(s)) for s in seeds)
    return [p.verdict or "" for p in tqdm(verdicts, total=n_replicates, desc=desc, leave=False, disable=not desc)]


def minimal_detectable_effect(curve: dict[float, float]) -> float:
    """The smallest size at which ``curve`` (size -> power, sizes in increasing |distance| from the
    null) first reaches the target, interpolated linearly; NaN when it never does."""
    sizes = list(curve)
    for i, size in enumerate(sizes):
        if curve[size] >= POWER_TARGET:
            if i == 0:
                return float(size)
            s0, p0 = sizes[i - 1], curve[sizes[i - 1]]
            return float(s0 + (POWER_TARGET - p0) * (size - s0) / (curve[size] - p0))
    return float("nan")


def calibrate(cal: Calibration, n_replicates: int, seed: int = 0, progress: bool = False,
              scan: bool = True, n_jobs: int = 1) -> CalibrationResult:
    """False-positive rate, power at the stated size and the minimal detectable effect of one reading
    (``scan=False`` skips the effect-size scan: the MDE is then NaN, the rest unchanged; ``n_jobs`` as
    in :func:`verdicts_at`)."""
    label = cal.name if progress else ""
    null = verdicts_at(cal, cal.null, n_replicates, seed, f"{label} null" if label else "", n_jobs)
    fpr, fpr_se = _share([v in DECISIVE for v in null])
    planted = verdicts_at(cal, cal.stated, n_replicates, seed + 1, f"{label} planted" if label else "", n_jobs)
    power, power_se = _share([v == "holds" for v in planted])
    curve = {s: _share([v == "holds" for v in verdicts_at(cal, s, n_replicates, seed + 2 + i, n_jobs=n_jobs)])[0]
             for i, s in enumerate(cal.scan if scan else ())}  # the MDE scan, each size with its own replicates
    return CalibrationResult(
        name=cal.name, reading=cal.reading, experiment=cal.experiment, n_replicates=n_replicates,
        false_positive_rate=fpr, false_positive_mcse=fpr_se, stated_effect=cal.stated, power=power,
        power_mcse=power_se, minimal_detectable_effect=minimal_detectable_effect(curve), unit=cal.unit,
        paper_size=cal.paper_size, noise=cal.noise, power_curve={f"{s:.6g}": p for s, p in curve.items()},
    )
