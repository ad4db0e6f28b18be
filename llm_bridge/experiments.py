"""Resistance, rebound and Pareto on real Hugging Face checkpoints, over the toy protocols.

The models plug into the toy protocol code through :class:`llm_bridge.adapter.HFCausalLM` and the
tasks through :class:`llm_bridge.tasks.LLMTask`; the measures (``toymodels.measures``), the
rebound readings (``toymodels.protocols.rebound.rebound_metrics``), the checkpoint slicing and
sampling helpers and the figures (``toymodels.figures``) are the toy ones, and so are the rebound
protocol's two steps (``forward_checkpoints``, ``reverse_sweep``). The bridge arranges them in its
own two loops because it needs what the toy loops do not return (see :func:`rebound_arms` and
:func:`resistance_paths`):

- rebound: per-prompt scores for a paired bootstrap over prompts, a format-matched neutral
  forward control, and one adapter warm-up shared by every arm;
- resistance: per-prompt losses for a paired bootstrap over prompts.

``cpu-micro`` presets (the default) run on 2 CPU cores in minutes with LoRA and a higher LR than
the paper: they are their own regime, not the paper's. ``paper`` presets use the paper's SFT
settings (lr 1e-5 constant, 1 epoch, betas (0.9, 0.95), wd 0, seed 42, batch 4 x accum 8, max
length 2048 or 512 for sentiment, bf16 on GPU, full fine-tuning) and the paper's amounts.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from harness.config import Preset, require
from harness.errors import ConfigError
from harness.experiment import Experiment
from harness.metrics import metric_row
from harness.runs import RunDir
from harness.verdicts import Prediction, predict, verdict_from_ci

TEMPLATE_RULE = ("task template (raw for sentiment; chat for safety/instruction when the model has one), "
                 "rendered once per example; every score and KL compares weights on identical ids")


# ----- shared config pieces ----------------------------------------------------------------------
DEFAULT_MODEL = "smollm2-135m"


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[str], None]]:
    """A bar on stderr advanced once per finished phase; each phase's message stays above it as a log line."""
    with tqdm(total=total, desc=desc, unit="phase", file=sys.stderr) as bar:
        def done(message: str) -> None:
            bar.write(message, file=sys.stderr)
            bar.update()

        yield done


def model_tag(model: str) -> str:
    """A short file-safe name of a model: the built-in name, or the folder/file stem."""
    from pathlib import Path

    stem = model if "/" not in model and not model.endswith(".gguf") else Path(model.rstrip("/")).stem
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem)


def _config_model(run_dir: RunDir) -> str:
    config = run_dir.config
    return config["model"] if isinstance(config, Mapping) else config.model


def _qualify_reference(run_dir: RunDir, model: str) -> None:
    """Results of a non-default model are recorded under ``<experiment>.<model>`` (results.json key
    and figures/data folder), so SmolLM2 and Gemma 3 rebound results sit side by side."""
    if model != DEFAULT_MODEL:
        run_dir.reference_key = f"{run_dir.experiment}.{model_tag(model)}"
        run_dir.reference_args = f"--model {shlex.quote(model)}"


def _common_checks(config: Any) -> None:
    require(config.finetune in ("lora", "full"), "finetune must be lora or full")
    require(config.lr > 0, f"lr must be > 0, got {config.lr}")
    require(config.batch_size >= 1 and config.grad_accum >= 1, "batch_size and grad_accum must be >= 1")
    require(config.max_length >= 16, "max_length must be >= 16")
    require(config.threads >= 0, "threads must be >= 0 (0 = all cores)")
    require(config.lora_r >= 1, "lora_r must be >= 1")
    require(config.n_bootstrap >= 99, "n_bootstrap must be >= 99")


def _optimizer(config: Any):
    from toymodels.interface import OptimizerSpec

    return OptimizerSpec(lr=config.lr, betas=(0.9, 0.95), weight_decay=0.0, batch_size=config.batch_size,
                         grad_accum=config.grad_accum, max_grad_norm=config.max_grad_norm)


def _records(config: Any):
    from llm_bridge.data import default_records
    from llm_bridge.tasks import load_records

    if config.data:
        return load_records(config.data)
    t0 = time.perf_counter()
    records = default_records(config.task)
    print(f"default data for {config.task}: {len(records)} records ({time.perf_counter() - t0:.0f} s, "
          "generation time reported separately by make-data)", file=sys.stderr)
    return records


