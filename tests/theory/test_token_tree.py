"""Token trees: the vectorised builder against the dict-per-node reference, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from tests.theory.reference_impl import dict_tree_leaves
from theory.token_tree import align, as_sequences, build_tree, load_token_file, prune
from theory.worlds import World, sample_components


def random_sequences(n: int, vocab: int, max_len: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, max_len + 1, size=n)
    # a skewed token law makes shared prefixes common
    p = 1.0 / np.arange(1, vocab + 1)
    return [list(rng.choice(vocab, size=int(m), p=p / p.sum())) for m in lengths]


def as_dict(leaves) -> dict[tuple[int, ...], float]:
    return {tuple(int(t) for t in row): float(m) for row, m in zip(leaves.keys, leaves.masses, strict=True)}


@pytest.mark.parametrize("depth", [1, 3, 6])
@pytest.mark.parametrize("vocab", [2, 5])
def test_pruned_leaves_match_reference(depth, vocab):
    seqs = random_sequences(400, vocab, 8, seed=depth * 10 + vocab)
    fast = as_dict(prune(as_sequences(seqs, vocab), depth)[0])
    ref = dict_tree_leaves(seqs, depth, vocab)
    assert fast.keys() == ref.keys()
    for key in ref:
        assert fast[key] == pytest.approx(ref[key], rel=1e-12)


def test_weights_stand_in_for_repeats():
    seqs = random_sequences(50, 4, 6, seed=3)
    w = np.arange(1, 51, dtype=float)
    repeated = [s for s, k in zip(seqs, w, strict=True) for _ in range(int(k))]
    a = as_dict(prune(as_sequences(seqs, 4), 4, weights=w)[0])
    b = as_dict(prune(as_sequences(repeated, 4), 4)[0])
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k]) for k in a)


def test_node_weights_per_depth():
    seqs = [[0, 1, 1], [0, 1], [0], [1, 0, 0, 1], []]
    tree = build_tree(as_sequences(seqs, 2), depth=3)
    assert tree.node_counts[0].tolist() == [5.0]
    assert sorted(tree.node_counts[1].tolist()) == [1.0, 3.0]  # "0" carries three, "1" one
    assert sorted(tree.node_counts[2].tolist()) == [1.0, 2.0]  # "01" two, "10" one
    assert tree.leaves.masses.sum() == pytest.approx(1.0)
    assert tree.leaves.n_leaves == 5  # EOS at root, at "0", at "01", node "011", node "100"


def test_wide_keys_fall_back_to_row_grouping():
    seqs = random_sequences(300, 200, 12, seed=5)  # 201**12 does not fit in 63 bits
    fast = as_dict(prune(as_sequences(seqs, 200), 12)[0])
    assert fast == pytest.approx(dict_tree_leaves(seqs, 12, 200))


def test_align_puts_tables_on_union():
    a, _ = prune(as_sequences([[0, 1], [1]], 2), 2)
    b, _ = prune(as_sequences([[1], [1, 1]], 2), 2)
    keys, (ma, mb) = align(a, b)
    assert keys.shape[0] == 3 and ma.sum() == pytest.approx(1) and mb.sum() == pytest.approx(1)


def test_world_sampling_equals_tree_of_materialised_sequences():
    world = World.make(0, 1.2, vocab=8, n_types=500, seq_len=10)
    sample = sample_components(world, 4, k=20.0, n_align=200, l_max=0.1, max_pretrain=10**6,
                               kind="pretrain", similarity=1.0, seed=0)
    # redraw D_a's counts the same way and materialise the sequences
    counts = np.random.default_rng(np.random.SeedSequence([0, 5])).multinomial(200, world.popularity["align"])
    idx = np.repeat(np.arange(500), counts)
    leaves, _ = prune(world.sequences, 4)
    materialised, _ = prune(as_sequences(world.sequences.tokens[idx], 8), 4)
    keys, (from_sample, from_sequences) = align(
        type(leaves)(leaves.keys, sample.components.a, 4, 8), materialised)
    np.testing.assert_allclose(from_sample, from_sequences, atol=1e-15)


@pytest.mark.parametrize("bad, message", [
    ([], "empty dataset"),
    ([[0, 1.5]], "non-integer"),
    ([[0, -3]], "negative"),
    (np.zeros((0, 4), dtype=int), "empty dataset"),
])
def test_bad_sequences(bad, message):
    with pytest.raises(ConfigError, match=message):
        as_sequences(bad)


def test_bad_depth_and_vocab():
    seqs = as_sequences([[0, 1]], 2)
    with pytest.raises(ConfigError, match="depth"):
        prune(seqs, 0)
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        as_sequences([[0, 5]], 3)


def test_token_file_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 five 6\n")
    with pytest.raises(ConfigError, match="bad.txt:2: non-integer"):
        load_token_file(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_token_file(tmp_path / "missing.txt")
    npy = tmp_path / "x.npy"
    np.save(npy, np.array([[0.5, 1.0]]))
    with pytest.raises(ConfigError, match="integers"):
        load_token_file(npy)
    good = tmp_path / "good.txt"
    good.write_text("1 2 3\n\n4,5\n")
    assert len(load_token_file(good)) == 2


def test_node_weights_match_reference_counts():
    seqs = random_sequences(300, 3, 7, seed=11)
    for vocab_wide in (False, True):
        vocab = 300 if vocab_wide else 3  # 301**6 does not fit in 63 bits: the fallback path
        tree = build_tree(as_sequences(seqs, vocab), 6)
        for t in range(1, 7):
            ref: dict[tuple[int, ...], int] = {}
            for s in seqs:
                if len(s) >= t:
                    ref[tuple(s[:t])] = ref.get(tuple(s[:t]), 0) + 1
            assert sorted(tree.node_counts[t].tolist()) == sorted(float(v) for v in ref.values())
