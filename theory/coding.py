"""Coding a pruned token tree: Huffman code lengths, ideal code lengths and compression rates.

All lengths and rates are in **bits**. The compression rate of dataset ``i`` under the joint model
``q`` is the cross-entropy per unit depth (paper §2.6),

    gamma_i = -(1/d) * sum_j P_i(j) * log2 q(j)      [bits per token of depth]

and the normalised rate is ``gamma_i - log2(M) / d`` for ``M`` leaves after pruning. Only one
secondary source gives that normalisation (digest §2.7), so it is unconfirmed; it is a constant shift
here, so no derivative in ``l`` depends on it.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from harness.errors import ConfigError

MASS_TOLERANCE = 1e-9


def validate_masses(p: np.ndarray | list[float], name: str = "masses", normalised: bool = True) -> np.ndarray:
    """A float array of non-negative finite masses (summing to 1 when ``normalised``); else ConfigError."""
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"{name}: expected a non-empty 1-D array of masses")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name}: masses must be finite")
    if np.any(arr < 0):
        raise ConfigError(f"{name}: masses must be non-negative (min {arr.min():.3g})")
    total = float(arr.sum())
    if normalised and abs(total - 1.0) > MASS_TOLERANCE:
        raise ConfigError(f"{name}: masses must sum to 1 within {MASS_TOLERANCE:g}, got {total!r}")
    if not normalised and total <= 0:
        raise ConfigError(f"{name}: weights must have a positive sum")
    return arr


def huffman_lengths(weights: np.ndarray | list[float]) -> np.ndarray:
    """Huffman code lengths (bits) of non-negative weights; O(n) after sorting, two queues.

    Equal weights are processed as runs, so a distribution with few distinct values (empirical
    counts) codes in time proportional to the number of runs times the tree depth. Ties are broken
    deterministically: leaves before internal nodes, lower index first; among equal-weight leaves the
    lower index gets the shorter code. A single symbol gets length 0 (nothing to transmit).
    """
    w_all = validate_masses(weights, "huffman weights", normalised=False)
    n = w_all.size
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    order = np.argsort(w_all, kind="stable")
    w = w_all[order]
    starts = np.flatnonzero(np.r_[True, w[1:] != w[:-1]])
    n_runs = starts.size
    weight: list[float] = w[starts].tolist()
    count: list[int] = np.diff(np.r_[starts, n]).tolist()
    # children[r] lists (child run, children per member of r): every member of a run has the same shape
    children: list[list[tuple[int, int]]] = [[] for _ in range(n_runs)]
    leaves = deque([r, count[r]] for r in range(n_runs))
    internal: deque[list[int]] = deque()
    items = n

    def smallest() -> deque:
        if leaves and (not internal or weight[leaves[0][0]] <= weight[internal[0][0]]):
            return leaves
        return internal

    def new_run(w_new: float, c: int, kids: list[tuple[int, int]]) -> None:
        weight.append(w_new)
        count.append(c)
        children.append(kids)
        internal.append([len(weight) - 1, c])

    while items > 1:
        queue = smallest()
        run, remaining = queue[0]
        if remaining >= 2:
            # the two smallest items both come from this run until it has fewer than two left:
            # the other queue's front is no smaller and new nodes (weight 2w) join the back
            pairs = remaining // 2
            queue[0][1] -= 2 * pairs
            if queue[0][1] == 0:
                queue.popleft()
            new_run(2 * weight[run], pairs, [(run, 2)])
            items -= pairs
            continue
        queue.popleft()
        other = smallest()
        run2 = other[0][0]
        other[0][1] -= 1
        if other[0][1] == 0:
            other.popleft()
        new_run(weight[run] + weight[run2], 1, [(run, 1), (run2, 1)])
        items -= 1

    # depth histograms, pushed from the root (the last run) down; children precede parents
    hist: list[dict[int, int]] = [dict() for _ in weight]
    hist[-1] = {0: 1}
    for r in range(len(weight) - 1, n_runs - 1, -1):
        for child, mult in children[r]:
            target = hist[child]
            for depth, c in hist[r].items():
                target[depth + 1] = target.get(depth + 1, 0) + mult * c
    lengths_sorted = np.empty(n, dtype=np.int64)
    for r in range(n_runs):
        depths = np.repeat(*zip(*sorted(hist[r].items()), strict=True))
        lengths_sorted[starts[r] : starts[r] + count[r]] = depths
    lengths = np.empty(n, dtype=np.int64)
    lengths[order] = lengths_sorted
    return lengths


def entropy_bits(p: np.ndarray) -> float:
    """Shannon entropy in bits of a normalised mass vector (zeros contribute nothing)."""
    p = np.asarray(p, dtype=float)
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


def ideal_lengths_bits(q: np.ndarray) -> np.ndarray:
    """Ideal code lengths ``-log2 q`` in bits (infinite where ``q = 0``)."""
    with np.errstate(divide="ignore"):
        return -np.log2(np.asarray(q, dtype=float))


def expected_length_bits(p: np.ndarray, lengths: np.ndarray) -> float:
    """Mean code length in bits of data distributed as ``p`` under code ``lengths``.

    Leaves where ``p = 0`` contribute nothing even if they have no code (infinite length).
    """
    p = np.asarray(p, dtype=float)
    used = p > 0
    return float((p[used] * np.asarray(lengths, dtype=float)[used]).sum())


def gamma_bits(p: np.ndarray, q: np.ndarray, depth: int) -> float:
    """Compression rate of data ``p`` under the model ``q``, ideal lengths, bits per unit depth."""
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}")
    return expected_length_bits(p, ideal_lengths_bits(q)) / depth


def normalised_gamma_bits(p: np.ndarray, q: np.ndarray, depth: int, n_leaves: int) -> float:
    """``gamma - log2(M)/d`` (bits). The paper's exact normalisation is unconfirmed (digest §2.7)."""
    return gamma_bits(p, q, depth) - math.log2(n_leaves) / depth


def kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in bits: the data||model direction, for which KL = d*gamma - H(p)."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    used = p > 0
    with np.errstate(divide="ignore"):
        return float((p[used] * (np.log2(p[used]) - np.log2(q[used]))).sum())


def thm34_length_bits(sequence_length: int, depth: int, leaf_masses: np.ndarray) -> int:
    """The paper's Thm 3.4 code length: ``ceil(|x|/d)`` chunks, each ``ceil(H)`` bits of the pruned tree."""
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}")
    masses = validate_masses(leaf_masses, "leaf masses")
    return math.ceil(sequence_length / depth) * math.ceil(entropy_bits(masses))


def one_bit_bound(q: np.ndarray, lengths: np.ndarray) -> tuple[bool, float, float]:
    """Check ``H(q) <= E_q[L] < H(q) + 1`` per coded chunk for the distribution ``q`` that was coded.

    Returns (holds, mean length, entropy), all in bits. The bound is about the coded mixture; a
    component dataset coded with the mixture's code need not satisfy it.
    """
    mean = expected_length_bits(q, lengths)
    entropy = entropy_bits(q)
    slack = 1e-12 * max(1.0, entropy)
    return bool(entropy - slack <= mean < entropy + 1.0), mean, entropy
