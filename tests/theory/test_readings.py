"""The theorem's shared readings on tiny synthetic metric rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics import metric_row
from theory import readings as rd

KS = (10.0, 100.0, 1000.0)


def _simulate_rows(slopes: dict[tuple[int, float], float], flip: tuple = ()) -> list[dict]:
    """theory.simulate's layout: |ratio| = k ** slope per (seed, alpha); cells in ``flip`` get gamma_p rising."""
    rows = []
    for (seed, alpha), slope in slopes.items():
        for k in KS:
            p = 1e-3 if (seed, alpha, k) in flip else -1e-3
            rows += [metric_row("delta_gamma_p_bits", p, "bits", seed=seed, x=k, alpha=alpha, depth=8),
                     metric_row("delta_gamma_a_bits", 1e-3 * k**slope, "bits", seed=seed, x=k, alpha=alpha, depth=8),
                     metric_row("ratio", 0.0, "1", seed=seed, x=k, alpha=alpha, depth=8)]  # not read
    return rows


def test_loglog_slope():
    assert rd.loglog_slope(KS, [-k for k in KS]) == pytest.approx(1.0)
    assert rd.loglog_slope(KS, [2 * k**0.5 for k in KS]) == pytest.approx(0.5)
    assert math.isnan(rd.loglog_slope(KS, [0.0, 5.0, float("nan")]))  # one usable point


def test_cells_and_the_slope_averaged_over_conditions_then_seeds():
    slopes = {(s, a): 1.0 + 0.01 * s + (0.02 if a == 2.0 else 0.0) for s in range(4) for a in (0.8, 2.0)}
    cells = rd.cells_from_rows(_simulate_rows(slopes), rd.SIMULATE_STEP)
    assert sorted(cells) == [0, 1, 2, 3] and len(cells[0]) == 2
    assert cells[0][(("alpha", 0.8), ("depth", 8))][100.0].coefficient == pytest.approx(1.0)
    per_seed = rd.seed_slopes(cells)
    assert per_seed[2] == pytest.approx(1.0 + 0.02 + 0.01)
    found = rd.ratio_scales_with_k(cells, "theory.simulate")
    assert found.primary and found.band == (0.9, 1.1) and found.n_runs == 4
    assert found.value == pytest.approx(1.025) and found.verdict == "holds"
    assert not rd.ratio_scales_with_k(cells, "some.other").primary  # pre-registered per experiment


def test_compression_layout_reads_k_from_the_condition_and_keeps_the_like_perturbation():
    rows = []
    for seed in range(3):
        for kind, slope in (("like", 1.0), ("unlike", -0.5)):
            for k in KS:
                rows += [metric_row("dgamma_p_dl_bits", -0.1, "bits", seed=seed, k=k, perturbation=kind),
                         metric_row("dgamma_a_dl_bits", 0.1 * k**slope * (1 + 0.01 * seed), "bits", seed=seed,
                                    k=k, perturbation=kind)]
    found = rd.theorem_reading(rows, rd.COMPRESSION_LIKE, "toy.compression")
    assert found.primary and found.value == pytest.approx(1.0) and found.n_runs == 3
    assert rd.theorem_reading([], rd.COMPRESSION_LIKE, "toy.compression") is None


def test_fractions_count_cells_not_the_worst_one():
    """One cell of 6 against the theorem's sign: a share of 5/6 in that seed, not a flipped verdict."""
    slopes = {(s, a): 1.0 for s in range(3) for a in (0.8, 2.0)}
    cells = rd.cells_from_rows(_simulate_rows(slopes, flip=((1, 0.8, 10.0),)), rd.SIMULATE_STEP)
    assert rd.cell_fractions(cells, lambda c: c.p < 0) == pytest.approx([1.0, 5 / 6, 1.0])
    found = rd.fraction_reading("simulate.gamma_p_falls_fraction", cells, lambda c: c.p < 0, "gamma_p falls",
                                "theory.simulate")
    assert not found.primary and found.verdict is None and found.value == pytest.approx((2 + 5 / 6) / 3)
    assert rd.in_band(1.05) and not rd.in_band(1.2) and not rd.in_band(float("nan"))


def test_break_size():
    assert rd.break_size(1.0) == 0.0
    assert rd.break_size(math.e) == pytest.approx(1.0) == rd.break_size(1 / math.e)
    for collapsed in (0.0, -1.0, float("nan"), float("inf")):
        assert rd.break_size(collapsed) == np.inf
