"""Speed of the vectorised token-tree builder against the dict-per-node reference (1e5 sequences).

Run with ``pytest tests/theory/test_benchmark.py --benchmark-enable`` to measure; the default run has
benchmarks disabled, so each body runs once as a test. Speeds are reported, never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.theory.reference_impl import dict_tree_leaves
from theory.coding import huffman_lengths
from theory.token_tree import Sequences, prune

N, LENGTH, VOCAB, DEPTH = 100_000, 32, 16, 8


@pytest.fixture(scope="module")
def sequences() -> np.ndarray:
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, VOCAB + 1)
    return rng.choice(VOCAB, size=(N, LENGTH), p=p / p.sum())


def fast(tokens: np.ndarray) -> np.ndarray:
    seqs = Sequences(tokens, np.full(tokens.shape[0], tokens.shape[1]), VOCAB)
    leaves, _ = prune(seqs, DEPTH)
    return huffman_lengths(leaves.masses)


def reference(tokens: np.ndarray) -> np.ndarray:
    masses = dict_tree_leaves(tokens.tolist(), DEPTH, VOCAB)
    return huffman_lengths(np.array([masses[key] for key in sorted(masses)]))


@pytest.mark.benchmark(group="token tree: build, prune at 8, Huffman (1e5 x 32, V=16)")
def test_fast_builder(benchmark, sequences):
    lengths = benchmark(fast, sequences)
    assert lengths.size > 0


@pytest.mark.benchmark(group="token tree: build, prune at 8, Huffman (1e5 x 32, V=16)")
def test_reference_builder(benchmark, sequences):
    lengths = benchmark.pedantic(reference, args=(sequences,), rounds=1, iterations=1)
    np.testing.assert_array_equal(lengths, fast(sequences))  # same leaves in the same order
