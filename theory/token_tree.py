"""Token trees of datasets (paper Def. 3.1) and their pruning at depth ``d`` (Assumption 3.2).

A dataset is a set of token sequences over a vocabulary of ``V`` tokens. Its token tree has one
node per distinct prefix, weighted by the mass of the sequences through it, and an end-of-sequence
(EOS) leaf under the node where a sequence ends. Pruning keeps the top ``d`` layers, so the leaves
of the pruned tree are:

- the EOS leaf of every sequence shorter than ``d`` (key: the whole sequence), and
- every depth-``d`` node, which absorbs all sequences of length ``>= d`` through it (key: the
  ``d``-prefix).

Everything is vectorised: a prefix is packed into one integer in base ``V + 1`` (digit ``V`` marks
EOS and padding) and ``np.unique`` groups equal keys, one call per depth. When ``(V + 1)**d`` does
not fit in 63 bits the rows are grouped as raw bytes instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ConfigError

PAD = -1


@dataclass(frozen=True)
class Sequences:
    """Token sequences as a padded matrix: ``tokens[i, :lengths[i]]`` is sequence ``i``."""

    tokens: np.ndarray  # (n, L) int64, PAD beyond each length
    lengths: np.ndarray  # (n,) int64
    vocab: int

    def __len__(self) -> int:
        return int(self.lengths.size)


@dataclass(frozen=True)
class Leaves:
    """Leaves of a pruned token tree: sorted unique keys and their masses (summing to 1)."""

    keys: np.ndarray  # (M, d) int64 rows: tokens, then V for EOS/padding
    masses: np.ndarray  # (M,) float64
    depth: int
    vocab: int

    @property
    def n_leaves(self) -> int:
        return int(self.masses.size)


@dataclass(frozen=True)
class TokenTree:
    """Node weights per depth (depth 0 is the root) and the leaves after pruning at ``depth``."""

    node_counts: list[np.ndarray]  # per depth t = 0..depth: weights of the distinct t-prefixes
    leaves: Leaves


def as_sequences(data: Sequence[Sequence[int]] | np.ndarray, vocab: int | None = None) -> Sequences:
    """Validate token sequences (a list of lists, or an (n, L) matrix with -1 padding).

    Raises ConfigError for an empty dataset, non-integer or negative tokens, or tokens ``>= vocab``.
    """
    if isinstance(data, np.ndarray) and data.ndim == 2:
        if data.shape[0] == 0:
            raise ConfigError("empty dataset: no sequences")
        if not np.issubdtype(data.dtype, np.integer):
            raise ConfigError("tokens must be integers")
        tokens = data.astype(np.int64, copy=False)
        valid = tokens >= 0
        lengths = valid.sum(axis=1)
        # padding must only trail: a valid token after a pad would be silently dropped
        if np.any(valid[:, 1:] & ~valid[:, :-1]):
            raise ConfigError("token matrix has negative tokens inside a sequence (only trailing -1 padding is allowed)")
    else:
        rows = list(data)
        if not rows:
            raise ConfigError("empty dataset: no sequences")
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        tokens = np.full((len(rows), max(int(lengths.max()), 1)), PAD, dtype=np.int64)
        for i, row in enumerate(rows):
            arr = np.asarray(row)
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise ConfigError(f"sequence {i} has non-integer tokens")
            if arr.size and arr.min() < 0:
                raise ConfigError(f"sequence {i} has negative tokens")
            tokens[i, : arr.size] = arr
    top = int(tokens.max()) if tokens.size else -1
    vocab = int(vocab if vocab is not None else max(top + 1, 1))
    if vocab < 1:
        raise ConfigError(f"vocab must be >= 1, got {vocab}")
    if top >= vocab:
        raise ConfigError(f"token {top} is outside the vocabulary of size {vocab}")
    return Sequences(tokens, lengths.astype(np.int64), vocab)


def _check_depth(depth: int) -> int:
    if int(depth) != depth or depth < 1:
        raise ConfigError(f"depth must be an integer >= 1, got {depth}")
    return int(depth)


def _weights(seqs: Sequences, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(len(seqs))
    w = np.asarray(weights, dtype=float)
    if w.shape != seqs.lengths.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("sequence weights must be finite, non-negative, one per sequence, with a positive sum")
    return w


def prefix_matrix(seqs: Sequences, depth: int) -> np.ndarray:
    """The pruned-leaf key of every sequence: its first ``depth`` tokens, with ``V`` for EOS/padding."""
    depth = _check_depth(depth)
    n, width = seqs.tokens.shape
    keys = np.full((n, depth), seqs.vocab, dtype=np.int64)
    take = min(depth, width)
    block = seqs.tokens[:, :take]
    keys[:, :take] = np.where(block >= 0, block, seqs.vocab)
    return keys


def _group(keys: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of ``keys`` (sorted lexicographically) and the inverse index of each row."""
    depth = keys.shape[1]
    if depth * np.log2(base) < 63:
        powers = base ** np.arange(depth - 1, -1, -1, dtype=np.int64)
        codes = keys @ powers
        uniq, inverse = np.unique(codes, return_inverse=True)
        rows = (uniq[:, None] // powers) % base
        return rows, inverse.ravel()
    rows, inverse = np.unique(keys, axis=0, return_inverse=True)
    return rows, inverse.ravel()


def prune(seqs: Sequences, depth: int, weights: np.ndarray | None = None) -> tuple[Leaves, np.ndarray]:
    """Leaves of the tree pruned at ``depth`` and, for every sequence, the index of its leaf.

    ``weights`` (one per sequence, default 1) stand in for repeated sequences.
    """
    w = _weights(seqs, weights)
    keys, inverse = _group(prefix_matrix(seqs, depth), seqs.vocab + 1)
    mass = np.bincount(inverse, weights=w, minlength=keys.shape[0])
    return Leaves(keys, mass / mass.sum(), int(depth), seqs.vocab), inverse


def build_tree(seqs: Sequences, depth: int, weights: np.ndarray | None = None) -> TokenTree:
    """Node weights at every depth ``0..depth`` (sequences that ended earlier drop out) and the leaves.

    One sort of the packed ``depth``-prefixes serves every depth: truncating sorted keys keeps them
    sorted, so each depth's nodes are runs found with one comparison pass.
    """
    w = _weights(seqs, weights)
    keys = prefix_matrix(seqs, depth)
    base = seqs.vocab + 1
    counts = [np.array([w.sum()])]
    if depth * np.log2(base) < 63:
        powers = base ** np.arange(depth - 1, -1, -1, dtype=np.int64)
        codes = keys @ powers
        order = np.argsort(codes, kind="stable")
        codes, w_sorted, lengths = codes[order], w[order], seqs.lengths[order]
        for t in range(1, depth + 1):
            alive = lengths >= t
            prefix = codes[alive] // powers[t - 1]
            starts = np.flatnonzero(np.r_[True, prefix[1:] != prefix[:-1]]) if prefix.size else prefix
            counts.append(np.add.reduceat(w_sorted[alive], starts) if prefix.size else np.zeros(0))
    else:
        for t in range(1, depth + 1):
            alive = seqs.lengths >= t
            if not alive.any():
                counts.append(np.zeros(0))
                continue
            _, inverse = _group(keys[alive, :t], base)
            counts.append(np.bincount(inverse, weights=w[alive]))
    leaves, _ = prune(seqs, depth, w)
    return TokenTree(counts, leaves)


def align(*tables: Leaves) -> tuple[np.ndarray, list[np.ndarray]]:
    """Put several leaf tables on their union of keys; returns the keys and one mass vector per table."""
    if not tables:
        raise ConfigError("no leaf tables to align")
    depth, vocab = tables[0].depth, tables[0].vocab
    if any(t.depth != depth or t.vocab != vocab for t in tables):
        raise ConfigError("leaf tables must share depth and vocabulary")
    stacked = np.concatenate([t.keys for t in tables])
    keys, inverse = _group(stacked, vocab + 1)
    out, start = [], 0
    for t in tables:
        mass = np.zeros(keys.shape[0])
        np.add.at(mass, inverse[start : start + t.n_leaves], t.masses)
        out.append(mass)
        start += t.n_leaves
    return keys, out


def load_token_file(path: str | Path) -> Sequences:
    """Read a token-id dataset: ``.npy`` (an (n, L) integer matrix, -1 padded) or text, one sequence per line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"file not found: {path}")
    if path.suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ConfigError(f"cannot read {path} as .npy: {err}") from None
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2:
            raise ConfigError(f"{path}: expected a 2-D token matrix, got shape {data.shape}")
        return as_sequences(data)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path} as text token ids ({type(err).__name__}); give a text file "
                          "(one sequence per line) or an .npy matrix") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        try:
            rows.append([int(p) for p in parts])
        except ValueError:
            raise ConfigError(f"{path}:{number}: non-integer token in {line.strip()[:40]!r}") from None
    return as_sequences(rows)
