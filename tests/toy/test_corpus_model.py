"""Unit tests: corpus ground truth, model shapes and sizes, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from toymodels.corpus import EOS, SEP, TASKS, Corpus, CorpusConfig
from toymodels.model import GPT, SIZE_PRESETS, model_config, n_params
from toymodels.tasks import ToyTask, make_tasks


def test_sequences_have_the_documented_layout():
    corpus = Corpus()
    for task in TASKS:
        for ex in corpus.task_examples(task, 20, aligned=True, seed=0):
            assert ex.prompt_ids[0] == corpus.task_token[task] and ex.prompt_ids[-1] == SEP
            assert ex.response_ids[-1] == EOS
            assert len(ex.prompt_ids) == corpus.prompt_len and len(ex.response_ids) == corpus.response_len
            assert max(ex.prompt_ids + ex.response_ids) < corpus.vocab_size


def test_attribute_is_read_exactly_from_the_first_response_token():
    corpus = Corpus()
    for task in TASKS:
        assert all(corpus.is_aligned(task, e.response_ids) for e in corpus.task_examples(task, 50, True, 1))
        assert not any(corpus.is_aligned(task, e.response_ids) for e in corpus.task_examples(task, 50, False, 1))


def test_pretraining_base_rate_matches_the_exact_rate():
    """Empirical aligned fraction in pre-training vs the exact mean pi(prompt): within 4 SE."""
    corpus = Corpus(CorpusConfig(pi0=0.3))
    examples = corpus.pretrain_examples(30_000, seed=3)
    for task in TASKS:
        tok = corpus.task_token[task]
        sel = [e for e in examples if e.prompt_ids[0] == tok]
        hits = np.array([corpus.is_aligned(task, e.response_ids) for e in sel], float)
        exact = np.mean([corpus.true_p_aligned(task, e.prompt_ids) for e in sel])
        se = np.sqrt(exact * (1 - exact) / len(sel))
        print(f"{task}: empirical {hits.mean():.4f} exact {exact:.4f} n={len(sel)} SE={se:.4f}")
        assert abs(hits.mean() - exact) < 4 * se


def test_corpus_is_seeded():
    a, b = Corpus(), Corpus()
    assert a.pretrain_examples(100, seed=5) == b.pretrain_examples(100, seed=5)
    assert a.pretrain_examples(100, seed=5) != a.pretrain_examples(100, seed=6)


def test_explicit_sizes_span_decades():
    corpus = Corpus()
    assert len(corpus.pretrain_examples(10_000, seed=0)) == 10_000
    assert len(corpus.task_examples("safety", 10, True, seed=0)) == 10  # k = 1000


def test_bad_inputs_are_config_errors():
    corpus = Corpus()
    with pytest.raises(ConfigError, match="unknown task"):
        ToyTask(corpus, "poetry")
    with pytest.raises(ConfigError, match="unknown task"):
        make_tasks(corpus, ["sentiment", "nope"])
    with pytest.raises(ConfigError, match="at least one example"):
        corpus.task_examples("sentiment", 0, True, seed=0)
    with pytest.raises(ConfigError):
        CorpusConfig(pi0=1.5)
    with pytest.raises(ConfigError, match="unknown model size"):
        model_config("1B", 10)


@pytest.mark.parametrize("size", list(SIZE_PRESETS))
def test_size_presets_span_50k_to_600k(size):
    corpus = Corpus()
    n = n_params(GPT(model_config(size, corpus.vocab_size, corpus.seq_len)))
    print(f"{size}: {n} parameters")
    assert 40_000 <= n <= 650_000


def test_forward_shapes_and_causality():
    cfg = model_config("50k", vocab_size=30, block_size=12)
    torch.manual_seed(0)
    net = GPT(cfg).eval()
    x = torch.randint(0, 30, (3, 12))
    logits = net(x)
    assert logits.shape == (3, 12, 30)
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 30  # changing later tokens must not change earlier logits
    assert torch.allclose(net(y)[:, :8], logits[:, :8], atol=1e-6)
    with pytest.raises(ValueError, match="block_size"):
        net(torch.zeros((1, 13), dtype=torch.long))