def _setup(config: Any, run_dir: RunDir, needs: Mapping[str, int]):
    """Load the model (record its weight hashes), build the adapter and the task.

    ``needs``: training examples per label that the protocol will draw, checked before the model loads.
    """
    from llm_bridge.adapter import HFCausalLM, LoraSpec, set_threads
    from llm_bridge.models import describe_source, load_model
    from llm_bridge.tasks import TEMPLATES, check_data, make_task

    describe_source(config.model)  # a bad model name fails before any data is generated
    set_threads(config.threads or None)
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but CUDA is not available")
    records = _records(config)
    check_data(config.task, records, config.n_eval, config.seed, needs)
    t0 = time.perf_counter()
    loaded = load_model(config.model, device=config.device, trust_remote_code=config.trust_remote_code)
    template = TEMPLATES[config.task] if loaded.record["has_chat_template"] else "raw"
    lora = LoraSpec(r=config.lora_r, alpha=2 * config.lora_r) if config.finetune == "lora" else None
    adapter = HFCausalLM(loaded.model, loaded.tokenizer, lora=lora, max_length=config.max_length,
                         device=config.device, seed=config.seed, template=template,
                         gradient_checkpointing=config.gradient_checkpointing)
    task = make_task(config.task, records, adapter, n_eval=config.n_eval, seed=config.seed)
    run_dir.write_json("model.json", {**loaded.record, "template": template, "template_rule": TEMPLATE_RULE,
                                      "tokenizer_fingerprint": adapter.tokenizer_fingerprint(),
                                      "load_seconds": round(time.perf_counter() - t0, 1)})
    return adapter, task


def paired_bootstrap(per_prompt: Mapping[str, np.ndarray], statistic: Callable[[Mapping[str, np.ndarray]], float],
                     n_resamples: int, seed: int) -> tuple[float, tuple[float, float], int]:
    """Statistic and 95% percentile interval, resampling prompts jointly across every array.

    ``per_prompt`` maps names to arrays whose first axis is the prompt; the same resampled prompts
    are used for every array (a paired bootstrap). Returns (value, ci, resamples that gave NaN).
    """
    value = float(statistic(per_prompt))
    n = next(iter(per_prompt.values())).shape[0]
    rng = np.random.default_rng((23, seed))
    draws = np.array([statistic({k: v[idx] for k, v in per_prompt.items()})
                      for idx in rng.integers(0, n, size=(n_resamples, n))])
    finite = draws[np.isfinite(draws)]
    if not np.isfinite(value) or finite.size < 0.5 * n_resamples:
        return value, (float("nan"), float("nan")), int(n_resamples - finite.size)
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return value, (float(lo), float(hi)), int(n_resamples - finite.size)


def bootstrap_prediction(pid: str, per_prompt: Mapping[str, np.ndarray], statistic: Callable,
                         sign: int, measure: str, n_resamples: int, seed: int, family: str,
                         note: str = "", **extra: Any) -> Prediction:
    value, ci, n_nan = paired_bootstrap(per_prompt, statistic, n_resamples, seed)
    n = int(next(iter(per_prompt.values())).shape[0])
    return Prediction(id=pid, verdict=verdict_from_ci(ci, sign), value=value, ci=ci, n_seeds=n,
                      measure=measure, method="paired percentile bootstrap over prompts", family=family,
                      note=note, extra={"n_prompts": n, "n_resamples": n_resamples,
                                        "resamples_nan": n_nan, **extra})


# ----- rebound -----------------------------------------------------------------------------------
ARMS = ("aligned", "neutral")


@dataclass
class ArmCurves:
    """Per-prompt scores of every arm at every reverse amount, and KL(theta0||model)."""

    forward_amounts: tuple[int, ...]
    reverse_amounts: tuple[int, ...]
    s0_log_odds: np.ndarray  # (n_prompts,) log-odds of theta0 (after the shared warm-up)
    log_odds: dict[str, np.ndarray] = field(default_factory=dict)  # arm -> (n_F, n_R, n_prompts)
    kl: dict[str, np.ndarray] = field(default_factory=dict)  # arm -> (n_F, n_R)
    forward_steps: list[int] = field(default_factory=list)
    reverse_steps: list[int] = field(default_factory=list)


def rebound_data_needs(spec: Any, warmup: int, neutral: bool) -> dict[str, int]:
    """Training examples per label that :func:`rebound_arms` draws (checked before a model loads)."""
    fwd = spec.forward_amounts
    return {"aligned": fwd[-1], "misaligned": spec.reverse_amounts[-1],
            "neutral": warmup + (fwd[-1] if neutral else 0)}


