"""The command machinery every group shares: a group of subcommands, and the flags of an experiment.

:func:`experiment_command` turns an :class:`~harness.experiment.Experiment` (imported only when
its command runs) into ``elasticity <group> <name> ...`` with the shared flags:
``--preset`` (and ``--quick``/``--full`` where the experiment has those presets), ``--config FILE``,
``--set key=value``, the experiment's own flags such as ``--k``, ``--seed``, ``--list-presets``,
``--print-config`` (TOML that ``--config`` reads back; JSON with ``--json``), ``--json``, ``--out``,
``--update-reference`` and ``-v``/``-q``. :func:`group_main` dispatches a group and maps the two
error kinds to their exit codes (bad input 2, a failed instrument check 1), each as one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tomli_w

from harness import logs
from harness.atomic import dumps
from harness.config import (
    FALSE_WORDS,
    flatten,
    leaf_types,
    load_config_file,
    parse_sets,
    resolve_key,
)
from harness.errors import ConfigError, InstrumentError, one_line
from harness.experiment import Experiment, load_object
from harness.reference import require_clean_tree, update_reference
from harness.runner import EXIT_BAD_INPUT, EXIT_INSTRUMENT, EXIT_OK, execute
from harness.runs import config_hash

CommandFn = Callable[[Sequence[str], str], int]
# runs a model folder's own Python (transformers' trust_remote_code): only the command line turns it on
REMOTE_CODE = "trust_remote_code"
# flags that every config with an execution block gets
EXECUTION_FLAGS = {"--device": "execution.device", "--threads": "execution.threads",
                   "--n-jobs": "execution.n_jobs", "--backend": "execution.backend"}


class HelpFormatter(argparse.HelpFormatter):
    """Help that ends each option with its default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text  # a help that already says it
                or action.default in (None, False, "", [], argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit 2, as every other bad input is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def add_experiment_arguments(parser: argparse.ArgumentParser, experiment: Experiment) -> None:
    presets = parser.add_argument_group("presets and config")
    presets.add_argument("--preset", default=None, metavar="NAME", choices=tuple(experiment.presets),
                         help=_preset_help(experiment))
    for alias in ("quick", "full"):
        if alias in experiment.presets:  # only a preset the experiment has gets a shortcut
            presets.add_argument(f"--{alias}", dest="preset_alias", action="store_const", const=alias,
                                 help=f"alias of --preset {alias}")
    presets.add_argument("--config", metavar="FILE", help="config file, TOML or (.json) JSON: keys at the top or "
                         "under [config], tables are blocks; --print-config writes one")
    presets.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                         help=f"override a config key; keys: {', '.join(leaf_types(experiment.config_cls))}")
    presets.add_argument("--seed", type=int, default=None, help="base seed")
    _add_key_flags(presets, experiment)
    presets.add_argument("--list-presets", action="store_true", help="list presets with estimated runtimes")
    presets.add_argument("--print-config", action="store_true",
                         help="print the resolved config as TOML that --config reads back (JSON with --json) "
                         "and exit")
    if REMOTE_CODE in leaf_types(experiment.config_cls):
        presets.add_argument("--trust-remote-code", action="store_true",
                             help="run the model folder's own Python code (only this flag turns it on; "
                             "a config file or --set cannot)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", default=None,
                        help="run folder; an existing one resumes if its config hash matches")
    output.add_argument("--json", action="store_true", help="print summary.json to stdout (logs go to stderr)")
    output.add_argument("--update-reference", action="store_true",
                        help="merge this run into figures/results.json and figures/")
    add_verbosity_arguments(output)


def add_verbosity_arguments(group: argparse._ActionsContainer) -> None:
    """``-v`` and ``-q``: how much goes to stderr (every run folder's run.log keeps progress lines)."""
    verbosity = group.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=0,
                           help="debug messages too")
    verbosity.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                           help="only warnings and errors on stderr, no progress bars")


def _preset_help(experiment: Experiment) -> str:
    listed = ", ".join(f"{name} (~{human_duration(preset.est_seconds)})"
                       for name, preset in experiment.presets.items())
    return f"one of: {listed}; default {experiment.default_preset}; runtimes are estimates on 2 CPU cores"


