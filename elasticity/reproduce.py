"""``elasticity reproduce``: the theory checks and every toy experiment, in one run folder with a report
(the exploratory resistance after each treatment, ``toy resistance --set treatments=...``, runs on its own).

``--preset quick`` (the default) runs each experiment's quick preset, ``reduced`` each one's reduced
preset (its full one where it has none), ``full`` the full presets; ``--list-presets`` prints their
runtimes. Each experiment writes its own run folder inside this one, so rerunning with the same
``--out`` resumes: finished experiments and finished cells are skipped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from elasticity import registry
from elasticity.command import (
    Parser,
    add_verbosity_arguments,
    chosen_preset,
    format_summary,
    human_duration,
)
from harness.atomic import atomic_write_text, dumps
from harness.config import require
from harness.errors import ConfigError
from harness.logs import LOGGER, configure, progress, run_log
from harness.markdown import exact_table, md_cell, readings_tables
from harness.reference import require_clean_tree, write_run_report
from harness.reference import update_reference as merge_reference
from harness.runner import execute
from harness.runs import RunDir

# Order matters for the report: theory first, then the toy core, then the toy science.
EXPERIMENTS = (
    "theory.simulate", "theory.boundary", "toy.resistance", "toy.rebound",
    "toy.scale", "toy.compression", "toy.lifecycle", "toy.mitigations",
)
# the quick preset is the install's first run: the two slowest quick presets are left out of it
QUICK_EXPERIMENTS = tuple(e for e in EXPERIMENTS if e not in ("theory.boundary", "toy.mitigations"))
PRESETS = {"quick": "each experiment's quick preset (theory.boundary and toy.mitigations left out)",
           "reduced": "each experiment's reduced preset, its full one where it has none",
           "full": "each experiment's full preset"}


def experiment_preset(experiment: Any, preset: str) -> str:
    """The experiment's own preset that a reproduce preset runs."""
    if preset == "reduced" and "reduced" not in experiment.presets:
        return "full"
    return preset


@dataclass(frozen=True, kw_only=True)
class ReproduceConfig:
    preset: Literal["quick", "reduced", "full"] = "quick"
    experiments: tuple[str, ...] = ()  # empty: the preset's default list
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in self.experiments:
            require(name in EXPERIMENTS, f"unknown experiment '{name}'; known: {', '.join(EXPERIMENTS)}")
        require(len(set(self.experiments)) == len(self.experiments), "experiments are listed twice")
        require(self.seed is None or self.seed >= 0, f"--seed must be >= 0, got {self.seed}")

    @property
    def selected(self) -> tuple[str, ...]:
        if self.experiments:
            return self.experiments
        return QUICK_EXPERIMENTS if self.preset == "quick" else EXPERIMENTS


def list_presets() -> str:
    """Each reproduce preset with its runtime on 2 CPU cores: the sum of its experiments' presets."""
    lines = []
    for name, help_text in PRESETS.items():
        parts = [(e, experiment_preset(x, name), x) for e, x in
                 ((e, registry.load(e)) for e in ReproduceConfig(preset=name).selected)]
        lines.append(f"{name:12s} ~{human_duration(sum(x.presets[p].est_seconds for _, p, x in parts)):>8s}  {help_text}")
        lines += [f"  {e:18s} {p:8s} ~{human_duration(x.presets[p].est_seconds):>8s}" for e, p, x in parts]
    return "\n".join(lines)


@dataclass
class Section:
    name: str
    run_path: Path | None
    summary: Mapping[str, Any] | None
    seconds: float
    error: str | None = None


def run_theory_checks(quick: bool) -> tuple[list[Any], float]:
    from theory.checks import run_checks

    start = time.perf_counter()
    checks = run_checks(quick=quick)
    return checks, time.perf_counter() - start


def reproduce(config: ReproduceConfig, out: str | Path | None = None, update_reference: bool = False
              ) -> tuple[RunDir, list[Section], list[Any], int]:
    """Run everything into one folder and write report.md. Returns the exit code as well.

    With ``update_reference`` the checkout is checked once, before anything runs (ConfigError when
    tracked files outside figures/ differ from HEAD), so the experiments' own updates of figures/
    do not block the later ones.
    """
    commit = require_clean_tree() if update_reference else None
    run = RunDir.open("reproduce", config, out=out)
    with run_log(run.path):
        LOGGER.info("reproduce (%s) -> %s", config.preset, run.path)
        checks, check_seconds = run_theory_checks(quick=config.preset == "quick")
        LOGGER.info("theory checks: %d of %d pass (%.0f s)", sum(c.passed for c in checks), len(checks),
                    check_seconds)
        sections = run_experiments(config, run, commit)
    failed_checks = [c for c in checks if c.exact and not c.passed]
    code = 1 if failed_checks or any(s.error or (s.summary or {}).get("instrument_failures")
                                      for s in sections) else 0
    atomic_write_text(run.path / "report.md", render_report(run, config, sections, checks, check_seconds))
    run.finish({
        "experiment": "reproduce", "schema_version": 2, "config_hash": run.config_hash,
        "preset": config.preset, "exit_code": code,
        "theory_checks": [{"name": c.name, "passed": c.passed, "exact": c.exact, "value": c.value}
                          for c in checks],
        "experiments": {s.name: {"run": str(s.run_path) if s.run_path else None, "error": s.error,
                                 "predictions": (s.summary or {}).get("predictions", [])}
                        for s in sections},
    })
    write_run_report(run.path)  # dashboard.png and report.html beside report.md, the dashboard on top of it
    return run, sections, checks, code


