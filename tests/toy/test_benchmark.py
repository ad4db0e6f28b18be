"""Speed of the toy training loop against a minimal nanoGPT-style loop, same model and batch.

Run with ``pytest tests/toy/test_benchmark.py --benchmark-enable -p no:randomly`` to compare; the
default suite runs each once as a test (--benchmark-disable). Nothing here asserts a wall time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from toymodels.corpus import Corpus
from toymodels.interface import OptimizerSpec
from toymodels.model import GPT, flops_per_token, model_config
from toymodels.train import IGNORE, ToyLM, encode

SIZE, BATCH, STEPS = "600k", 16, 20
CORPUS = Corpus()
EXAMPLES = CORPUS.task_examples("sentiment", BATCH * STEPS, aligned=True, seed=0)
SPEC = OptimizerSpec(lr=1e-3, batch_size=BATCH)


def _config():
    return model_config(SIZE, CORPUS.vocab_size, CORPUS.seq_len)


def toy_loop() -> int:
    lm = ToyLM(_config(), seed=0)
    log, _ = lm.fit(EXAMPLES, np.arange(len(EXAMPLES)), SPEC, None)
    return log.steps


def reference_loop() -> int:
    """nanoGPT's train.py inner loop, minus the extras: forward, loss, backward, clip, step."""
    torch.manual_seed(0)
    model = GPT(_config())
    opt = torch.optim.AdamW(model.parameters(), lr=SPEC.lr, betas=SPEC.betas, weight_decay=0.0)
    inputs, targets = encode(EXAMPLES)
    vocab = model.cfg.vocab_size
    for s in range(STEPS):
        x, y = inputs[s * BATCH : (s + 1) * BATCH], targets[s * BATCH : (s + 1) * BATCH]
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, vocab), y.view(-1), ignore_index=IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return STEPS


def matmul_peak() -> int:
    """The CPU's dense float32 matmul throughput, the ceiling for the fraction reported."""
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    for _ in range(20):
        a @ b
    return 20


@pytest.mark.benchmark(group="toy-train-loop")
def test_toy_training_loop(benchmark):
    steps = benchmark(toy_loop)
    assert steps == STEPS
    tokens = len(EXAMPLES) * (CORPUS.seq_len - 1)
    benchmark.extra_info.update(tokens=tokens, flops=tokens * flops_per_token(_config(), CORPUS.seq_len))


@pytest.mark.benchmark(group="toy-train-loop")
def test_reference_nanogpt_loop(benchmark):
    assert benchmark(reference_loop) == STEPS
    tokens = len(EXAMPLES) * (CORPUS.seq_len - 1)
    benchmark.extra_info.update(tokens=tokens, flops=tokens * flops_per_token(_config(), CORPUS.seq_len))


@pytest.mark.benchmark(group="matmul-peak")
def test_matmul_peak(benchmark):
    assert benchmark(matmul_peak) == 20
    benchmark.extra_info.update(flops=20 * 2 * 512**3)
