"""The command machinery every group shares: a group of subcommands, and the flags of an experiment.

:func:`experiment_command` turns an :class:`~harness.experiment.Experiment` (imported only when
its command runs) into ``elasticity <group> <name> ...`` with the shared flags:
``--preset/--quick/--full``, ``--config FILE.toml``, ``--set key=value``, the experiment's own
flags such as ``--k``, ``--seed``, ``--list-presets``, ``--print-config``, ``--json``, ``--out``,
``--update-reference``. :func:`group_main` dispatches a group and maps the two error kinds to
their exit codes (bad input 2, a failed instrument check 1), each as one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.atomic import dumps
from harness.config import leaf_types, load_toml, parse_sets
from harness.errors import ConfigError, InstrumentError, one_line
from harness.experiment import Experiment, load_object
from harness.reference import require_clean_tree, update_reference
from harness.runner import EXIT_BAD_INPUT, EXIT_INSTRUMENT, EXIT_OK, execute

CommandFn = Callable[[Sequence[str], str], int]
# runs a model folder's own Python (transformers' trust_remote_code): only the command line turns it on
REMOTE_CODE = "trust_remote_code"
# flags that every config with an execution block gets
EXECUTION_FLAGS = {"--device": "execution.device", "--threads": "execution.threads",
                   "--n-jobs": "execution.n_jobs", "--backend": "execution.backend"}


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit 2, as every other bad input is."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def add_experiment_arguments(parser: argparse.ArgumentParser, experiment: Experiment) -> None:
    presets = parser.add_argument_group("presets and config")
    presets.add_argument("--preset", default=None, help=f"one of: {', '.join(experiment.presets)} "
                         f"(default {experiment.default_preset})")
    presets.add_argument("--quick", dest="preset_alias", action="store_const", const="quick",
                         help="alias of --preset quick")
    presets.add_argument("--full", dest="preset_alias", action="store_const", const="full",
                         help="alias of --preset full")
    presets.add_argument("--config", metavar="FILE.toml", help="config file (keys at the top or under [config]; "
                         "tables are blocks)")
    presets.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                         help=f"override a config key; keys: {', '.join(leaf_types(experiment.config_cls))}")
    presets.add_argument("--seed", type=int, default=None, help="base seed")
    keys = leaf_types(experiment.config_cls)
    flags = {**{flag: key for flag, key in EXECUTION_FLAGS.items() if key in keys}, **experiment.flags}
    for flag, key in flags.items():
        presets.add_argument(flag, dest=f"flag:{key}", metavar=key.rsplit(".", 1)[-1].upper(), default=None,
                             help=f"alias of --set {key}=...")
    presets.add_argument("--list-presets", action="store_true", help="list presets with estimated runtimes")
    presets.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    if REMOTE_CODE in keys:
        presets.add_argument("--trust-remote-code", action="store_true",
                             help="run the model folder's own Python code (only this flag turns it on; "
                             "a config file or --set cannot)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", default=None,
                        help="run folder; an existing one resumes if its config hash matches")
    output.add_argument("--json", action="store_true", help="print summary.json to stdout (logs go to stderr)")
    output.add_argument("--update-reference", action="store_true",
                        help="merge this run into figures/results.json and figures/")


def run_from_args(experiment: Experiment, args: argparse.Namespace) -> int:
    if args.list_presets:
        for name, preset in experiment.presets.items():
            print(f"{name:12s} ~{human_duration(preset.est_seconds):>8s}  {preset.help}")
        return EXIT_OK
    sets = parse_sets(args.set)
    for key, value in vars(args).items():
        if key.startswith("flag:") and value is not None:
            sets[key.removeprefix("flag:")] = value
    _refuse_remote_code(sets, load_toml(args.config) if args.config else {})
    if getattr(args, REMOTE_CODE, False):
        sets[REMOTE_CODE] = True
    preset = chosen_preset(args.preset, args.preset_alias) or experiment.default_preset
    config = experiment.resolve(preset, args.config, sets, args.seed)
    if args.print_config:
        print(dumps({"experiment": experiment.name, "preset": preset, "config": dataclasses.asdict(config)}), end="")
        return EXIT_OK
    commit = require_clean_tree() if args.update_reference else None  # checked before anything runs
    outcome = execute(experiment, config, out=args.out, preset=preset)
    if commit:
        update_reference(outcome.run, outcome.summary, preset, commit=commit)
    if args.json:
        print(dumps(outcome.summary), end="")
    else:
        print(format_summary(outcome.summary))
    print(f"run folder: {outcome.run.path} ({outcome.seconds:.1f} s)", file=sys.stderr)
    for failure in outcome.summary.get("instrument_failures", []):
        print(f"INSTRUMENT CHECK FAILED: {failure}", file=sys.stderr)
    return outcome.exit_code


def chosen_preset(preset: str | None, alias: str | None) -> str | None:
    """``--preset`` or its alias (``--quick``, ``--full``); a ConfigError when they disagree."""
    if preset and alias and preset != alias:
        raise ConfigError(f"--preset {preset} and --{alias} ask for different presets; give one")
    return preset or alias


def _refuse_remote_code(*layers: Mapping[str, Any]) -> None:
    """A shared config file or a --set must not run a model folder's code: only the flag may."""
    for layer in layers:
        if any(key.strip().replace("-", "_") == REMOTE_CODE for key in layer):
            raise ConfigError(f"{REMOTE_CODE} cannot be set in a config file or with --set: it runs the model "
                              "folder's own Python code, so it takes --trust-remote-code on the command line")


