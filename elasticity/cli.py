"""``elasticity``: the one console script. Each group's module is imported only when used,
so ``elasticity theory --help`` needs neither torch nor transformers."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

# group -> (module with ``main(argv, prog) -> int``, one-line help)
GROUPS: dict[str, tuple[str, str]] = {
    "theory": ("elasticity.theory_group", "derivation, token-tree and Pareto simulations of the theorem (no torch)"),
    "toy": ("elasticity.toy_group", "toy Transformer experiments: resistance, rebound, scale, compression, lifecycle"),
    "llm": ("elasticity.llm_group", "the same protocols on real Hugging Face checkpoints"),
    "figures": ("elasticity.figures", "redraw every figure from saved metrics"),
    "reproduce": ("elasticity.reproduce", "theory checks and toy experiments in one run, with report.md"),
    "judge": ("elasticity.judge", "judge saved run folders (or metrics.csv files) with their experiment's readings"),
    "calibrate": ("elasticity.calibrate", "false-positive rate and power of every reading that issues a verdict"),
}

USAGE = """usage: elasticity [-h] [--version] COMMAND ...

Tests of "Language Models Resist Alignment: Evidence From Data Compression" (Ji et al., ACL 2025).

commands:
{commands}

Run `elasticity COMMAND --help` for each command's options, with their defaults.
Progress and run messages go to stderr (-q: warnings and errors only, -v: debug too) and into each
run folder's run.log; stdout holds results (--json keeps it to JSON).
Exit codes: 0 ran (a prediction that is not confirmed is a finding, not an error),
1 an identity or instrument check failed, 2 bad input."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {name:<10s} {help_}" for name, (_, help_) in GROUPS.items())
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.format(commands=listing))
        return 0
    if argv[0] == "--version":
        from harness.runs import package_versions

        print(f"elasticity {package_versions(['lm-elasticity'])['lm-elasticity']}")
        return 0
    if argv[0] not in GROUPS:
        print(f"elasticity: unknown command '{argv[0]}'; commands: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    module_name, _ = GROUPS[argv[0]]
    module = importlib.import_module(module_name)
    try:
        return int(module.main(argv[1:], f"elasticity {argv[0]}") or 0)
    except SystemExit as stop:  # argparse's --help (0) and its one-line usage errors (2)
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    except BrokenPipeError:
        # The reader went away (`elasticity theory derive | head`): stop quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
