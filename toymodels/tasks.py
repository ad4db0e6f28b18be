"""The task abstraction the protocols use: data for each direction, held-out prompts, contrasts.

A protocol never looks inside a task's data; it asks the task for token-id Examples and Contrasts.
:class:`ToyTask` implements it over a synthetic :class:`~toymodels.corpus.Corpus`; an LLM task
(IMDb, BeaverTails, Alpaca) implements the same members over a tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from harness.config import require
from toymodels.corpus import TASKS, Corpus, check_task, check_tasks
from toymodels.interface import Contrast, Example


@runtime_checkable
class Task(Protocol):
    """What a protocol needs from a behaviour task."""

    name: str
    max_new_tokens: int  # response length to generate when a checkpoint answers a prompt

    def forward_data(self, n: int, seed: int) -> list[Example]:
        """``n`` aligned examples (the alignment / positive direction)."""
        ...

    def reverse_data(self, n: int, seed: int) -> list[Example]:
        """``n`` misaligned examples (the reverse / negative direction)."""
        ...

    def neutral_data(self, n: int, seed: int, skip: int = 0) -> list[Example]:
        """``n`` examples that push neither way (the shared warm-up, format controls, replay), after
        passing over ``skip`` of them (a task whose examples do not depend on the seed needs it to
        keep two uses apart)."""
        ...

    def preference_data(self, n: int, seed: int, avoid: Sequence[Example] = ()
                        ) -> tuple[list[Example], list[Example]]:
        """``n`` preference pairs: aligned (chosen) and misaligned (rejected) responses, prompt by
        prompt, the chosen ones ``forward_data``'s as far as the data allow and no rejected one among
        ``avoid`` (the reverse data a protocol trains on later, so that a preference method is never
        taught to push down the very examples that then undo it)."""
        ...

    def eval_prompts(self, n: int, seed: int) -> list[tuple[int, ...]]:
        """``n`` held-out prompts (token ids) for scores and for generated datasets."""
        ...

    def contrasts(self, prompts: Sequence[tuple[int, ...]]) -> list[Contrast]:
        """The labelled contrast set of each prompt, for the exact behaviour score."""
        ...


# redraws of a rejected response before a corpus is judged too small to keep pairs and reverse data apart
MAX_REDRAWS = 100


class ToyTask:
    """A behaviour task of a synthetic corpus; the score is the mass on the aligned markers."""

    def __init__(self, corpus: Corpus, name: str):
        self.corpus = corpus
        self.name = check_task(name)
        self.max_new_tokens = corpus.response_len

    def forward_data(self, n: int, seed: int) -> list[Example]:
        return self.corpus.task_examples(self.name, n, aligned=True, seed=seed)

    def reverse_data(self, n: int, seed: int) -> list[Example]:
        return self.corpus.task_examples(self.name, n, aligned=False, seed=seed)

    def neutral_data(self, n: int, seed: int, skip: int = 0) -> list[Example]:
        # seeds keep a toy task's uses apart, so ``skip`` is not needed here;
        # the task's pre-training data: the attribute at its base rate, no push either way
        return self.corpus.pretrain_examples(n, seed=3_000_000 + seed, tasks=(self.name,))

    def preference_data(self, n: int, seed: int, avoid: Sequence[Example] = ()
                        ) -> tuple[list[Example], list[Example]]:
        chosen = self.forward_data(n, seed)
        rng = np.random.default_rng((self.corpus.config.seed, 41, TASKS.index(self.name), seed))
        prompts = [e.prompt_ids for e in chosen]
        rejected = self.corpus.respond(self.name, prompts, np.zeros(len(prompts), dtype=bool), rng)
        # fresh samples: one repeats an avoided example rarely (never in the toy presets), and is drawn again
        avoided = set(avoid)
        for i, example in enumerate(rejected):
            for _ in range(MAX_REDRAWS):
                if example not in avoided:
                    break
                example = self.corpus.respond(self.name, [prompts[i]], np.zeros(1, dtype=bool), rng)[0]
            require(example not in avoided, f"task {self.name}: every misaligned response drawn for a preference "
                    f"pair's prompt was a reverse example ({MAX_REDRAWS} draws); lengthen the responses")
            rejected[i] = example
        return chosen, rejected

    def eval_prompts(self, n: int, seed: int) -> list[tuple[int, ...]]:
        # a separate seed range from the one training prompts use
        return self.corpus.sample_prompts(self.name, n, seed=1_000_000 + seed)

    def contrasts(self, prompts: Sequence[tuple[int, ...]]) -> list[Contrast]:
        return [self.corpus.contrast(self.name, p) for p in prompts]

    def true_p_aligned(self, prompts: Sequence[tuple[int, ...]]) -> list[float]:
        """Ground truth: the pre-training base rate of the aligned attribute per prompt."""
        return [self.corpus.true_p_aligned(self.name, p) for p in prompts]


def make_tasks(corpus: Corpus, names: Sequence[str]) -> list[ToyTask]:
    """Toy tasks by name; an unknown name is a ConfigError."""
    check_tasks(names)
    return [ToyTask(corpus, n) for n in names]
