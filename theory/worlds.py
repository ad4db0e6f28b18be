"""Where D_p, D_a and D_t come from, at the two levels of the simulation.

**Distribution level**: exact leaf masses, no tree behind them. ``P_p`` is Zipf(alpha) over ``M``
leaves; ``P_a`` and the *novel* distribution are the same law on independent random orderings of the
leaves (alignment and novel data make different leaves popular); *unseen* puts a Zipf law on ``M``
further leaves that D_p and D_a never touch.

**Sampled level**: a world of ``n_types`` token sequences over a vocabulary of ``V`` tokens (tokens
drawn from a skewed law, so sequences share prefixes; random lengths, so some end before the
pruning depth and give EOS leaves). Each role (pre-training, alignment, novel) is a Zipf(alpha)
popularity over the types in its own random order. Datasets are finite samples: ``|D_a| = n_align``,
``|D_t| = round(l_max * n_align)``, ``|D_p| = k * n_align`` sequences, of which at most
``max_pretrain_samples`` are drawn and weighted up to stand in for the rest. A pre-training-like
perturbation is a *fresh* sample from the pre-training popularity, not the same distribution object.

Identical sequences give identical leaves, so a sample is drawn as counts per type and pruned by
the token-tree builder with those counts as weights (the same leaves as building the tree from the
materialised sequences; a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.config import require, require_fits
from harness.errors import ConfigError
from theory.mixture import Components
from theory.pareto import zipf_masses
from theory.token_tree import Sequences, prune

PERTURBATIONS = ("pretrain", "align", "novel", "unseen", "mix")


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def perturbation_mix(kind: str, similarity: float) -> tuple[float, str]:
    """(weight of the pre-training-like part, the other part) of a perturbation kind.

    ``mix`` is ``s * pretrain-like + (1 - s) * novel``: similarity ``s = 1`` is pre-training-like.
    """
    if kind not in PERTURBATIONS:
        raise ConfigError(f"unknown perturbation '{kind}'; choose from {', '.join(PERTURBATIONS)}")
    if not 0.0 <= similarity <= 1.0:
        raise ConfigError(f"similarity must be in [0, 1], got {similarity}")
    return {"pretrain": (1.0, "novel"), "align": (0.0, "align"), "novel": (0.0, "novel"),
            "unseen": (0.0, "unseen"), "mix": (similarity, "novel")}[kind]


def distribution_components(alpha: float, n_leaves: int, kind: str, seed: int,
                            similarity: float = 1.0) -> Components:
    """Exact leaf masses of the three datasets at the distribution level."""
    if n_leaves < 2:
        raise ConfigError(f"n_leaves must be >= 2, got {n_leaves}")
    share, other = perturbation_mix(kind, similarity)
    z = zipf_masses(alpha, n_leaves)
    rng = _rng(seed, 1)
    p, a = z, z[rng.permutation(n_leaves)]
    if other == "unseen":
        pad = np.zeros(n_leaves)
        p, a = np.r_[p, pad], np.r_[a, pad]
        rest = np.r_[pad, z]
    elif other == "align":
        rest = a
    else:
        rest = z[rng.permutation(n_leaves)]
    t = p if share == 1.0 else share * p + (1.0 - share) * rest
    return Components(p, a, t / t.sum())


# Peaks measured with tracemalloc, rounded up for headroom: a distribution-level leaf holds about
# 960 B (LEAF_BYTES), a token of a sampled type about 22 B (TOKEN_BYTES).
LEAF_BYTES = 1024
TOKEN_BYTES = 32


@dataclass(frozen=True, kw_only=True)
class WorldSpec:
    """Where the theory experiments draw their datasets from: the ``world`` block of their configs.

    Distribution level: ``n_leaves`` leaves. Sampled level: ``n_types`` sequences over ``vocab``
    tokens, at most ``seq_len`` long; at most ``max_pretrain_samples`` D_p sequences are drawn and
    weighted up to stand in for the rest.
    """

    n_leaves: int = 4096
    vocab: int = 16
    n_types: int = 16384
    seq_len: int = 16
    max_pretrain_samples: int = 200_000

    def __post_init__(self) -> None:
        require(self.n_leaves >= 2 and self.vocab >= 2 and self.n_types >= 2 and self.seq_len >= 1,
                "n_leaves, vocab and n_types must be >= 2 and seq_len >= 1")
        require(self.max_pretrain_samples >= 1, "max_pretrain_samples must be >= 1")
        require_fits("world.n_leaves", self.n_leaves, LEAF_BYTES, "leaf masses")
        require_fits("world.n_types", self.n_types, TOKEN_BYTES * self.seq_len, "sampled sequences")

    def check_alignment_sample(self, n_align: int) -> None:
        """At the sampled level, D_a may not be sampled more finely than D_p, which stands in for k
        times as many sequences with at most ``max_pretrain_samples`` draws."""
        require(n_align <= self.max_pretrain_samples,
                f"n_align = {n_align} is more than world.max_pretrain_samples = {self.max_pretrain_samples}: "
                "D_p (k times larger) would be sampled more coarsely than D_a")

    def make(self, seed: int, alpha: float) -> World:
        """The sampled-level world of ``seed`` with Zipf(``alpha``) popularities."""
        return World.make(seed, alpha, self.vocab, self.n_types, self.seq_len)


@dataclass(frozen=True)
class World:
    """A generator of token sequences with a Zipf(alpha) popularity over types for each role."""

    sequences: Sequences
    popularity: dict[str, np.ndarray]  # role -> probability of each type

    @classmethod
    def make(cls, seed: int, alpha: float, vocab: int, n_types: int, seq_len: int) -> World:
        if vocab < 2 or n_types < 2 or seq_len < 1:
            raise ConfigError("need vocab >= 2, n_types >= 2 and seq_len >= 1")
        rng = _rng(seed, 2)
        token_law = zipf_masses(1.0, vocab)  # skewed tokens: common prefixes are shared
        tokens = rng.choice(vocab, size=(n_types, seq_len), p=token_law)
        lengths = rng.integers(1, seq_len + 1, size=n_types)
        tokens[np.arange(seq_len)[None, :] >= lengths[:, None]] = -1
        z = zipf_masses(alpha, n_types)
        popularity = {role: z[_rng(seed, 3, i).permutation(n_types)]
                      for i, role in enumerate(("pretrain", "align", "novel"))}
        return cls(Sequences(tokens, lengths, vocab), popularity)

    def leaf_index(self, depth: int) -> tuple[np.ndarray, int]:
        """The pruned leaf of every type at ``depth`` and the number of leaves the world has there."""
        leaves, inverse = prune(self.sequences, depth)
        return inverse, leaves.n_leaves

    def true_components(self, depth: int) -> Components:
        """The generator's exact pruned-leaf masses with ``P_t = P_p`` (the exact reference)."""
        inverse, m = self.leaf_index(depth)
        p = np.bincount(inverse, weights=self.popularity["pretrain"], minlength=m)
        a = np.bincount(inverse, weights=self.popularity["align"], minlength=m)
        return Components(p, a, p)


