"""Plain reference implementations the fast code is checked against (tests only)."""

from __future__ import annotations

import heapq
import itertools

import numpy as np


def dict_tree_leaves(sequences: list[list[int]], depth: int, vocab: int,
                     weights: list[float] | None = None) -> dict[tuple[int, ...], float]:
    """Build the token tree one node (a dict) at a time down to ``depth``, return the leaf masses.

    Leaf keys use the fast implementation's convention: ``depth`` digits, ``vocab`` for EOS/padding.
    """
    root: dict = {"weight": 0.0, "children": {}, "eos": 0.0}
    weights = weights if weights is not None else [1.0] * len(sequences)
    for seq, w in zip(sequences, weights, strict=True):
        node = root
        node["weight"] += w
        for tok in seq[:depth]:  # deeper nodes are pruned away
            node = node["children"].setdefault(tok, {"weight": 0.0, "children": {}, "eos": 0.0})
            node["weight"] += w
        if len(seq) < depth:
            node["eos"] += w
    leaves: dict[tuple[int, ...], float] = {}

    def walk(node: dict, prefix: tuple[int, ...]) -> None:
        if len(prefix) == depth:
            leaves[prefix] = leaves.get(prefix, 0.0) + node["weight"]
            return
        if node["eos"]:
            key = prefix + (vocab,) * (depth - len(prefix))
            leaves[key] = leaves.get(key, 0.0) + node["eos"]
        for tok, child in node["children"].items():
            walk(child, prefix + (tok,))

    walk(root, ())
    total = sum(leaves.values())
    return {k: v / total for k, v in leaves.items()}


def heapq_huffman_lengths(weights: np.ndarray) -> np.ndarray:
    """Textbook Huffman with a binary heap; returns code lengths."""
    w = list(map(float, weights))
    if len(w) == 1:
        return np.zeros(1, dtype=np.int64)
    counter = itertools.count()
    heap = [(x, next(counter), [i]) for i, x in enumerate(w)]
    heapq.heapify(heap)
    lengths = np.zeros(len(w), dtype=np.int64)
    while len(heap) > 1:
        a, _, la = heapq.heappop(heap)
        b, _, lb = heapq.heappop(heap)
        lengths[la] += 1
        lengths[lb] += 1
        heapq.heappush(heap, (a + b, next(counter), la + lb))
    return lengths
