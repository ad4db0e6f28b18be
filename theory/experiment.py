"""Experiments as data, and the one command-line runner that every experiment shares.

An :class:`Experiment` names a config dataclass, its presets, a ``run`` function that measures
and writes metrics into a :class:`RunDir`, and a ``draw`` function that makes the figures from
the saved metrics only. :func:`group_main` turns a set of experiments (plus plain commands) into
``elasticity <group> <name> ...`` (see :func:`experiment_command`) with the shared flags:

``--preset/--quick/--full``, ``--config FILE.toml``, ``--set key=value``, aliases such as
``--k``, ``--seed``, ``--list-presets``, ``--print-config``, ``--json``, ``--out``,
``--update-reference``.

Exit codes: 0 ran (even if a prediction was not confirmed), 1 an instrument check failed,
2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theory.config import Preset, build_config, field_names, load_toml, parse_sets
from theory.errors import ConfigError, InstrumentError
from theory.runs import RunDir, dumps
from theory.verdicts import make_summary

EXIT_OK, EXIT_INSTRUMENT, EXIT_BAD_INPUT = 0, 1, 2


@dataclass(frozen=True)
class Experiment:
    """A command that measures something and writes a run folder.

    ``run(config, run_dir)`` writes ``metrics.csv`` through ``run_dir`` and returns the
    experiment-specific part of the summary: at least ``predictions`` (a list of Prediction or
    dicts) and, when an instrument check failed, ``instrument_failures`` (a list of strings).
    ``draw(run_dir)`` draws figures from ``run_dir``'s saved metrics and summary.
    """

    name: str
    help: str
    config_cls: type
    presets: Mapping[str, Preset]
    run: Callable[[Any, RunDir], Mapping[str, Any]]
    draw: Callable[[RunDir], None] | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # "--k" -> "k"
    units: Mapping[str, str] = field(default_factory=dict)
    default_preset: str = "quick"

    def resolve(
        self, preset: str | None = None, config_file: str | None = None,
        sets: Mapping[str, Any] | None = None, seed: int | None = None,
    ) -> Any:
        """Defaults < preset < config file < sets < seed; validated (ConfigError on bad input)."""
        preset = preset or self.default_preset
        if preset not in self.presets:
            raise ConfigError(f"unknown preset '{preset}' for {self.name}; presets: {', '.join(self.presets)}")
        layers: list[Mapping[str, Any]] = [self.presets[preset].overrides]
        if config_file:
            layers.append(load_toml(config_file))
        layers.append(dict(sets or {}))
        if seed is not None:
            if "seed" not in field_names(self.config_cls):
                raise ConfigError(f"{self.name} has no seed")
            layers.append({"seed": seed})
        return build_config(self.config_cls, *layers)


@dataclass
class Outcome:
    run: RunDir
    summary: dict[str, Any]
    seconds: float

    @property
    def exit_code(self) -> int:
        return EXIT_INSTRUMENT if self.summary.get("instrument_failures") else EXIT_OK


def execute(
    experiment: Experiment, config: Any, out: str | Path | None = None, root: str | Path = "runs",
    preset: str | None = None, draw: bool = True,
) -> Outcome:
    """Run ``experiment`` on ``config`` into a run folder (resuming ``out`` when it matches).

    This is also the Python API: ``execute(EXPERIMENT, EXPERIMENT.resolve("quick"))``.
    """
    start = time.perf_counter()
    run = RunDir.open(experiment.name, config, out=out, root=root, extra={"preset": preset})
    try:
        result = dict(experiment.run(config, run))
    except InstrumentError as err:
        result = {"predictions": [], "instrument_failures": [str(err)]}
    summary = make_summary(experiment.name, run.config_hash, result.pop("predictions", []),
                           result.pop("units", experiment.units), **result)
    run.finish(summary, keep_checkpoints=bool(getattr(config, "keep_checkpoints", False)))
    if draw:
        draw_figures(experiment, run)
    return Outcome(run, summary, time.perf_counter() - start)


def draw_figures(experiment: Experiment, run: RunDir) -> list[Path]:
    """Draw ``run``'s figures afresh from its saved metrics; returns the PNGs.

    Old PNGs go first, so a resumed or redrawn run never keeps a figure its code no longer makes.
    """
    if experiment.draw is None:
        return []
    for png in run.figures_dir.glob("*.png"):
        png.unlink()
    experiment.draw(run)
    return sorted(run.figures_dir.glob("*.png"))


def add_experiment_arguments(parser: argparse.ArgumentParser, experiment: Experiment) -> None:
    keys = field_names(experiment.config_cls)
    presets = parser.add_argument_group("presets and config")
    presets.add_argument("--preset", default=None, help=f"one of: {', '.join(experiment.presets)} "
                         f"(default {experiment.default_preset})")
    presets.add_argument("--quick", dest="preset", action="store_const", const="quick",
                         help="alias of --preset quick")
    presets.add_argument("--full", dest="preset", action="store_const", const="full",
                         help="alias of --preset full")
    presets.add_argument("--config", metavar="FILE.toml", help="config file (flat keys or a [config] table)")
    presets.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                         help=f"override a config key; keys: {', '.join(keys)}")
    presets.add_argument("--seed", type=int, default=None, help="base seed")
    for flag, key in experiment.aliases.items():
        presets.add_argument(flag, dest=f"alias:{key}", metavar=key.upper(), default=None,
                             help=f"alias of --set {key}=...")
    presets.add_argument("--list-presets", action="store_true", help="list presets with estimated runtimes")
    presets.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="DIR", default=None,
                        help="run folder; an existing one resumes if its config hash matches")
    output.add_argument("--json", action="store_true", help="print summary.json to stdout (logs go to stderr)")
    output.add_argument("--update-reference", action="store_true",
                        help="merge this run into figures/results.json and figures/")


def run_from_args(experiment: Experiment, args: argparse.Namespace) -> int:
    if args.list_presets:
        for name, preset in experiment.presets.items():
            print(f"{name:12s} ~{_human(preset.est_seconds):>8s}  {preset.help}")
        return EXIT_OK
    sets = parse_sets(args.set)
    for key, value in vars(args).items():
        if key.startswith("alias:") and value is not None:
            sets[key.removeprefix("alias:")] = value
    config = experiment.resolve(args.preset, args.config, sets, args.seed)
    if args.print_config:
        print(dumps({"experiment": experiment.name, "preset": args.preset or experiment.default_preset,
                     "config": dataclasses.asdict(config)}), end="")
        return EXIT_OK
    outcome = execute(experiment, config, out=args.out, preset=args.preset or experiment.default_preset)
    if args.update_reference:
        from theory.reference import update_reference

        update_reference(outcome.run, outcome.summary, args.preset or experiment.default_preset)
    if args.json:
        print(dumps(outcome.summary), end="")
    else:
        print(format_summary(outcome.summary))
    print(f"run folder: {outcome.run.path} ({outcome.seconds:.1f} s)", file=sys.stderr)
    for failure in outcome.summary.get("instrument_failures", []):
        print(f"INSTRUMENT CHECK FAILED: {failure}", file=sys.stderr)
    return outcome.exit_code


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human table of a summary's predictions."""
    lines = [f"{summary['experiment']} (config {summary['config_hash']})"]
    for p in summary.get("predictions", []):
        ci = p.get("ci") or [float("nan"), float("nan")]
        lines.append(f"  {p['id']:<48s} {p['verdict']:<13s} value={p['value']:.4g} "
                     f"CI=[{ci[0]:.4g}, {ci[1]:.4g}] n={p.get('n_seeds')}")
    return "\n".join(lines)


CommandFn = Callable[[Sequence[str], str], int]


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` (used to keep command modules lazy)."""
    module_name, attr = path.split(":")
    return getattr(importlib.import_module(module_name), attr)


def experiment_command(path: str) -> CommandFn:
    """A command that imports the Experiment at ``"module:attribute"`` only when it runs."""

    def command(argv: Sequence[str], prog: str) -> int:
        experiment: Experiment = load_object(path)
        parser = argparse.ArgumentParser(prog=prog, description=experiment.help)
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
    parser = argparse.ArgumentParser(prog=prog, description=description)
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


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def load_summary(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path, "summary.json").read_text())