def run_experiments(config: ReproduceConfig, run: RunDir, commit: str | None) -> list[Section]:
    """Each selected experiment into its own folder inside ``run``; one that breaks is a failed section."""
    sections: list[Section] = []
    bar = progress(config.selected, desc=f"reproduce {config.preset}", unit="experiment", leave=True)
    for name in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            experiment = registry.load(name)
            preset = experiment_preset(experiment, config.preset)
            exp_config = experiment.resolve(preset, seed=config.seed)
            outcome = execute(experiment, exp_config, out=run.path / name, preset=preset)
        except ConfigError:
            raise
        except Exception as err:  # one broken experiment must not hide the others' results
            sections.append(Section(name, None, None, time.perf_counter() - start, f"{type(err).__name__}: {err}"))
            LOGGER.error("%s failed: %s", name, err)
            continue
        if commit:
            merge_reference(outcome.run, outcome.summary, preset, commit=commit)
        sections.append(Section(name, outcome.run.path, outcome.summary, time.perf_counter() - start))
    return sections


def render_report(run: RunDir, config: ReproduceConfig, sections: Sequence[Section], checks: Sequence[Any],
                  check_seconds: float) -> str:
    """report.md: the theory checks, then each experiment's verdicts and figures."""
    total = check_seconds + sum(s.seconds for s in sections)
    lines = [
        f"# Elasticity reproduction report ({config.preset})", "",
        f"Config hash `{run.config_hash}`. Wall time {total:.0f} s "
        f"(theory checks {check_seconds:.0f} s). Only pre-registered primary readings have verdicts: "
        "`holds` when the 95% interval excludes 0 in the predicted direction (or lies inside the predicted "
        "band), `contradicted` when it excludes 0 on the other side (or lies wholly outside the band), "
        "`inconclusive` otherwise, and "
        "`underpowered` with fewer than 3 independent runs; the Holm-adjusted verdict is adjusted within "
        "each family of this experiment's primary readings. Exploratory readings have a value, an interval "
        "and a two-sided p-value, no verdict. A contradicted or inconclusive prediction is a finding, not "
        "an error.", "",
        "## Theory checks", "", "| check | kind | result | value | detail |", "|---|---|---|---|---|",
    ]
    for c in checks:
        kind = "exact" if c.exact else "finding"
        result = "pass" if c.passed else ("FAIL" if c.exact else "not met")
        lines.append(f"| {md_cell(c.name)} | {kind} | {result} | {md_cell(c.value, 4)} | {md_cell(c.detail)} |")
    for s in sections:
        lines += ["", f"## `{s.name}`", "", f"Wall time {s.seconds:.0f} s."]
        if s.error:
            lines += ["", f"**Failed:** `{s.error}`"]
            continue
        rel = s.run_path.relative_to(run.path)
        lines += [f"Run folder `{rel}/`.", ""]
        lines += readings_tables([((), p, ()) for p in s.summary.get("predictions", [])], digits=4)
        checks_table = exact_table([((), c, ()) for c in s.summary.get("exact_checks", [])])
        lines += [""] + checks_table if checks_table else []
        for failure in s.summary.get("instrument_failures", []):
            lines.append(f"\n**Instrument check failed:** {failure}")
        for png in sorted((s.run_path / "figures").glob("*.png")):
            lines += ["", f"![{png.stem}]({png.relative_to(run.path)})"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, prog: str = "elasticity reproduce") -> int:
    parser = Parser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None, help="default: quick")
    parser.add_argument("--list-presets", action="store_true", help="list presets with their runtimes and exit")
    parser.add_argument("--quick", dest="preset_alias", action="store_const", const="quick",
                        help="alias of --preset quick")
    parser.add_argument("--reduced", dest="preset_alias", action="store_const", const="reduced",
                        help="alias of --preset reduced")
    parser.add_argument("--full", dest="preset_alias", action="store_const", const="full",
                        help="alias of --preset full")
    parser.add_argument("--only", default="", metavar="A,B", help=f"a subset of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--seed", type=int, default=None, help="base seed passed to every experiment")
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder; an existing one resumes")
    parser.add_argument("--update-reference", action="store_true",
                        help="merge every experiment into figures/ and figures/results.json")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_verbosity_arguments(parser)
    args = parser.parse_args(argv)
    configure(args.verbosity)
    if args.list_presets:
        print(list_presets())
        return 0
    try:
        only = tuple(x.strip() for x in args.only.split(",") if x.strip())
        if args.only and not only:
            raise ConfigError(f"--only {args.only!r} names no experiment; known: {', '.join(EXPERIMENTS)}")
        config = ReproduceConfig(preset=chosen_preset(args.preset, args.preset_alias) or "quick", seed=args.seed,
                                 experiments=only)
        run, sections, checks, code = reproduce(config, args.out, args.update_reference)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(dumps(run.read_json("summary.json")), end="")
    else:
        for s in sections:
            print(format_summary(s.summary) if s.summary else f"{s.name}: FAILED {s.error}")
        print(f"\nreport: {run.path / 'report.md'}")
    return code
