"""Calibration of toy.resistance's primary readings on synthetic per-seed paired losses.

Shape: the committed headline reference (``figures/data/toy.resistance``): its seeds and its cells
(starting point x sampling temperature x task x size x pair x path), one ``excess_mean_nats`` row
per path as ``toy.resistance`` writes it (the only measure the primary readings use). Each replicate
is read by :func:`readings`, the function the experiment uses on its own rows, and the reading of
interest is taken from its output.

Noise, measured on the committed reference at first use (:func:`reference`): each cell has a mean
over the reference's seeds (the baseline levels) and one residual per seed. A synthetic seed draws
its residuals over all cells from a normal distribution with the reference's sample covariance
(standard-normal weights on the residual vectors, divided by sqrt(n_seeds - 1)), which keeps every
variance and every within-seed correlation of the reference: between the two paths of a
comparison, between pairs, tasks, sizes, temperatures and the two starting points.

Planting, at T = 0.05 on the pre-trained cells only (each comparison keeps its reference level
m = (inverse + forward) / 2): ``inverse_lower`` at size d sets inverse - forward = d in every
comparison; ``beyond_control`` at size d sets each comparison's relative asymmetry to the paired
control comparison's reference relative asymmetry plus d. The null is d = 0. The stated sizes were
set once, before the references they now run on (see ``paper_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from harness.calibration import Calibration, residual_draws
from harness.metrics import metric_row, metrics_path, read_metrics_csv
from harness.reference import figures_dir
from harness.verdicts import Prediction
from toymodels.protocols.resistance_readings import PRIMARY_T, readings

EXPERIMENT = "toy.resistance"
MEASURE = "excess_mean_nats"
# Table 1 of the paper (27 comparisons of raw training loss): mean inverse - forward -0.026
# nats/token, mean relative asymmetry -0.116.
PAPER_RELATIVE_ASYMMETRY = -0.116
# mean epoch KL-excess, pre-trained, T = 0.05, of the reference on which the stated size was set
REFERENCE_PRETRAINED_EXCESS = 0.965
SCAN = (-0.02, -0.04, -0.06, -0.08, -0.10)


@dataclass(frozen=True)
class Reference:
    """The reference's cells (init, T, task, size, pair, path), their means over seeds, and the
    seeds' residuals from them (n_seeds x n_cells)."""

    cells: list[tuple[str, float, str, str, str, str]]
    means: np.ndarray
    residuals: np.ndarray

    def index(self, init: str, temp: float, comparison: tuple[str, str, str], path: str) -> int:
        return self.cells.index((init, temp, *comparison, path))

    def comparisons(self) -> list[tuple[str, str, str]]:
        return sorted({c[2:5] for c in self.cells})


@cache
def reference() -> Reference:
    """The committed toy.resistance reference, as the generator's baseline and noise."""
    values: dict[tuple, dict[int, float]] = {}
    for r in read_metrics_csv(metrics_path(figures_dir() / "data" / EXPERIMENT)):
        c = r["condition"]
        if r["measure"] == MEASURE:
            key = (c["init"], float(c["T"]), str(c["task"]), str(c["size"]), str(c["pair"]), c["path"])
            values.setdefault(key, {})[int(r["seed"])] = float(r["value"])
    cells = sorted(values, key=str)
    seeds = sorted(values[cells[0]])
    x = np.array([[values[c][s] for c in cells] for s in seeds])
    return Reference(cells, x.mean(axis=0), x - x.mean(axis=0))


def planted_means(reading: str, size: float) -> np.ndarray:
    """The reference's cell means with the effect planted at ``size`` (see the module)."""
    ref = reference()
    means = ref.means.copy()
    for comp in ref.comparisons():
        inv, fwd = (ref.index("pretrained", PRIMARY_T, comp, p) for p in ("inverse", "forward"))
        level = (means[inv] + means[fwd]) / 2
        if reading == "resistance.inverse_lower":
            means[inv], means[fwd] = level + size / 2, level - size / 2
        else:
            c_inv, c_fwd = (ref.means[ref.index("random", PRIMARY_T, comp, p)] for p in ("inverse", "forward"))
            relative = (c_inv - c_fwd) / ((c_inv + c_fwd) / 2) + size
            means[inv], means[fwd] = level * (1 + relative / 2), level * (1 - relative / 2)
    return means


def replicate(reading: str, size: float, seed: int) -> Prediction:
    """One synthetic toy.resistance run, read by the experiment's own readings."""
    ref = reference()
    rng = np.random.default_rng(seed)
    n_seeds = ref.residuals.shape[0]  # as many synthetic seeds as the headline run has
    values = planted_means(reading, size) + residual_draws(ref.residuals, n_seeds, rng)
    rows = [metric_row(MEASURE, float(v), "nats", seed=s, init=init, task=task, size=model_size, T=temp,
                       pair=pair, path=path)
            for s, seed_values in enumerate(values)
            for (init, temp, task, model_size, pair, path), v in zip(ref.cells, seed_values, strict=True)]
    return next(p for p in readings(rows, EXPERIMENT) if p.id == reading)


def _calibration(reading: str, stated: float, unit: str, paper_size: str, noise: str) -> Calibration:
    return Calibration(reading=reading, experiment=EXPERIMENT,
                       replicate=lambda size, seed: replicate(reading, size, seed), null=0.0, stated=stated,
                       scan=SCAN, unit=unit, paper_size=paper_size, noise=noise)


NOISE = ("toy.resistance headline reference: normal with the sample covariance of its per-seed residuals over "
         "all its cells, every within-seed correlation kept")
CALIBRATIONS = (
    _calibration(
        "resistance.inverse_lower", round(PAPER_RELATIVE_ASYMMETRY * REFERENCE_PRETRAINED_EXCESS, 3), "nats/token",
        "-0.112 nats/token: the paper's mean relative asymmetry over Table 1 (-0.116 of raw loss; -0.026 "
        "nats/token at the paper's loss levels) times the toy's mean pre-trained epoch KL-excess at T = 0.05 "
        "when this size was set (0.965 nats/token, the reduced preset's reference); the paper reports no data "
        "entropy, so no KL-excess of its own",
        NOISE),
    _calibration(
        "resistance.beyond_control", PAPER_RELATIVE_ASYMMETRY, "relative asymmetry",
        "-0.116: the paper attributes resistance to pre-training, so a model without it would show none and "
        "the whole of Table 1's mean relative asymmetry (-0.116) lies beyond the control (the reduced "
        "preset's toy control showed -0.134)",
        NOISE),
)
