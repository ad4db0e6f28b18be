"""Synthetic prompt -> response corpora whose behaviour attribute is known exactly.

Layout of every sequence (token ids)::

    prompt   = TASK c1 .. c_P SEP
    response = MARKER b1 .. b_L EOS

The first response token, a marker, fixes the attribute: each task has an aligned marker set and a
misaligned one, so P(aligned | prompt) is the mass on the aligned set (one forward pass). The body
b1..b_L is a Markov chain over the content tokens whose rows are Zipf distributions over a seeded
permutation, started at the last prompt token, with a different chain per (task, attribute): the
text has Zipf statistics and depends on the prompt and on the attribute.

In pre-training the aligned attribute has the base rate pi(prompt) = sigmoid(logit(pi0) + beta*s),
where s = +-1 is a fixed split of the first prompt token (so per-prompt scores differ). Alignment
data is all aligned, reverse data all misaligned. Dataset sizes are always explicit arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.config import require, require_fits
from harness.errors import ConfigError
from toymodels.interface import Contrast, Example

TASKS: tuple[str, ...] = ("sentiment", "safety", "format")
"""Analogues of the paper's IMDb (positive vs negative), BeaverTails (refuse vs comply on flagged
prompts) and Alpaca (follows a required format or not)."""

PAD, SEP, EOS = 0, 1, 2
N_SPECIAL = 3
N_MARKERS = 2  # markers per attribute and task

# random-stream ids, so that each purpose draws independent data from the same seed
_STREAMS = {"pretrain": 1, "aligned": 2, "misaligned": 3, "prompts": 4, "language": 5}


@dataclass(frozen=True, kw_only=True)
class CorpusConfig:
    """The generative 'language'. ``seed`` fixes the language, not the samples drawn from it."""

    n_content: int = 48
    zipf_alpha: float = 1.2
    prompt_len: int = 4
    response_len: int = 8
    pi0: float = 0.3
    prompt_effect: float = 1.0
    marker_skew: float = 0.7  # probability of the first marker within an attribute's set
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.n_content >= 8, f"n_content must be >= 8, got {self.n_content}")
        require(self.zipf_alpha > 0, f"zipf_alpha must be > 0, got {self.zipf_alpha}")
        require(self.prompt_len >= 1, f"prompt_len must be >= 1, got {self.prompt_len}")
        require(self.response_len >= 0, f"response_len must be >= 0, got {self.response_len}")
        require(0 < self.pi0 < 1, f"pi0 must be in (0, 1), got {self.pi0}")
        require(0 < self.marker_skew < 1, f"marker_skew must be in (0, 1), got {self.marker_skew}")


def check_task(name: str) -> str:
    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'; tasks: {', '.join(TASKS)}")
    return name


def check_tasks(names: Sequence[str]) -> None:
    """At least one task, each a known one, each once."""
    if not names:
        raise ConfigError(f"at least one task is needed; tasks: {', '.join(TASKS)}")
    for name in names:
        check_task(name)
    require(len(set(names)) == len(names), f"tasks must name each task once, got {', '.join(names)}")


# Bytes one example holds at its peak, while it is generated as Python tuples and encoded as int64
# tensors (measured: 465 B for a 16-token example); example counts are checked against the memory
# cap with this before anything runs.
EXAMPLE_BYTES = 512


def check_examples(key: str, count: int | Sequence[int]) -> None:
    """An example count (or the largest of a tuple of them) that fits in the memory cap."""
    require_fits(key, count, EXAMPLE_BYTES, "examples")


def check_pretraining_set(n_pretrain: int, pi0: float) -> None:
    """A toy config's pre-training set: a size that fits the memory cap, and a pi0 the corpus takes."""
    require(n_pretrain >= 1, f"n_pretrain must be >= 1, got {n_pretrain}")
    check_examples("n_pretrain", n_pretrain)
    CorpusConfig(pi0=pi0)


def zipf_probs(n: int, alpha: float) -> np.ndarray:
    """p_r proportional to r^-alpha for ranks r = 1..n."""
    p = np.arange(1, n + 1, dtype=float) ** -alpha
    return p / p.sum()