def rebound_arms(model: Any, task: Any, spec: Any, seed: int, *, warmup: int, neutral: bool,
                 progress: Callable[[str], None] = lambda s: None,
                 cache: Callable[[str, Callable[[], Any]], Any] = lambda key, compute: compute()) -> ArmCurves:
    """The toy rebound protocol (its ``forward_checkpoints`` and ``reverse_sweep``) with the
    controls the bridge needs.

    - A shared warm-up: ``warmup`` neutral-format examples (fresh optimizer, then discarded), so
      that no arm starts from a fresh LoRA (B = 0); theta0 and S0 are taken after it.
    - Every phase starts a fresh AdamW (forward slices continue one run, as in the toy loop), so
      the F = 0 control and the aligned arms handle the optimizer identically.
    - ``neutral``: a format-matched control arm per F, trained on neutral examples in the same
      template, then on the same reverse data in the same order.
    - Per-prompt log-odds are kept for every (arm, F, R), for a paired bootstrap over prompts.
    - ``cache(key, compute)`` caches each (arm, F) reverse sweep (a run folder's ``cell``), so an
      interrupted run resumes; the forward slices are recomputed, deterministically.
    """
    from toymodels import measures
    from toymodels.finetuning import epoch_order, sample_responses
    from toymodels.protocols.rebound import cumulative_steps, forward_checkpoints, reverse_sweep

    fwd, rev = spec.forward_amounts, spec.reverse_amounts
    needs = rebound_data_needs(spec, warmup, neutral)
    neutral_pool = task.neutral_data(needs["neutral"], seed=seed) if needs["neutral"] else []
    if warmup:
        model.fit(neutral_pool[:warmup], np.arange(warmup), spec.optimizer, None)
    theta0 = model.state_dict()
    prompts = task.eval_prompts(spec.n_eval, seed=seed)
    contrasts = task.contrasts(prompts)
    s0 = measures.contrast_scores(model, contrasts)
    ref_samples = sample_responses(model, prompts[: spec.n_kl_samples], task.max_new_tokens, 1.0, seed)
    kl_reference = (model.token_logprobs(ref_samples), ref_samples)

    reverse = task.reverse_data(needs["misaligned"], seed=seed)
    r_order = epoch_order(len(reverse), seed + 1)
    forward_sets = {"aligned": task.forward_data(needs["aligned"], seed=seed)}
    if neutral:
        forward_sets["neutral"] = neutral_pool[warmup:]
    curves = ArmCurves(tuple(fwd), tuple(rev), s0.log_odds,
                       forward_steps=cumulative_steps(fwd, spec.optimizer),
                       reverse_steps=cumulative_steps(rev, spec.optimizer))
    control: tuple[np.ndarray, np.ndarray] | None = None
    for arm, data in forward_sets.items():
        model.load_state_dict(theta0)
        states = forward_checkpoints(model, data, epoch_order(len(data), seed), fwd, spec.optimizer)
        log_odds = np.zeros((len(fwd), len(rev), len(prompts)))
        kl = np.zeros((len(fwd), len(rev)))
        for i, st in enumerate(states):
            if i == 0 and control is not None:  # F = 0 is the same control for every arm
                log_odds[0], kl[0] = control
                continue

            def sweep(st: dict[str, Any] = st) -> dict[str, Any]:
                model.load_state_dict(st)
                scores, kls = reverse_sweep(model, reverse, r_order, rev, spec.optimizer, contrasts, kl_reference)
                return {"log_odds": [sc.log_odds for sc in scores], "kl": kls}

            done = cache(f"sweep-{arm}-F{fwd[i]}", sweep)
            log_odds[i], kl[i] = np.asarray(done["log_odds"]), np.asarray(done["kl"])
            progress(f"{arm} F={fwd[i]}: log-odds {log_odds[i, -1].mean():+.3f} at R={rev[-1]}")
            if i == 0:
                control = (log_odds[0].copy(), kl[0].copy())
        curves.log_odds[arm], curves.kl[arm] = log_odds, kl
    model.load_state_dict(theta0)
    return curves


def curves_for(curves: ArmCurves, arm: str, idx: np.ndarray | None = None, spec: Any = None):
    """The toy ``ReboundCurves`` (means over the chosen prompts) of one arm, for ``rebound_metrics``."""
    from toymodels.measures import Scores
    from toymodels.protocols.rebound import ReboundCurves

    scores = Scores(curves.log_odds[arm] if idx is None else curves.log_odds[arm][..., idx])
    s0 = Scores(curves.s0_log_odds if idx is None else curves.s0_log_odds[idx])
    return ReboundCurves(spec, s0.mean_prob, s0.mean_log_odds, scores.p.mean(-1), scores.log_odds.mean(-1),
                         curves.kl[arm], curves.forward_steps, curves.reverse_steps)


# The toy rebound's predictions (toymodels.protocols.rebound.PREDICTIONS) are reused as they are;
# the bridge adds the Table 3 reading and the format-matched neutral control.
BRIDGE_REBOUND_PREDICTIONS = (
    # id, metric, statistic, predicted sign, description
    ("rebound.table3_reverse_to_eps_decreases_with_F", "table3_reverse_to_eps", "trend", -1,
     "slope of the reverse amount that brings KL(theta0||model) under eps, vs log10 F (Table 3)"),
    ("rebound.initial_rate_vs_neutral_control", "initial_rate_log_odds", "vs_neutral", 1,
     "initial log-odds decay rate, aligned minus format-matched neutral forward arm, mean over F > 0"),
    ("rebound.initial_rate_vs_neutral_control.prob", "initial_rate_prob", "vs_neutral", 1,
     "initial probability decay rate, aligned minus format-matched neutral forward arm, mean over F > 0"),
)


def _rebound_statistic(curves: ArmCurves, spec: Any, key: str, stat: str) -> Callable:
    from toymodels.protocols.rebound import rebound_metrics, trend_in_f

    def statistic(sample: Mapping[str, np.ndarray]) -> float:
        idx = sample["prompt"]
        aligned = rebound_metrics(curves_for(curves, "aligned", idx, spec))
        if stat == "trend":
            return trend_in_f(aligned, key)
        if stat == "mean":
            vals = [m[key] for f, m in aligned.items() if f > 0 and np.isfinite(m[key])]
            return float(np.mean(vals)) if vals else float("nan")
        neutral = rebound_metrics(curves_for(curves, "neutral", idx, spec))
        diffs = [aligned[f][key] - neutral[f][key] for f in aligned if f > 0]
        return float(np.nanmean(diffs)) if np.any(np.isfinite(diffs)) else float("nan")

    return statistic


