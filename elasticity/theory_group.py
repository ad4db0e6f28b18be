"""``elasticity theory ...``: derive, simulate, boundary, check, pareto-fit. No torch, no transformers."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from elasticity.command import Parser, experiment_command, group_main
from harness.errors import ConfigError
from harness.runner import EXIT_INSTRUMENT, EXIT_OK

# each leaf count is verified in sympy: 12 leaves take about two minutes on 2 cores, and it grows from there
MAX_VERIFIED_LEAVES = 12


def derive(argv: Sequence[str], prog: str) -> int:
    parser = Parser(prog=prog, description="print the sympy derivation, each step verified")
    parser.add_argument("--latex", action="store_true", help="LaTeX instead of pretty-printed text")
    parser.add_argument("--verify", default="M", help="leaf counts to verify each step for, e.g. M,2,3,4 "
                        "(M = symbolic; '' prints without verifying)")
    args = parser.parse_args(argv)
    from theory.derivation import render

    try:
        verify = tuple(None if v.strip() == "M" else int(v) for v in args.verify.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--verify takes M and leaf counts, e.g. M,2,3; got {args.verify!r}") from None
    if any(v is not None and not 2 <= v <= MAX_VERIFIED_LEAVES for v in verify):
        raise ConfigError(f"--verify leaf counts must be in 2..{MAX_VERIFIED_LEAVES}, got {args.verify!r}")
    print(render(latex=args.latex, verify=verify))
    return EXIT_OK


def check(argv: Sequence[str], prog: str) -> int:
    parser = Parser(prog=prog, description="run every theory check; exit 1 only if an exact one fails")
    parser.add_argument("--full", action="store_true", help="verify every sympy identity at M = 2, 3, 4 too")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    from theory.checks import format_checks, run_checks

    checks = run_checks(quick=not args.full)
    if args.json:
        print(json.dumps([vars(c) for c in checks], indent=2))
    else:
        print(format_checks(checks))
    failed = [c.name for c in checks if c.exact and not c.passed]
    if failed:
        print(f"{prog}: exact checks failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_INSTRUMENT
    return EXIT_OK


def pareto_fit(argv: Sequence[str], prog: str) -> int:
    parser = Parser(
        prog=prog, description="fit the pruned-tree leaf-mass distribution of a token-id dataset "
        "(one sequence per line, or an .npy matrix) with a Pareto tail, tested against lognormal "
        "and exponential")
    parser.add_argument("file", help="token ids: text (one sequence per line) or .npy")
    parser.add_argument("--depth", type=int, default=8, help="pruning depth d (default 8)")
    parser.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: max token + 1)")
    parser.add_argument("--figure", default=None, help="write the CCDF diagnostic PNG here")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON")
    args = parser.parse_args(argv)
    import numpy as np

    from theory.pareto import fit_pareto
    from theory.token_tree import as_sequences, load_token_file, prune

    if args.depth < 1:
        raise ConfigError(f"depth must be >= 1, got {args.depth}")
    seqs = load_token_file(args.file)
    if args.vocab is not None:
        seqs = as_sequences(seqs.tokens, args.vocab)
    leaves, inverse = prune(seqs, args.depth)
    counts = np.bincount(inverse)
    fit = fit_pareto(counts)
    result = {"file": str(args.file), "sequences": len(seqs), "depth": args.depth,
              "leaves": leaves.n_leaves, "fit_on": "leaf counts", **fit.to_dict()}
    if args.figure:
        from theory.figures import draw_pareto_ccdf

        draw_pareto_ccdf(counts, fit, Path(args.figure), title=f"{Path(args.file).name}, d={args.depth}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['sequences']} sequences, {result['leaves']} leaves at depth {args.depth}")
        print(f"Zipf alpha = {fit.alpha:.4g}  (Pareto tail index of the masses = {fit.tail_index:.4g}), "
              f"x_min = {fit.x_min:.4g} counts, {fit.n_tail} leaves in the tail, KS = {fit.ks:.3g}")
        for t in fit.tests.values():
            favours = "power law" if t.log_ratio > 0 else t.alternative
            print(f"  vs {t.alternative:<12s} R = {t.log_ratio:+.4g}, p = {t.p_value:.3g} "
                  f"(favours {favours}{'' if t.p_value < 0.1 else ', not significant'})")
    return EXIT_OK


COMMANDS = {
    "derive": ("print the sympy derivation (pretty or --latex), each step verified", derive),
    "simulate": ("Delta gamma_p, Delta gamma_a vs k on exact or sampled token trees",
                 experiment_command("theory.simulate:EXPERIMENT")),
    "boundary": ("map where Theta(-k) holds vs similarity, l_max, tree and sample size",
                 experiment_command("theory.boundary:EXPERIMENT")),
    "check": ("run every check; exit 1 only if an exact one fails", check),
    "pareto-fit": ("fit the leaf-mass distribution of a token-id dataset (FILE)", pareto_fit),
}


def main(argv: Sequence[str] | None = None, prog: str = "elasticity theory") -> int:
    return group_main(prog, "Derivation, token-tree and Pareto simulations of the elasticity theorem.",
                      argv, COMMANDS)