class Corpus:
    """A seeded language over ``vocab_size`` tokens, with exact attributes for every task."""

    def __init__(self, config: CorpusConfig = CorpusConfig()):
        self.config = config
        n_tasks = len(TASKS)
        self.task_token = {t: N_SPECIAL + i for i, t in enumerate(TASKS)}
        first_marker = N_SPECIAL + n_tasks
        self.aligned_markers: dict[str, tuple[int, ...]] = {}
        self.misaligned_markers: dict[str, tuple[int, ...]] = {}
        for i, t in enumerate(TASKS):
            base = first_marker + i * 2 * N_MARKERS
            self.aligned_markers[t] = tuple(range(base, base + N_MARKERS))
            self.misaligned_markers[t] = tuple(range(base + N_MARKERS, base + 2 * N_MARKERS))
        self.content_start = first_marker + n_tasks * 2 * N_MARKERS
        self.vocab_size = self.content_start + config.n_content
        self.eos_id = EOS
        self._build_language()

    @property
    def prompt_len(self) -> int:
        """Tokens per prompt: task token, content, separator."""
        return self.config.prompt_len + 2

    @property
    def response_len(self) -> int:
        """Tokens per data response: marker, body, end of sequence."""
        return self.config.response_len + 2

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.response_len

    def _build_language(self) -> None:
        cfg = self.config
        rng = np.random.default_rng((cfg.seed, _STREAMS["language"]))
        n = cfg.n_content
        ranks = zipf_probs(n, cfg.zipf_alpha)
        self._prompt_probs: dict[str, np.ndarray] = {}
        self._positive_half: dict[str, np.ndarray] = {}
        self._chain: dict[tuple[str, bool], np.ndarray] = {}
        for t in TASKS:
            self._prompt_probs[t] = ranks[np.argsort(rng.permutation(n))]
            self._positive_half[t] = rng.permutation(n) < n // 2
            for aligned in (True, False):
                rows = np.stack([ranks[np.argsort(rng.permutation(n))] for _ in range(n)])
                self._chain[(t, aligned)] = np.cumsum(rows, axis=1)

    def true_p_aligned(self, task: str, prompt_ids: Sequence[int]) -> float:
        """The pre-training base rate pi(prompt) of the aligned attribute (exact)."""
        check_task(task)
        first = prompt_ids[1] - self.content_start
        s = 1.0 if self._positive_half[task][first] else -1.0
        logit = np.log(self.config.pi0 / (1 - self.config.pi0)) + self.config.prompt_effect * s
        return float(1.0 / (1.0 + np.exp(-logit)))

    def sample_prompts(self, task: str, n: int, seed: int) -> list[tuple[int, ...]]:
        """``n`` prompts of ``task`` (seeded; held-out sets use a different seed)."""
        check_task(task)
        _check_n(n)
        rng = np.random.default_rng((self.config.seed, _STREAMS["prompts"], TASKS.index(task), seed))
        content = rng.choice(self.config.n_content, size=(n, self.config.prompt_len),
                             p=self._prompt_probs[task]) + self.content_start
        head, tail = self.task_token[task], SEP
        return [(head, *map(int, row), tail) for row in content]

    def respond(self, task: str, prompts: Sequence[tuple[int, ...]], aligned: np.ndarray,
                rng: np.random.Generator) -> list[Example]:
        """Responses with the given attributes (one bool per prompt)."""
        cfg = self.config
        n = len(prompts)
        which = rng.random(n) >= cfg.marker_skew
        markers = np.where(aligned, np.take(self.aligned_markers[task], which.astype(int)),
                           np.take(self.misaligned_markers[task], which.astype(int)))
        state = np.array([p[-2] - self.content_start for p in prompts])
        body = np.empty((n, cfg.response_len), dtype=int)
        u = rng.random((n, cfg.response_len))
        for j in range(cfg.response_len):
            for flag in (True, False):
                rows = aligned == flag
                cdf = self._chain[(task, flag)][state[rows]]
                state[rows] = np.minimum((cdf < u[rows, j : j + 1]).sum(axis=1), cfg.n_content - 1)
            body[:, j] = state
        body += self.content_start
        return [Example(tuple(p), (int(m), *map(int, b), EOS)) for p, m, b in zip(prompts, markers, body, strict=False)]

    def pretrain_examples(self, n: int, seed: int, tasks: Sequence[str] = TASKS) -> list[Example]:
        """``n`` pre-training sequences, tasks mixed uniformly, attribute ~ Bernoulli(pi(prompt))."""
        _check_n(n)
        tasks = [check_task(t) for t in tasks]
        rng = np.random.default_rng((self.config.seed, _STREAMS["pretrain"], seed))
        which = rng.integers(len(tasks), size=n)
        out: list[Example | None] = [None] * n
        for i, t in enumerate(tasks):
            idx = np.flatnonzero(which == i)
            if idx.size == 0:
                continue
            prompts = self.sample_prompts(t, idx.size, seed=10_000 + seed)
            p = np.array([self.true_p_aligned(t, q) for q in prompts])
            sub = np.random.default_rng((self.config.seed, _STREAMS["pretrain"], seed, i))
            for j, ex in zip(idx, self.respond(t, prompts, sub.random(idx.size) < p, sub), strict=False):
                out[j] = ex
        return out  # type: ignore[return-value]

    def task_examples(self, task: str, n: int, aligned: bool, seed: int) -> list[Example]:
        """``n`` examples of ``task``, all aligned (alignment data) or all misaligned (reverse data)."""
        check_task(task)
        _check_n(n)
        stream = _STREAMS["aligned" if aligned else "misaligned"]
        prompts = self.sample_prompts(task, n, seed=20_000 + 2 * seed + int(aligned))
        rng = np.random.default_rng((self.config.seed, stream, TASKS.index(task), seed))
        return self.respond(task, prompts, np.full(n, aligned), rng)

    def contrast(self, task: str, prompt_ids: Sequence[int]) -> Contrast:
        """The exact score's contrast set: the task's marker tokens as one-token continuations."""
        check_task(task)
        return Contrast(tuple(prompt_ids), tuple((m,) for m in self.aligned_markers[task]),
                        tuple((m,) for m in self.misaligned_markers[task]))

    def is_aligned(self, task: str, response_ids: Sequence[int]) -> bool | None:
        """The attribute read from a response's first token; None when it is no marker of ``task``."""
        if not response_ids:
            return None
        if response_ids[0] in self.aligned_markers[task]:
            return True
        if response_ids[0] in self.misaligned_markers[task]:
            return False
        return None


def _check_n(n: int) -> None:
    if not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"a dataset needs at least one example, got n={n}")