@dataclass(frozen=True)
class LLMReboundConfig:
    model: str = "smollm2-135m"
    task: Literal["sentiment", "safety", "instruction"] = "sentiment"
    data: str = ""  # {prompt, response, label} JSONL or saved datasets folder; "" = generated default
    finetune: Literal["lora", "full"] = "lora"
    lora_r: int = 8
    lr: float = 5e-4
    batch_size: int = 2
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    max_length: int = 512
    forward_amounts: tuple[int, ...] = (0, 6, 12, 24)
    reverse_amounts: tuple[int, ...] = (0, 4, 8, 16, 32)
    warmup_examples: int = 4
    neutral_control: bool = True
    n_eval: int = 24
    n_kl_samples: int = 8
    kl_eps: float = 0.01
    n_bootstrap: int = 999
    seed: int = 42
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int = 2
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _common_checks(self)
        require(self.warmup_examples >= 0, "warmup_examples must be >= 0")
        require(self.n_kl_samples <= self.n_eval, "n_kl_samples must be <= n_eval (KL prompts are eval prompts)")
        self.spec()

    def spec(self):
        from toymodels.protocols.rebound import ReboundSpec

        return ReboundSpec(self.forward_amounts, self.reverse_amounts, self.n_eval, self.n_kl_samples,
                           self.kl_eps, _optimizer(self))


def run_rebound(config: LLMReboundConfig, run_dir: RunDir) -> dict[str, Any]:
    from toymodels.measures import Scores
    from toymodels.protocols.rebound import PREDICTIONS, rebound_metrics

    spec = config.spec()
    _qualify_reference(run_dir, config.model)

    def compute() -> dict[str, Any]:
        adapter, task = _setup(config, run_dir,
                               rebound_data_needs(spec, config.warmup_examples, config.neutral_control))
        n_sweeps = len(spec.forward_amounts) + (len(spec.forward_amounts) - 1 if config.neutral_control else 0)
        with progress_bar(n_sweeps, "llm rebound: reverse sweeps") as progress:
            c = rebound_arms(adapter, task, spec, config.seed, warmup=config.warmup_examples,
                             neutral=config.neutral_control, progress=progress, cache=run_dir.cell)
        return {"s0_log_odds": c.s0_log_odds, "log_odds": c.log_odds, "kl": c.kl, "forward_steps": c.forward_steps,
                "reverse_steps": c.reverse_steps}

    raw = run_dir.cell("scores", compute)  # resumable: a finished measurement is not redone
    curves = ArmCurves(spec.forward_amounts, spec.reverse_amounts, np.asarray(raw["s0_log_odds"]),
                       {k: np.asarray(v) for k, v in raw["log_odds"].items()},
                       {k: np.asarray(v) for k, v in raw["kl"].items()}, raw["forward_steps"], raw["reverse_steps"])
    rows = _rebound_rows(config, curves, spec)
    run_dir.write_metrics(rows)
    n = len(curves.s0_log_odds)
    per_prompt = {"prompt": np.arange(n)}
    family = "llm rebound: 9 predictions (4 readings x 2 score scales + Table 3); no correction"
    predictions = []
    for pid, key, stat, sign, desc in (*PREDICTIONS, *BRIDGE_REBOUND_PREDICTIONS):
        if stat == "vs_neutral" and "neutral" not in curves.log_odds:
            continue
        predictions.append(bootstrap_prediction(pid, per_prompt, _rebound_statistic(curves, spec, key, stat),
                                                sign, desc, config.n_bootstrap, config.seed, family))
    per_arm = {arm: {str(f): m for f, m in rebound_metrics(curves_for(curves, arm, None, spec)).items()}
               for arm in curves.log_odds}
    s0 = Scores(curves.s0_log_odds)
    return {"predictions": predictions, "per_F": per_arm, "s0_prob": s0.mean_prob, "s0_log_odds_nats": s0.mean_log_odds,
            "forward_steps": curves.forward_steps, "reverse_steps": curves.reverse_steps,
            "examples_per_step": config.batch_size * config.grad_accum,
            "regime": _regime(config), "template_rule": TEMPLATE_RULE}


def _regime(config: Any) -> str:
    if config.finetune == "lora":
        return (f"LoRA r={config.lora_r}, lr {config.lr:g} constant, batch {config.batch_size}x{config.grad_accum}: "
                "a CPU-micro regime, not the paper's (full fine-tuning, lr 1e-5, batch 4x8)")
    return f"full fine-tuning, lr {config.lr:g} constant, batch {config.batch_size}x{config.grad_accum}"


