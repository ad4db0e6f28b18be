"""Huffman code lengths against the heapq reference, the 1-bit bound, rates and bad masses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import ConfigError
from tests.theory.reference_impl import heapq_huffman_lengths
from theory.coding import (
    entropy_bits,
    gamma_bits,
    huffman_lengths,
    kl_bits,
    normalised_gamma_bits,
    one_bit_bound,
    thm34_length_bits,
    validate_masses,
)
from theory.pareto import zipf_masses

RNG = np.random.default_rng(0)
CASES = {
    "zipf": zipf_masses(1.2, 3000),
    "uniform": np.full(37, 1 / 37),
    "counts": RNG.integers(1, 6, size=2000).astype(float),
    "continuous": RNG.random(2000),
    "dyadic": np.array([0.5, 0.25, 0.125, 0.125]),
    "with zeros": np.r_[np.zeros(5), RNG.random(20)],
}


@pytest.mark.parametrize("name", CASES)
def test_huffman_is_optimal_like_heapq(name):
    w = CASES[name]
    fast, ref = huffman_lengths(w), heapq_huffman_lengths(w)
    assert float(w @ fast) == pytest.approx(float(w @ ref), rel=1e-12)
    assert np.sum(2.0 ** -fast.astype(float)) == 1.0  # full binary tree: Kraft equality


def test_dyadic_lengths_are_ideal():
    assert huffman_lengths(CASES["dyadic"]).tolist() == [1, 2, 3, 3]


def test_ties_are_deterministic_and_favour_lower_index():
    w = np.ones(5)
    assert huffman_lengths(w).tolist() == huffman_lengths(w.copy()).tolist() == [2, 2, 2, 3, 3]


def test_single_symbol_and_bad_weights():
    assert huffman_lengths([1.0]).tolist() == [0]
    for bad in ([], [1.0, -0.1], [np.nan, 1.0], [0.0, 0.0]):
        with pytest.raises(ConfigError):
            huffman_lengths(bad)


@pytest.mark.parametrize("name", ["zipf", "uniform", "counts", "continuous"])
def test_one_bit_bound_for_the_coded_distribution(name):
    q = CASES[name] / CASES[name].sum()
    holds, mean, entropy = one_bit_bound(q, huffman_lengths(q))
    print(f"{name}: H={entropy:.4f} bits, L={mean:.4f} bits")
    assert holds


def test_kl_equals_depth_gamma_minus_entropy():
    p, q = zipf_masses(0.8, 100), zipf_masses(1.5, 100)[::-1].copy()
    assert kl_bits(p, q) == pytest.approx(8 * gamma_bits(p, q, 8) - entropy_bits(p), rel=1e-12)
    assert normalised_gamma_bits(p, q, 8, 100) == pytest.approx(gamma_bits(p, q, 8) - math.log2(100) / 8)


def test_thm34_length():
    masses = np.full(8, 1 / 8)  # H = 3 bits exactly
    assert thm34_length_bits(17, 8, masses) == 3 * 3


@pytest.mark.parametrize("bad", [[0.5, 0.6], [1.2, -0.2], [], [[0.5, 0.5]]])
def test_bad_masses(bad):
    with pytest.raises(ConfigError):
        validate_masses(bad)