@dataclass(frozen=True)
class Sample:
    """Empirical leaf distributions of finite D_p, D_a, D_t and what they stand for."""

    components: Components
    n_pretrain_drawn: int
    n_perturb: int
    world_leaves: int  # leaves of the world's pruned tree (tree size)


def sample_components(world: World, depth: int, k: float, n_align: int, l_max: float,
                      max_pretrain: int, kind: str, similarity: float, seed: int) -> Sample:
    """Draw D_p, D_a, D_t as counts per sequence type and prune them at ``depth``.

    D_a and D_t do not depend on ``k`` (same seed), so a sweep over ``k`` changes only D_p.
    """
    if n_align < 1:
        raise ConfigError(f"n_align must be >= 1, got {n_align}")
    share, other = perturbation_mix(kind, similarity)
    if other == "unseen":
        raise ConfigError("the 'unseen' perturbation exists at the distribution level only; "
                          "at the sampled level unseen leaves arise from sampling (see unseen_mass_share)")
    inverse, m = world.leaf_index(depth)
    n_p = int(min(max(round(k * n_align), 1), max_pretrain))
    n_t = max(int(round(l_max * n_align)), 1)
    pop = world.popularity
    counts_p = _rng(seed, 4, int(round(k * 1000))).multinomial(n_p, pop["pretrain"])
    counts_a = _rng(seed, 5).multinomial(n_align, pop["align"])
    t_law = share * pop["pretrain"] + (1.0 - share) * pop[other]
    counts_t = _rng(seed, 6).multinomial(n_t, t_law / t_law.sum())

    def leaf_masses(counts: np.ndarray) -> np.ndarray:
        mass = np.bincount(inverse, weights=counts.astype(float), minlength=m)
        return mass / mass.sum()

    comps = Components(leaf_masses(counts_p), leaf_masses(counts_a), leaf_masses(counts_t))
    return Sample(comps, n_p, n_t, m)