def _rebound_rows(config: LLMReboundConfig, curves: ArmCurves, spec: Any) -> list[dict[str, Any]]:
    """Rows in the toy rebound's condition format, so ``toymodels.figures.draw_rebound`` draws them;
    the neutral arm is the pseudo-task ``<task>+neutral-forward`` (its F = 0 row is the shared control)."""
    from toymodels.protocols.rebound import metric_unit, rebound_metrics

    rows = []
    seed = config.seed
    for arm in curves.log_odds:
        name = config.task if arm == "aligned" else f"{config.task}+neutral-forward"
        c = curves_for(curves, arm, None, spec)
        rows.append(metric_row("s0_prob", c.s0_prob, "prob", seed=seed, task=name))
        rows.append(metric_row("s0_log_odds", c.s0_log_odds, "nats", seed=seed, task=name))
        for i, f in enumerate(curves.forward_amounts):
            for j, r in enumerate(curves.reverse_amounts):
                cond = dict(task=name, F=f, steps_F=curves.forward_steps[i], steps_R=curves.reverse_steps[j])
                rows.append(metric_row("score_prob", c.prob[i, j], "prob", seed=seed, x=r, **cond))
                rows.append(metric_row("score_log_odds", c.log_odds[i, j], "nats", seed=seed, x=r, **cond))
                rows.append(metric_row("kl_theta0_model", c.kl_theta0_model[i, j], "nats/token", seed=seed,
                                       x=r, **cond))
                for p, value in enumerate(curves.log_odds[arm][i, j]):
                    rows.append(metric_row("prompt_log_odds", value, "nats", seed=seed,
                                           x=r, **cond, prompt=p))
        for f, m in rebound_metrics(c).items():
            for key, value in m.items():
                rows.append(metric_row(key, value, metric_unit(key), seed=seed, task=name, F=f))
    return rows


def _draw_rebound(run_dir: RunDir) -> None:
    from toymodels.figures import draw_rebound

    draw_rebound(run_dir, model_tag(_config_model(run_dir)))