def _add_key_flags(group: argparse._ActionsContainer, experiment: Experiment) -> None:
    """The experiment's flags (and the execution block's), each an alias of a --set with its default
    under the default preset and, for a key with fixed choices, those choices."""
    keys = leaf_types(experiment.config_cls)
    flags = {**{flag: key for flag, key in EXECUTION_FLAGS.items() if key in keys}, **experiment.flags}
    defaults = flatten(dataclasses.asdict(experiment.resolve()))
    for flag, key in flags.items():
        dotted = resolve_key(experiment.config_cls, key)
        choices = typing.get_args(keys[dotted]) if typing.get_origin(keys[dotted]) is typing.Literal else ()
        default = _shown(defaults[dotted]).replace("%", "%%")
        switch = {"nargs": "?", "const": "true"} if keys[dotted] is bool else {}  # a bare flag turns it on
        group.add_argument(flag, dest=f"flag:{key}", default=None, choices=choices or None, **switch,
                           metavar=None if choices else dotted.rsplit(".", 1)[-1].upper(),
                           help=f"alias of --set {key}=... "
                           f"(default: {default} in preset {experiment.default_preset})")


def _shown(value: Any) -> str:
    """A config value as --set takes it: tuples comma-separated, pairs dash-joined."""
    if isinstance(value, tuple):
        return ",".join("-".join(map(_shown, v)) if isinstance(v, tuple) else _shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else '""' if value == "" else str(value)


def run_from_args(experiment: Experiment, args: argparse.Namespace) -> int:
    if args.list_presets:
        for name, preset in experiment.presets.items():
            print(f"{name:12s} ~{human_duration(preset.est_seconds):>8s}  {preset.help}")
        return EXIT_OK
    preset, config = resolved_config(experiment, args)
    if args.print_config:
        print(config_text(experiment, preset, config, as_json=args.json), end="")
        return EXIT_OK
    commit = require_clean_tree() if args.update_reference else None  # checked before anything runs
    outcome = execute(experiment, config, out=args.out, preset=preset)
    if commit:
        update_reference(outcome.run, outcome.summary, preset, commit=commit)
    if args.json:
        print(dumps(outcome.summary), end="")
    else:
        print(format_summary(outcome.summary))
    return outcome.exit_code


def resolved_config(experiment: Experiment, args: argparse.Namespace) -> tuple[str, Any]:
    """The preset the command line names and its config (with --config, --set, the key flags and
    --seed), after the logs are set to its verbosity."""
    sets = parse_sets(args.set)
    for key, value in vars(args).items():
        if key.startswith("flag:") and value is not None:
            sets[key.removeprefix("flag:")] = value
    logs.configure(args.verbosity)
    _refuse_remote_code(sets, load_config_file(args.config) if args.config else {})
    if getattr(args, REMOTE_CODE, False):
        sets[REMOTE_CODE] = True
    preset = chosen_preset(args.preset, getattr(args, "preset_alias", None)) or experiment.default_preset
    return preset, experiment.resolve(preset, args.config, sets, args.seed)


def config_text(experiment: Experiment, preset: str, config: Any, as_json: bool = False) -> str:
    """The resolved config as ``--print-config`` shows it: TOML that ``--config`` reads back to the
    same config hash, or JSON (``{"experiment", "preset", "config"}``), which ``--config`` reads too."""
    if as_json:
        return dumps({"experiment": experiment.name, "preset": preset, "config": dataclasses.asdict(config)})
    tree = experiment.file_tree(config)
    header = [f"# {experiment.name}, preset {preset}, config hash {config_hash(experiment.name, config)}.",
              "# Run it with --config FILE; a key left out keeps its default."]
    if tree.get(REMOTE_CODE):  # a file cannot turn it on: the flag has to say it again
        del tree[REMOTE_CODE]
        header.append("# It runs the model folder's own code: add --trust-remote-code.")
    return "\n".join(header) + "\n" + tomli_w.dumps({"config": tree})


def chosen_preset(preset: str | None, alias: str | None) -> str | None:
    """``--preset`` or its alias (``--quick``, ``--full``); a ConfigError when they disagree."""
    if preset and alias and preset != alias:
        raise ConfigError(f"--preset {preset} and --{alias} ask for different presets; give one")
    return preset or alias


def _refuse_remote_code(*layers: Mapping[str, Any]) -> None:
    """A shared config file or a --set must not run a model folder's code: only the flag may."""
    for layer in layers:
        # saying false is harmless: only the flag turns it on
        if any(key.strip().replace("-", "_") == REMOTE_CODE and str(value).strip().lower() not in FALSE_WORDS
               for key, value in layer.items()):
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
