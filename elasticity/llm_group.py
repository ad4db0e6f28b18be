"""``elasticity llm ...``: the resistance, rebound and Pareto experiments on real checkpoints, and
``make-data``, which builds the offline default data with a real model.

Resistance and rebound take ``--dry-run`` besides the shared flags (:func:`planned_command`): the
plan of the resolved config (:mod:`llm_bridge.plan`) is printed, as a table or with ``--json`` as
JSON, and nothing is loaded, launched or written (``--out`` and ``--update-reference`` are ignored).
It is handled here rather than in the shared command machinery, since only these two train a model.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from elasticity.command import (
    CommandFn,
    Parser,
    add_experiment_arguments,
    experiment_command,
    group_main,
    resolved_config,
    run_from_args,
)
from harness.atomic import dumps
from harness.experiment import load_object
from harness.runner import EXIT_OK

GIB = 2**30
MEMORY_WIDTHS = (-16, 4, 3, -8, -5, 8, 8, 8, 8, 8, 8, 8)
MEMORY_COLUMNS = ("weights", "gradients", "optimizer", "activations", "activations_checkpointed", "total",
                  "total_checkpointed")


def planned_command(path: str) -> CommandFn:
    """The command of the Experiment at ``"module:attribute"``, with ``--dry-run``."""

    def command(argv: Sequence[str], prog: str) -> int:
        experiment = load_object(path)
        parser = Parser(prog=prog, description=experiment.help)
        add_experiment_arguments(parser, experiment)
        add_plan_arguments(parser)
        args = parser.parse_args(argv)
        if not args.dry_run or args.list_presets or args.print_config:
            return run_from_args(experiment, args)
        from llm_bridge.plan import make_plan

        preset, config = resolved_config(experiment, args)
        plan = make_plan(experiment.name, preset, config, args.accelerate_config, args.num_processes)
        if args.json:
            print(dumps(plan), end="")
        else:
            print(plan_text(plan))
        return EXIT_OK

    return command


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dry run")
    group.add_argument("--dry-run", action="store_true",
                       help="print the plan (parameters, steps, tokens, memory per GPU, time) from the model's "
                       "config.json alone and exit; nothing is loaded, launched or written")
    group.add_argument("--accelerate-config", metavar="FILE", action="append", default=[],
                       help="plan for this accelerate config (repeatable); default: the shipped ddp, fsdp and "
                       "deepspeed_zero3")
    group.add_argument("--num-processes", metavar="N", type=int, default=None,
                       help="GPUs under every accelerate config (default: each file's num_processes)")


def plan_text(plan: Mapping[str, Any]) -> str:
    """A plan as the tables ``--dry-run`` prints."""
    lora, sched = plan["lora"], plan["schedule"]
    embedding = f"input embedding {_count(plan['input_embedding'])}, {'tied' if plan['tied_embeddings'] else 'untied'}"
    fits = " + ".join(f"{fit['what']} {fit['steps']:,} steps / {fit['examples']:,} examples" for fit in sched["per_run"])
    lines = [
        f"{plan['experiment']}, preset {plan['preset']}: a plan (nothing loaded, launched or written)",
        f"model {plan['model']}: {plan['architecture']}, {_count(plan['parameters'])} parameters "
        f"({_count(plan['matmul_parameters'])} in matmuls; {embedding})",
        f"  LoRA r={lora['r']} on {','.join(lora['target_modules'])}: {_count(lora['parameters'])} trainable; "
        f"this config: {plan['finetune']} fine-tuning, dtype {plan['dtype']} (the {plan['precision']} rows), "
        f"gradient checkpointing {'on' if plan['gradient_checkpointing'] else 'off'}",
        f"schedule: {sched['runs']} run(s) x ({fits})",
        f"  = {sched['optimizer_steps']:,} optimizer steps, {sched['examples']:,} examples, <= "
        f"{_count(sched['max_tokens'])} tokens (max_length {sched['max_length']}; batch {sched['batch_size']} x "
        f"{sched['grad_accum']} grad accum per step); {sched['scored_sequences']:,} sequences scored or sampled",
        "memory per GPU, GiB (mb: sequences per forward pass; ckpt: with gradient checkpointing):",
        _row(("layout", "GPUs", "mb", "finetune", "dtype", "weights", "grads", "optim", "activ", "act-ckpt",
              "total", "tot-ckpt"), MEMORY_WIDTHS),
        *(_row((r["layout"], r["processes"], r["micro_batch"], r["finetune"], r["precision"],
                *(f"{r[c] / GIB:.1f}" for c in MEMORY_COLUMNS)), MEMORY_WIDTHS) for r in plan["memory"]),
        *time_lines(plan["time"]),
        "bf16: mixed precision, 16 bytes per trainable parameter (DeepSpeed: bf16 weights and gradients, fp32 "
        "master weights; otherwise fp32 weights under autocast); fp16 takes bf16's bytes; fp32: no autocast.",
    ]
    return "\n".join(lines)


def time_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Hours per GPU type and precision, one column per (work, GPU count)."""
    columns = list(dict.fromkeys((r["work"], r["processes"]) for r in rows))
    hours = {(r["gpu"], r["precision"], r["work"], r["processes"]): r["hours"] for r in rows}
    widths = (-10, -5, *(9 for _ in columns))
    lines = ["hours at 40% MFU: training passes (6N FLOPs per token for full fine-tuning, 4N for LoRA, +2N with "
             "checkpointing) over N GPUs, and score (2N: the forward passes that score and sample, each rank all of "
             "them), every sequence at max_length:",
             _row(("gpu", "dtype", *(f"{ft} x{n}" for ft, n in columns)), widths)]
    for gpu, precision in dict.fromkeys((r["gpu"], r["precision"]) for r in rows):
        lines.append(_row((gpu, precision, *(f"{hours[gpu, precision, ft, n]:.2f}" for ft, n in columns)), widths))
    return lines