# ----- resistance --------------------------------------------------------------------------------
def resistance_paths(model: Any, task: Any, spec: Any, seed: int,
                     progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """The Table 1 protocol of ``toymodels.protocols.resistance.run_resistance`` over the same public
    helpers, keeping per-prompt losses (step 0 and after the epoch) and generator self-losses so
    that a paired bootstrap over the shared prompts is possible."""
    from toymodels import measures
    from toymodels.finetuning import epoch_order, fit_slices
    from toymodels.protocols.resistance import answer_dataset

    theta0 = model.state_dict()
    aligned = task.forward_data(spec.n_align, seed=seed)
    sft = fit_slices(model, aligned, epoch_order(len(aligned), seed), spec.optimizer, spec.checkpoint_fractions)
    states = [theta0, *sft.states]
    prompts = task.eval_prompts(spec.n_queries, seed=seed)
    contrasts = task.contrasts(prompts)
    datasets, self_loss, scores = {}, {}, []
    for i, st in enumerate(states):
        model.load_state_dict(st)
        scores.append(measures.contrast_scores(model, contrasts).mean_prob)
        if i == 0:
            continue
        datasets[i] = answer_dataset(model, prompts, spec.temperature, task.max_new_tokens, seed * 100 + i)
        self_loss[i] = measures.per_example_loss(model, datasets[i])
        progress(f"checkpoint {i}: D_{i} generated, self-loss {self_loss[i].mean():.3f}")
    order = epoch_order(spec.n_queries, seed=seed + 1)
    paths: dict[str, dict[str, Any]] = {}
    for k, m in spec.pairs:
        for direction, start, target in (("forward", k, m), ("inverse", m, k)):
            model.load_state_dict(states[start])
            step0 = measures.per_example_loss(model, datasets[target])
            log, _ = model.fit(datasets[target], order, spec.optimizer, None)
            final = measures.per_example_loss(model, datasets[target])
            paths[f"{k}-{m}/{direction}"] = {
                "step0": step0, "final": final, "generator": self_loss[target], "losses": log.losses,
                "steps": log.steps, "mean_train_loss": log.mean_loss,
                "response_tokens": [len(e.response_ids) for e in datasets[target]],
            }
            progress(f"pair {k}-{m} {direction}: step-0 loss {step0.mean():.3f}, train mean {log.mean_loss:.3f}")
    model.load_state_dict(theta0)
    return {"checkpoint_steps": [0, *sft.steps_at], "checkpoint_scores": scores, "paths": paths}


@dataclass(frozen=True)
class LLMResistanceConfig:
    model: str = "smollm2-135m"
    task: Literal["sentiment", "safety", "instruction"] = "instruction"
    data: str = ""
    finetune: Literal["lora", "full"] = "lora"
    lora_r: int = 8
    lr: float = 5e-4
    batch_size: int = 2
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    max_length: int = 512
    n_align: int = 48
    checkpoint_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    n_queries: int = 24
    temperature: float = 0.05
    n_eval: int = 24  # held-out prompts; the shared query set Q is the first n_queries of them
    n_bootstrap: int = 999
    seed: int = 42
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int = 2
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _common_checks(self)
        require(self.n_queries <= self.n_eval, "n_queries must be <= n_eval (Q is drawn from held-out prompts)")
        require(len(self.checkpoint_fractions) == 3, "resistance uses three checkpoints theta1..theta3")
        total = -(-self.n_align // (self.batch_size * self.grad_accum))
        require(len({max(1, round(f * total)) for f in self.checkpoint_fractions}) == 3,
                f"n_align={self.n_align} gives {total} optimizer steps: too few for three distinct checkpoints")
        self.spec()

    def spec(self):
        from toymodels.protocols.resistance import ResistanceSpec

        return ResistanceSpec(self.n_align, self.checkpoint_fractions, self.n_queries, self.temperature,
                              _optimizer(self))


RESISTANCE_MEASURES = (
    ("excess_step0", -1, "inverse - forward KL-excess at step 0 (loss - generator self-loss, nats/token)"),
    ("excess_final", -1, "inverse - forward KL-excess after the epoch (nats/token)"),
    ("loss_step0", -1, "inverse - forward loss at step 0 (nats/token)"),
    ("loss_final", -1, "inverse - forward loss after the epoch (nats/token)"),
)


def _wmean(values: Sequence[float], weights: np.ndarray) -> float:
    return float(np.sum(np.asarray(values, float) * weights) / weights.sum())


def _per_prompt(path: Mapping[str, Any], measure: str) -> np.ndarray:
    when = measure.split("_")[1]
    values = np.asarray(path[when], float)
    return values - np.asarray(path["generator"], float) if measure.startswith("excess") else values


def run_resistance(config: LLMResistanceConfig, run_dir: RunDir) -> dict[str, Any]:
    spec = config.spec()
    _qualify_reference(run_dir, config.model)

    def compute() -> dict[str, Any]:
        adapter, task = _setup(config, run_dir, {"aligned": spec.n_align})
        with progress_bar(len(spec.checkpoint_fractions) + 2 * len(spec.pairs), "llm resistance") as progress:
            return resistance_paths(adapter, task, spec, config.seed, progress=progress)

    result = run_dir.cell("paths", compute)
    paths = result["paths"]
    cond = {"init": "pretrained", "task": config.task, "size": config.model, "T": config.temperature}
    rows = []
    for i, (st, sc) in enumerate(zip(result["checkpoint_steps"], result["checkpoint_scores"], strict=True)):
        rows.append(metric_row("checkpoint_p_aligned", sc, "prob", seed=config.seed, x=i, **cond))
        rows.append(metric_row("checkpoint_steps", st, "steps", seed=config.seed, x=i, **cond))
    for key, path in paths.items():
        pair, direction = key.split("/")
        c = dict(cond, pair=pair, path=direction)
        gen = np.asarray(path["generator"], float)
        tok = np.asarray(path["response_tokens"], float)
        # token-weighted means, as training measures loss; per-prompt values below
        summary = {"loss_step0_nats": _wmean(path["step0"], tok), "loss_final_nats": _wmean(path["final"], tok),
                   "generator_loss_nats": _wmean(gen, tok), "loss_mean_nats": path["mean_train_loss"]}
        summary["excess_step0_nats"] = summary["loss_step0_nats"] - summary["generator_loss_nats"]
        summary["excess_final_nats"] = summary["loss_final_nats"] - summary["generator_loss_nats"]
        summary["excess_mean_nats"] = summary["loss_mean_nats"] - summary["generator_loss_nats"]
        for name, value in summary.items():
            rows.append(metric_row(name, value, "nats", seed=config.seed, **c))
        rows.append(metric_row("steps", path["steps"], "steps", seed=config.seed, **c))
        for s, loss in enumerate(path["losses"]):
            rows.append(metric_row("train_loss", loss, "nats", seed=config.seed, x=s + 1, **c))
        for p, (a, b) in enumerate(zip(path["step0"], path["final"], strict=True)):
            rows.append(metric_row("prompt_loss_step0", a, "nats", seed=config.seed, **c, prompt=p))
            rows.append(metric_row("prompt_loss_final", b, "nats", seed=config.seed, **c, prompt=p))
    run_dir.write_metrics(rows)
    pairs = sorted({k.split("/")[0] for k in paths})
    family = "llm resistance: 4 measures over one set of paths; no correction, each with its own CI"
    predictions, counts = [], {}
    for measure, sign, desc in RESISTANCE_MEASURES:
        diffs = np.array([_per_prompt(paths[f"{p}/inverse"], measure) - _per_prompt(paths[f"{p}/forward"], measure)
                          for p in pairs])  # (n_pairs, n_prompts)
        per_prompt = diffs.mean(axis=0)
        counts[measure] = {"pairs_inverse_lower": int((diffs.mean(axis=1) < 0).sum()), "n_pairs": len(pairs),
                           "prompts_inverse_lower": int((per_prompt < 0).sum()), "n_prompts": int(per_prompt.size)}
        predictions.append(predict(f"resistance.{measure}.inverse_lower", per_prompt, sign,
                                   desc + ", per prompt, mean over the 3 pairs", method="bootstrap",
                                   seed=config.seed, family=family, **counts[measure]))
    steps = {k: v["steps"] for k, v in paths.items()}
    failures = [f"pair {p}: forward and inverse took different step counts"
                for p in pairs if steps[f"{p}/forward"] != steps[f"{p}/inverse"]]
    table = {p: {d: {m: float(np.mean(_per_prompt(paths[f'{p}/{d}'], m))) for m, _, _ in RESISTANCE_MEASURES}
                 | {"train_loss_mean": paths[f"{p}/{d}"]["mean_train_loss"]} for d in ("forward", "inverse")}
             for p in pairs}
    return {"predictions": predictions, "counts": counts, "table1_nats": table,
            "checkpoint_steps": result["checkpoint_steps"], "checkpoint_p_aligned": result["checkpoint_scores"],
            "steps_per_path": steps[f"{pairs[0]}/forward"], "examples_per_step": config.batch_size * config.grad_accum,
            "regime": _regime(config), "template_rule": TEMPLATE_RULE,
            "no_pretraining_control": "not run: a randomly initialised 135M model cannot answer; see toy.resistance",
            "instrument_failures": failures}


def _draw_resistance(run_dir: RunDir) -> None:
    from toymodels.figures import draw_resistance

    draw_resistance(run_dir)


# ----- Pareto ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LLMParetoConfig:
    model: str = "smollm2-135m"
    depth: int = 3  # tokens per leaf of the pruned token tree
    n_samples: int = 2000  # sampled sequences (leaves are drawn in proportion to their mass)
    prompt: str = ""  # context the tree grows from ("" = the BOS token alone)
    synthetic_alpha: float = 1.2
    synthetic_leaves: int = 20_000
    synthetic_samples: int = 20_000
    batch: int = 200
    seed: int = 42
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int = 2
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        require(1 <= self.depth <= 16, "depth must be in 1..16")
        require(self.n_samples >= 50, "n_samples must be >= 50")
        require(self.synthetic_alpha > 0, "synthetic_alpha must be > 0")
        require(self.synthetic_samples >= 1000 and self.synthetic_leaves >= 100, "synthetic sizes too small")
        require(self.batch >= 1 and self.threads >= 0, "batch must be >= 1 and threads >= 0")


def synthetic_recovery(alpha: float, n_leaves: int, n_samples: int, seed: int) -> dict[str, float]:
    """Sample leaves in proportion to their Zipf(alpha) mass, read each draw's mass, and fit with
    and without the size-bias correction; the corrected fit must recover ``alpha``."""
    from theory.pareto import fit_pareto, sample_ranks, zipf_masses

    rng = np.random.default_rng((29, seed))
    masses = zipf_masses(alpha, n_leaves)
    drawn = masses[sample_ranks(alpha, n_leaves, n_samples, rng)]
    corrected = fit_pareto(drawn, size_biased=True, discrete=False)
    naive = fit_pareto(drawn, size_biased=False, discrete=False)
    exact = fit_pareto(masses, discrete=False)
    return {"alpha_true": alpha, "alpha_corrected": corrected.alpha, "alpha_naive": naive.alpha,
            "alpha_all_leaves": exact.alpha}


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


def run_pareto(config: LLMParetoConfig, run_dir: RunDir) -> dict[str, Any]:
    from llm_bridge.adapter import HFCausalLM, set_threads
    from llm_bridge.models import load_model
    from theory.pareto import fit_pareto

    set_threads(config.threads or None)
    _qualify_reference(run_dir, config.model)
    synth = run_dir.cell("synthetic", lambda: synthetic_recovery(
        config.synthetic_alpha, config.synthetic_leaves, config.synthetic_samples, config.seed))

    def compute() -> dict[str, Any]:
        loaded = load_model(config.model, device=config.device, trust_remote_code=config.trust_remote_code)
        run_dir.write_json("model.json", loaded.record)
        adapter = HFCausalLM(loaded.model, loaded.tokenizer, device=config.device, template="raw")
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
    predictions = []
    for name, test in fit.tests.items():
        # Vuong: z = mean * sqrt(n_eff) / sd, so the 95% interval of the mean is mean * (1 +- 1.96 / z)
        half = abs(test.mean_ratio) * 1.96 / abs(test.z) if test.z else float("inf")
        ci = (test.mean_ratio - half, test.mean_ratio + half)
        predictions.append(Prediction(
            id=f"pareto.power_law_over_{name}", verdict=verdict_from_ci(ci, 1), value=test.mean_ratio, ci=ci,
            n_seeds=fit.n_tail,
            measure=f"size-bias-weighted mean log-likelihood ratio per tail leaf, power law minus {name} (Vuong)",
            method="Vuong normal interval over the Kish effective sample size",
            family="pareto: 2 alternatives; no correction", extra={"p_value": test.p_value, "n_eff": test.n_eff}))
    error = synth["alpha_corrected"] - synth["alpha_true"]
    failures = [] if abs(error) <= 0.15 * synth["alpha_true"] else [
        f"size-bias-corrected fit on synthetic Zipf data gave alpha {synth['alpha_corrected']:.3f}, "
        f"true {synth['alpha_true']:.3f} (tolerance 15%)"]
    return {"predictions": predictions, "fit": fit.to_dict(), "synthetic": synth, "depth": config.depth,
            "n_samples": config.n_samples, "instrument_failures": failures}


def _draw_pareto(run_dir: RunDir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run_dir.read_metrics()
    log_mass = np.array([r["value"] for r in rows if r["measure"] == "leaf_log_mass"])
    if log_mass.size == 0:
        return
    x = np.sort(np.exp(log_mass - log_mass.max()))[::-1]
    w = 1.0 / x  # size-bias correction: each draw stands for 1/mass leaves
    ccdf = np.cumsum(w) / w.sum()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.loglog(x, ccdf, ".", ms=3, label="sampled leaves, size-bias corrected")
    fit = run_dir.read_json("summary.json")["fit"]
    # the fitted tail P(X >= x) = P(X >= x_min) (x / x_min)^-b, anchored at the empirical value at x_min
    x_min, b = fit["x_min"], fit["tail_index"]
    tail_x = np.array([x_min, x[0]])
    anchor = float(np.interp(x_min, x[::-1], ccdf[::-1]))
    ax.loglog(tail_x, anchor * (tail_x / x_min) ** -b, "k--", lw=1,
              label=f"fitted power law: alpha {fit['alpha']:.2f} (tail index {b:.2f})")
    ax.set_xlabel("leaf mass (relative to the largest sampled)")
    ax.set_ylabel("P(leaf mass >= x), corrected")
    ax.legend(fontsize=8)
    ax.set_title(f"pruned token tree of {model_tag(_config_model(run_dir))}", fontsize=10)
    fig.tight_layout()
    fig.savefig(run_dir.figures_dir / "pareto_ccdf.png", dpi=110)
    plt.close(fig)


# ----- the Experiment objects --------------------------------------------------------------------
_FLAGS = {"--model": "model", "--task": "task", "--device": "device", "--lr": "lr", "--data": "data",
            "--finetune": "finetune"}
_PAPER = {"finetune": "full", "lr": 1e-5, "batch_size": 4, "grad_accum": 8, "max_grad_norm": 1.0,
          "max_length": 2048, "seed": 42, "device": "cuda", "warmup_examples": 0, "threads": 0}

REBOUND = Experiment(
    name="llm.rebound",
    help="Rebound on a real checkpoint: alignment amount F vs decay under reverse data (paper Fig. 4, Table 3)",
    config_cls=LLMReboundConfig,
    presets={
        "cpu-micro": Preset({}, "LoRA r=8, lr 5e-4, batch 2 (1 step = 2 examples), F in {0,6,12,24}, "
                            "R in {0,4,8,16,32}, 4-example shared warm-up, neutral control, 24 prompts "
                            "(measured on 2 idle cores: SmolLM2 8 min, Gemma 3 11 min; data generation not counted)",
                            est_seconds=600),
        "paper": Preset({**{k: v for k, v in _PAPER.items() if k != "max_length"}, "max_length": 512,
                         "batch_size": 1, "forward_amounts": (0, 1000, 2000, 5000, 10000),
                         "reverse_amounts": (0, 100, 200, 500, 1000, 2000), "n_eval": 256, "n_kl_samples": 128},
                        "the paper's IMDb SFT settings and amounts (GPU; needs that much data)", est_seconds=36000),
    },
    run=run_rebound, draw=_draw_rebound, flags=_FLAGS, default_preset="cpu-micro",
    units={"score": "probability and log-odds (nats)", "kl": "nats per response token"},
)

RESISTANCE = Experiment(
    name="llm.resistance",
    help="Resistance on a real checkpoint: forward vs inverse fine-tuning between SFT checkpoints (paper Table 1)",
    config_cls=LLMResistanceConfig,
    presets={
        "cpu-micro": Preset({}, "LoRA r=8, lr 5e-4, batch 2, 48 SFT examples (24 steps), checkpoints at "
                            "25/50/75%, 24 shared prompts at T=0.05, 12 steps per path "
                            "(SmolLM2 ~10 min on 2 idle cores; data generation not counted)", est_seconds=600),
        "paper": Preset({**{k: v for k, v in _PAPER.items() if k != "warmup_examples"}, "n_align": 10000,
                         "n_queries": 512, "n_eval": 512},
                        "the paper's SFT settings (GPU; needs that much data)", est_seconds=36000),
    },
    run=run_resistance, draw=_draw_resistance, flags=_FLAGS, default_preset="cpu-micro",
    units={"loss": "nats per response token", "score": "probability"},
)

PARETO = Experiment(
    name="llm.pareto",
    help="Pareto fit of a real model's pruned token-tree leaf masses, with the size-bias correction",
    config_cls=LLMParetoConfig,
    presets={
        "cpu-micro": Preset({}, "depth 3, 2000 sampled leaves, synthetic recovery check (SmolLM2: 2 min)",
                           est_seconds=120),
        "paper": Preset({"depth": 4, "n_samples": 100_000, "device": "cuda", "batch": 2000, "threads": 0},
                        "depth 4, 100k sampled leaves (GPU)", est_seconds=1800),
    },
    run=run_pareto, draw=_draw_pareto,
    flags={"--model": "model", "--device": "device", "--depth": "depth"}, default_preset="cpu-micro",
    units={"alpha": "Zipf rank exponent", "log_mass": "nats"},
)