def _number(x: object) -> str:
    return f"{x:.4g}" if isinstance(x, float) else "-" if x is None else str(x)


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human table of a summary: primary readings with their raw and Holm-adjusted verdicts,
    then the exploratory readings (no verdict), then the exact checks (pass or fail)."""
    lines = [f"{summary['experiment']} (config {summary.get('config_hash')})"]
    predictions = summary.get("predictions", [])
    primary = [p for p in predictions if p.get("primary")]
    exploratory = [p for p in predictions if not p.get("primary")]
    for p in primary:
        ci = p.get("ci") or [None, None]
        lines.append(f"  {p['id']:<44s} {p.get('verdict')} / Holm {p.get('verdict_adjusted', '-')}  "
                     f"value={_number(p.get('value'))} CI=[{_number(ci[0])}, {_number(ci[1])}] "
                     f"n_runs={p.get('n_runs')} p={_number(p.get('p_value'))} "
                     f"p_adj={_number(p.get('p_adjusted'))}")
    for p in exploratory:
        ci = p.get("ci") or [None, None]
        lines.append(f"  {p['id']:<44s} exploratory  value={_number(p.get('value'))} "
                     f"CI=[{_number(ci[0])}, {_number(ci[1])}] n_runs={p.get('n_runs')} "
                     f"p(two-sided)={_number(p.get('p_value'))}")
    for c in summary.get("exact_checks", []):
        lines.append(f"  {c['id']:<44s} exact check: {'pass' if c.get('passed') else 'FAIL'}")
    return "\n".join(lines)


def experiment_command(path: str) -> CommandFn:
    """A command that imports the Experiment at ``"module:attribute"`` only when it runs."""

    def command(argv: Sequence[str], prog: str) -> int:
        experiment: Experiment = load_object(path)
        parser = Parser(prog=prog, description=experiment.help)
        add_experiment_arguments(parser, experiment)
        return run_from_args(experiment, parser.parse_args(argv))

    return command


def group_main(
    prog: str, description: str, argv: Sequence[str] | None,
    commands: Mapping[str, tuple[str, CommandFn]],
) -> int:
    """Dispatch ``prog <name> ...`` to one of ``commands`` (name -> (help, fn(argv, prog))).

    Maps ConfigError to exit 2 and InstrumentError to exit 1, each as one line on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = Parser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for short, (help_text, _) in commands.items():
        sub.add_parser(short, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return EXIT_OK
    if argv[0] not in commands:
        print(f"{prog}: unknown command '{argv[0]}'; commands: {', '.join(commands)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    name, rest = argv[0], argv[1:]
    try:
        return commands[name][1](rest, f"{prog} {name}")
    except ConfigError as err:
        print(f"{prog} {name}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InstrumentError as err:
        print(f"{prog} {name}: instrument check failed: {err}", file=sys.stderr)
        return EXIT_INSTRUMENT


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
