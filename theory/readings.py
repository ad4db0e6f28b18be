"""Readings of the elasticity theorem on metric rows, shared by every experiment that measures it.

The theorem says ``dgamma_a/dl = Theta(-k dgamma_p/dl)``. Its primary reading
(``theorem.ratio_scales_with_k``, pre-registered with the band [0.9, 1.1]) is, per seed, the
least-squares slope of ``log10 |Delta gamma_a / Delta gamma_p|`` against ``log10 k``, averaged over the
seed's conditions (alpha and depth in theory.simulate, one perturbation in toy.compression), with a
Student-t interval over seeds. theory.simulate, toy.compression and their calibration
(:mod:`theory.calibration`) all read it with :func:`theorem_reading`, so the same numbers are judged
the same way everywhere.

Per-cell signs and coefficients are exploratory: per seed the fraction of (condition, k) cells in
which they hold, with an interval over seeds; never a worst case over cells.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.preregistration import reading
from harness.verdicts import Estimate, Prediction, t_estimate

BAND = (0.9, 1.1)
PRIMARY = "theorem.ratio_scales_with_k"
SLOPE_MEASURE = ("log-log slope of |Delta gamma_a / Delta gamma_p| against k, per seed "
                 "(mean over the seed's conditions)")


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where a metrics table keeps the two rate changes of one (seed, condition, k) cell.

    ``k_field`` is ``"x"`` or the condition field that holds k; ``where`` are condition values a row
    must have; the other condition fields name the cell's condition.
    """

    gamma_a: str
    gamma_p: str
    k_field: str = "x"
    where: tuple[tuple[str, Any], ...] = ()


# theory.simulate: over the finite step [0, l_max] and as l -> 0 (bits per unit depth)
SIMULATE_STEP = Layout(gamma_a="delta_gamma_a_bits", gamma_p="delta_gamma_p_bits")
SIMULATE_L0 = Layout(gamma_a="dgamma_a_dl_l0_bits", gamma_p="dgamma_p_dl_l0_bits")
# toy.compression: least-squares rates in |D_t| of the trained net, the perturbation drawn like D_p
COMPRESSION_LIKE = Layout(gamma_a="dgamma_a_dl_bits", gamma_p="dgamma_p_dl_bits", k_field="k",
                          where=(("perturbation", "like"),))


@dataclass(frozen=True)
class Cell:
    """The changes of gamma_a and gamma_p at one k."""

    a: float
    p: float
    k: float

    @property
    def ratio(self) -> float:
        return self.a / self.p if self.p != 0 else float("nan")

    @property
    def coefficient(self) -> float:
        """``ratio / (-k)``: 1 is the theorem's Theta(-k) with unit constant."""
        return self.ratio / (-self.k)


Cells = dict[int, dict[tuple, dict[float, Cell]]]  # seed -> condition -> k -> cell


def cells_from_rows(rows: Sequence[Mapping[str, Any]], layout: Layout) -> Cells:
    """The (seed, condition, k) cells of ``rows`` in ``layout`` that have both measures."""
    found: dict[tuple, dict[str, float]] = {}
    wanted = {layout.gamma_a: "a", layout.gamma_p: "p"}
    where = dict(layout.where)
    for r in rows:
        role = wanted.get(r["measure"])
        cond = r["condition"]
        if role is None or any(cond.get(f) != v for f, v in where.items()):
            continue
        k = float(r["x"] if layout.k_field == "x" else cond[layout.k_field])
        name = tuple(sorted((f, v) for f, v in cond.items() if f != layout.k_field and f not in where))
        found.setdefault((int(r["seed"]), name, k), {})[role] = float(r["value"])
    out: Cells = {}
    for (seed, name, k), pair in sorted(found.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2])):
        if len(pair) == 2:
            out.setdefault(seed, {}).setdefault(name, {})[k] = Cell(pair["a"], pair["p"], k)
    return out


def loglog_slope(ks: Sequence[float], ratios: Sequence[float]) -> float:
    """Least-squares slope of log10|ratio| on log10 k over finite non-zero ratios (NaN with < 2)."""
    x, y = np.log10(np.asarray(ks, dtype=float)), np.abs(np.asarray(ratios, dtype=float))
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return float("nan")
    x, y = x[ok] - x[ok].mean(), np.log10(y[ok])
    return float((x * y).sum() / (x * x).sum())


def condition_slopes(cells: Cells) -> dict[tuple[int, tuple], float]:
    """(seed, condition) -> the log-log slope of |ratio| against k over that condition's cells."""
    return {(seed, cond): loglog_slope(list(by_k), [c.ratio for c in by_k.values()])
            for seed, conds in cells.items() for cond, by_k in conds.items()}


def seed_slopes(cells: Cells) -> dict[int, float]:
    """Per seed, the mean over its conditions of the log-log slope (conditions without one left out)."""
    per_seed: dict[int, list[float]] = {}
    for (seed, _), slope in condition_slopes(cells).items():
        per_seed.setdefault(seed, []).append(slope)
    out = {}
    for seed, slopes in per_seed.items():
        finite = [x for x in slopes if np.isfinite(x)]
        out[seed] = float(np.mean(finite)) if finite else float("nan")
    return out


def slope_estimate(cells: Cells) -> Estimate:
    return t_estimate(list(seed_slopes(cells).values()))


def ratio_scales_with_k(cells: Cells, experiment: str, pid: str = PRIMARY, measure: str = SLOPE_MEASURE,
                        **extra: Any) -> Prediction:
    """The theorem's slope reading: primary where ``pid`` is pre-registered for ``experiment``."""
    return reading(pid, slope_estimate(cells), measure, experiment=experiment, **extra)


def theorem_reading(rows: Sequence[Mapping[str, Any]], layout: Layout, experiment: str,
                    pid: str = PRIMARY, **extra: Any) -> Prediction | None:
    """:func:`ratio_scales_with_k` on the cells of ``rows`` in ``layout`` (None when there are none)."""
    cells = cells_from_rows(rows, layout)
    return ratio_scales_with_k(cells, experiment, pid, **extra) if cells else None


def cell_fractions(cells: Cells, holds: Callable[[Cell], bool]) -> list[float]:
    """Per seed, the fraction of its (condition, k) cells in which ``holds`` is true."""
    return [float(np.mean([holds(c) for by_k in conds.values() for c in by_k.values()]))
            for conds in cells.values()]


def fraction_reading(pid: str, cells: Cells, holds: Callable[[Cell], bool], measure: str,
                     experiment: str) -> Prediction:
    """An exploratory share of cells, with a t-interval over seeds."""
    return reading(pid, t_estimate(cell_fractions(cells, holds)),
                   f"fraction of (condition, k) cells per seed in which {measure}", experiment=experiment)


def in_band(value: float) -> bool:
    return bool(np.isfinite(value) and BAND[0] <= value <= BAND[1])


def break_size(coefficient: float) -> float:
    """How far a coefficient ratio/(-k) is from the theorem's 1, multiplicatively: ``|ln c|``, and
    infinite when ``c <= 0`` or undefined (a collapse to 0 or a flipped ratio is a full break)."""
    return float(abs(np.log(coefficient))) if np.isfinite(coefficient) and coefficient > 0 else float("inf")
