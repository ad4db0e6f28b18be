"""Assumption A.7 on a real checkpoint: is the leaf-mass distribution of its pruned token tree
Pareto? Depth-``depth`` continuations are sampled at temperature 1 (leaves drawn in proportion to
their mass, so the fit corrects for size bias), fitted with a Pareto tail and tested against
lognormal and exponential alternatives; a synthetic Zipf sample checks that the corrected fit
recovers its exponent.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from harness.config import Preset, require, require_fits
from harness.experiment import Experiment
from harness.metrics import metric_row
from harness.runs import RunDir
from harness.verdicts import Prediction
from llm_bridge.common import (
    DEFAULT_MODEL,
    config_model,
    llm_runtime,
    model_tag,
    provenance,
    qualify_reference,
)
from toymodels.sweep import Runtime

SYNTHETIC_BYTES = 128  # per leaf and per sample of the synthetic check, with headroom


@dataclass(frozen=True, kw_only=True)
class LLMParetoConfig:
    model: str = DEFAULT_MODEL
    depth: int = 3  # tokens per leaf of the pruned token tree
    n_samples: int = 2000  # sampled sequences (leaves are drawn in proportion to their mass)
    prompt: str = ""  # context the tree grows from ("" = the BOS token alone)
    synthetic_alpha: float = 1.2
    synthetic_leaves: int = 20_000
    synthetic_samples: int = 20_000
    batch: int = 200
    seed: int = 42
    execution: Runtime = field(default_factory=llm_runtime)
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        require(self.model.strip() != "", "model must name a built-in checkpoint, a folder, a .gguf or a hub id")
        require(1 <= self.depth <= 16, "depth must be in 1..16")
        require(self.n_samples >= 50, "n_samples must be >= 50")
        require(self.synthetic_alpha > 0, "synthetic_alpha must be > 0")
        require(self.synthetic_samples >= 1000 and self.synthetic_leaves >= 100, "synthetic sizes too small")
        require(self.batch >= 1, "batch must be >= 1")
        # the synthetic recovery check holds about 115 B per leaf and per sample (measured)
        require_fits("synthetic_leaves", self.synthetic_leaves, SYNTHETIC_BYTES, "leaf masses")
        require_fits("synthetic_samples", self.synthetic_samples, SYNTHETIC_BYTES, "sampled leaves")


def sample_leaf_masses(adapter: Any, context: tuple[int, ...], depth: int, n: int, batch: int,
                       seed: int) -> np.ndarray:
    """Log-masses (nats) of ``n`` depth-``depth`` continuations sampled at temperature 1 (size-biased)."""
    from toymodels.interface import Example

    out = []
    for b in tqdm(range(0, n, batch), desc=f"llm pareto: sampling {n} leaves", unit="batch", file=sys.stderr):
        m = min(batch, n - b)
        # a sequence that ends (EOS) before ``depth`` is a leaf of the pruned tree too
        seqs = adapter.generate_batch([context] * m, depth, 1.0, seed + b)
        lps = adapter.token_logprobs([Example(context, tuple(s)) for s in seqs])
        out.extend(float(lp.sum()) for lp in lps)
    return np.asarray(out)


def run(config: LLMParetoConfig, run_dir: RunDir) -> dict[str, Any]:
    from llm_bridge.adapter import HFCausalLM, set_threads
    from llm_bridge.models import load_model
    from theory.pareto import fit_pareto, size_bias_recovery
    from toymodels.train import resolve_device

    device = config.execution.device
    resolve_device(device)
    set_threads(config.execution.threads or None)
    qualify_reference(run_dir, config)
    synth = run_dir.cell("synthetic", lambda: size_bias_recovery(
        config.synthetic_alpha, config.synthetic_leaves, config.synthetic_samples, config.seed))

    def compute() -> dict[str, Any]:
        loaded = load_model(config.model, device=device, trust_remote_code=config.trust_remote_code)
        run_dir.write_json("model.json", loaded.record)
        adapter = HFCausalLM(loaded.model, loaded.tokenizer, device=device, template="raw")
        context = adapter.prompt_ids(config.prompt) if config.prompt else (int(loaded.tokenizer.bos_token_id),)
        return {"log_mass": sample_leaf_masses(adapter, tuple(context), config.depth, config.n_samples,
                                               config.batch, config.seed)}

    log_mass = np.asarray(run_dir.cell("samples", compute)["log_mass"])
    # rescale before exponentiating: the fit is scale-invariant in the tail index
    scaled = np.exp(log_mass - log_mass.max())
    fit = fit_pareto(scaled, size_biased=True, discrete=False)
    rows = [metric_row("leaf_log_mass", v, "nats", seed=config.seed, x=i, depth=config.depth)
            for i, v in enumerate(log_mass)]
    rows += [metric_row(k, v, "exponent", seed=config.seed, sample="synthetic") for k, v in synth.items()]
    rows += [metric_row("alpha", fit.alpha, "exponent", seed=config.seed, depth=config.depth),
             metric_row("x_min_log", float(np.log(fit.x_min) + log_mass.max()), "nats", seed=config.seed,
                        depth=config.depth)]
    run_dir.write_metrics(rows)
    predictions = pareto_predictions(fit)
    error = synth["alpha_corrected"] - synth["alpha_true"]
    failures = [] if abs(error) <= 0.15 * synth["alpha_true"] else [
        f"size-bias-corrected fit on synthetic Zipf data gave alpha {synth['alpha_corrected']:.3f}, "
        f"true {synth['alpha_true']:.3f} (tolerance 15%)"]
    return {"predictions": predictions, "fit": fit.to_dict(), "synthetic": synth, "depth": config.depth,
            "n_samples": config.n_samples, "instrument_failures": failures,
            "provenance": provenance(config, run_dir)}


def pareto_predictions(fit: Any) -> list[Prediction]:
    """Vuong tests of the fitted tail against each alternative: exploratory readings of one sample
    (the paper states the Pareto shape as an assumption, A.7, not as a prediction)."""
    predictions = []
    for name, test in fit.tests.items():
        # Vuong: z = mean * sqrt(n_eff) / sd, so the 95% interval of the mean is mean * (1 +- 1.96 / z)
        half = abs(test.mean_ratio) * 1.96 / abs(test.z) if test.z else float("inf")
        predictions.append(Prediction(
            id=f"pareto.power_law_over_{name}", value=test.mean_ratio,
            ci=(test.mean_ratio - half, test.mean_ratio + half), n_runs=1,
            measure=f"size-bias-weighted mean log-likelihood ratio per tail leaf, power law minus {name} (Vuong)",
            method="Vuong normal interval over the Kish effective sample size of one sample",
            p_value=test.p_value, extra={"n_eff": test.n_eff, "n_tail_leaves": fit.n_tail}))
    return predictions


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "llm.pareto") -> list[Prediction]:
    """The Pareto fit and its tests, redone from a metrics table's sampled leaf log-masses."""
    from theory.pareto import fit_pareto

    log_mass = np.array([r["value"] for r in rows if r["measure"] == "leaf_log_mass"])
    return pareto_predictions(fit_pareto(np.exp(log_mass - log_mass.max()), size_biased=True, discrete=False))


