"""``elasticity llm ...``: the resistance, rebound and Pareto experiments on real checkpoints, and
``make-data``, which builds the offline default data with a real model."""

from __future__ import annotations

import json
from collections.abc import Sequence

from elasticity.command import Parser, experiment_command, group_main


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
                   experiment_command("llm_bridge.resistance:EXPERIMENT")),
    "rebound": ("alignment amount vs decay under reverse fine-tuning (paper Fig. 4, Table 3)",
                experiment_command("llm_bridge.rebound:EXPERIMENT")),
    "pareto": ("Pareto fit of a real model's pruned token-tree masses (Assumption A.7)",
               experiment_command("llm_bridge.pareto:EXPERIMENT")),
    "make-data": ("generate the offline default data with a real model (seeded, cached)", make_data_command),
}


def main(argv: Sequence[str] | None = None, prog: str = "elasticity llm") -> int:
    return group_main(prog, "Resistance, rebound and Pareto checks on real Hugging Face checkpoints.", argv, COMMANDS)
