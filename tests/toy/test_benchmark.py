"""Speed of the toy training loop against a minimal nanoGPT-style loop, same model and batch; of
the batched probe against the per-pair probe it replaced; of an ensemble of five models trained as
one batched model (``torch.func``) against the same five trained one by one.

Run with ``pytest tests/toy/test_benchmark.py --benchmark-enable -p no:randomly`` to compare; the
default suite runs each once as a test (--benchmark-disable). Nothing here asserts a wall time.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from torch.func import functional_call, stack_module_state, vmap

from toymodels import measures
from toymodels.corpus import Corpus
from toymodels.interface import Example, OptimizerSpec
from toymodels.model import GPT, flops_per_token, model_config
from toymodels.tasks import ToyTask
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


# --- probing: the exact score of 256 held-out prompts, as the rebound sweep takes it after every step
PROBE_TASK = ToyTask(CORPUS, "sentiment")
PROBE_CONTRASTS = PROBE_TASK.contrasts(PROBE_TASK.eval_prompts(256, seed=0))
PROBE_MODEL = ToyLM(model_config("100k", CORPUS.vocab_size, CORPUS.seq_len), seed=0)


PROBE_LAYOUT = measures.ContrastSet.of(PROBE_CONTRASTS)


def batched_probe() -> np.ndarray:
    """The package's probe: the set laid out once, each distinct prompt run once, vectorised sums."""
    return measures.contrast_scores(PROBE_MODEL, PROBE_LAYOUT).log_odds


@torch.no_grad()
def per_pair_probe() -> np.ndarray:
    """The probe before the speed work: every (prompt, continuation) pair its own row, one array
    per pair, a log-sum-exp per prompt."""
    pairs, sizes = [], []
    for c in PROBE_CONTRASTS:
        pairs += [Example(c.prompt_ids, r) for r in (*c.aligned, *c.misaligned)]
        sizes.append((len(c.aligned), len(c.misaligned)))
    inputs, targets = encode(pairs)
    logp = torch.log_softmax(PROBE_MODEL.net(inputs).float(), dim=-1)
    keep = targets != IGNORE
    picked = logp.gather(2, targets.clamp(min=0)[..., None])[..., 0]
    seq = np.array([picked[i][keep[i]].double().numpy().sum() for i in range(len(pairs))])
    out, pos = [], 0
    for n_a, n_m in sizes:
        out.append(logsumexp(seq[pos : pos + n_a]) - logsumexp(seq[pos + n_a : pos + n_a + n_m]))
        pos += n_a + n_m
    return np.array(out)


@pytest.mark.benchmark(group="toy-probe")
def test_batched_probe(benchmark):
    np.testing.assert_allclose(benchmark(batched_probe), per_pair_probe(), rtol=0, atol=1e-5)


@pytest.mark.benchmark(group="toy-probe")
def test_per_pair_probe(benchmark):
    assert len(benchmark(per_pair_probe)) == len(PROBE_CONTRASTS)


# --- ensembles: five 100k models, 20 steps each, as one batched model or one by one
MEMBERS, ENSEMBLE_SIZE = 5, "100k"
MEMBER_BATCHES = [encode(CORPUS.task_examples("sentiment", BATCH * STEPS, aligned=True, seed=m))
                  for m in range(MEMBERS)]


def _members() -> list[GPT]:
    cfg = model_config(ENSEMBLE_SIZE, CORPUS.vocab_size, CORPUS.seq_len)
    torch.manual_seed(0)
    return [GPT(cfg) for _ in range(MEMBERS)]


def _loss(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1), ignore_index=IGNORE)


def sequential_members() -> torch.Tensor:
    """The five trained one by one; returns their token embeddings, stacked."""
    members = _members()
    for m, model in enumerate(members):
        opt = torch.optim.AdamW(model.parameters(), lr=SPEC.lr, betas=SPEC.betas, weight_decay=0.0)
        inputs, targets = MEMBER_BATCHES[m]
        for s in range(STEPS):
            _loss(model, inputs[s * BATCH : (s + 1) * BATCH], targets[s * BATCH : (s + 1) * BATCH]).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return torch.stack([model.tok.weight.detach() for model in members])


def vmap_ensemble() -> torch.Tensor:
    """The five as one model: stacked weights, one vmapped forward and backward, one AdamW step."""
    members = _members()
    params, buffers = stack_module_state(members)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    template = copy.deepcopy(members[0])
    opt = torch.optim.AdamW(params.values(), lr=SPEC.lr, betas=SPEC.betas, weight_decay=0.0)
    inputs = torch.stack([b[0] for b in MEMBER_BATCHES])
    targets = torch.stack([b[1] for b in MEMBER_BATCHES])

    def member_loss(p, b, x, y):
        return _loss(lambda z: functional_call(template, (p, b), (z,), tie_weights=True), x, y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # on CPU, vmap runs the attention kernel one member at a time
        for s in range(STEPS):
            window = slice(s * BATCH, (s + 1) * BATCH)
            vmap(member_loss)(params, buffers, inputs[:, window], targets[:, window]).sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return params["tok.weight"].detach()


@pytest.mark.benchmark(group="toy-ensemble")
def test_sequential_members(benchmark):
    assert benchmark(sequential_members).shape[0] == MEMBERS


@pytest.mark.benchmark(group="toy-ensemble")
def test_vmap_ensemble(benchmark):
    """Each member ends where it ends when trained alone, within float32 rounding (1e-4)."""
    together = benchmark(vmap_ensemble)
    alone = sequential_members()
    print(f"max |ensemble - alone| = {float((together - alone).abs().max()):.2e} over the embeddings")
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-4)