def _row(cells: Sequence[Any], widths: Sequence[int]) -> str:
    """Cells padded to ``widths``: a negative width aligns left (text), a positive one right (numbers)."""
    return "  " + " ".join(f"{c!s:<{-w}}" if w < 0 else f"{c!s:>{w}}" for c, w in zip(cells, widths, strict=True))


def _count(n: int) -> str:
    """2.51B, 13.0B, 131M: three significant figures."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:#.3g}".rstrip(".") + suffix
    return str(n)


def make_data_command(argv: Sequence[str], prog: str) -> int:
    from llm_bridge.data import default_spec, make_data, ship, shipped_paths, shipped_sha256
    from llm_bridge.data_prompts import jobs
    from llm_bridge.models import sha256_file
    from llm_bridge.tasks import TASKS

    parser = Parser(
        prog=prog, description="Regenerate the default {prompt, response, label} data with a real chat model "
        "(seeded, cached; generation time is reported here, separately from any experiment) and say whether "
        "it matches the shipped data.")
    parser.add_argument("--task", action="append", choices=TASKS, help="task(s); default: all three")
    parser.add_argument("--generator", default="smollm2-135m", help="chat model that writes the data")
    parser.add_argument("--n-prompts", type=int, default=None, help="films / requests / instructions")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--force", action="store_true", help="regenerate even when cached")
    parser.add_argument("--ship", action="store_true",
                        help="replace the package's shipped data with the result (maintainers)")
    args = parser.parse_args(argv)
    specs = [default_spec(task, seed=args.seed, generator=args.generator, n_prompts=args.n_prompts)
             for task in args.task or TASKS]
    for spec in specs:  # every task's prompts are drawn, and their limits checked, before a model loads
        jobs(spec.task, spec.n_prompts, spec.seed)
    for spec in specs:
        task = spec.task
        path = make_data(spec, force=args.force)
        digest = sha256_file(path)
        shipped = shipped_sha256(task) if shipped_paths(task)[1].exists() else None
        if args.ship:
            ship(path)
        print(json.dumps({"task": task, "records": str(path), "sha256": digest, "shipped_sha256": shipped,
                          "matches_shipped": digest == shipped, "shipped_now": args.ship}))
    return 0


COMMANDS = {
    "resistance": ("forward vs inverse fine-tuning between alignment checkpoints (paper Table 1)",
                   planned_command("llm_bridge.resistance:EXPERIMENT")),
    "rebound": ("alignment amount vs decay under reverse fine-tuning (paper Fig. 4, Table 3)",
                planned_command("llm_bridge.rebound:EXPERIMENT")),
    "mitigations": ("does anything make alignment stick? SFT, replay, anchor, Vaccine, DPO, SimPO under rebound",
                    experiment_command("llm_bridge.mitigations:EXPERIMENT")),
    "pareto": ("Pareto fit of a real model's pruned token-tree masses (Assumption A.7)",
               experiment_command("llm_bridge.pareto:EXPERIMENT")),
    "make-data": ("generate the offline default data with a real model (seeded, cached)", make_data_command),
}


def main(argv: Sequence[str] | None = None, prog: str = "elasticity llm") -> int:
    return group_main(prog, "Resistance, rebound and Pareto checks on real Hugging Face checkpoints.", argv, COMMANDS)