def draw(run_dir: RunDir) -> None:
    from theory.figures import draw_size_biased_ccdf

    log_mass = np.array([r["value"] for r in run_dir.read_metrics() if r["measure"] == "leaf_log_mass"])
    if log_mass.size:
        draw_size_biased_ccdf(log_mass, run_dir.read_json("summary.json")["fit"],
                              run_dir.figures_dir / "pareto_ccdf.png",
                              f"pruned token tree of {model_tag(config_model(run_dir))}")


EXPERIMENT = Experiment(
    name="llm.pareto",
    help="Pareto fit of a real model's pruned token-tree leaf masses, with the size-bias correction",
    config_cls=LLMParetoConfig,
    presets={
        "cpu-micro": Preset({}, "depth 3, 2000 sampled leaves, synthetic recovery check (SmolLM2: 2 min)",
                           est_seconds=120),
        "paper": Preset({"depth": 4, "n_samples": 100_000, "execution.device": "cuda", "batch": 2000,
                         "execution.threads": 0},
                        "depth 4, 100k sampled leaves (GPU)", est_seconds=1800),
    },
    run=run, readings=readings, draw=draw,
    flags={"--model": "model", "--depth": "depth"}, default_preset="cpu-micro",
    units={"alpha": "Zipf rank exponent", "log_mass": "nats"},
)
