"""``elasticity calibrate``: the false-positive rate, power and minimal detectable effect of every
reading that issues a verdict, on synthetic data with a planted effect and without.

Runs :func:`harness.calibration.calibrate` for every ``Calibration`` in the ``CALIBRATIONS`` of the
modules in ``registry.CALIBRATION_MODULES`` (``--only`` keeps names containing a substring) into a
run folder:

- ``metrics.csv``: one row per reading and planted size, the condition fields ``experiment``,
  ``reading`` and ``size_unit`` (the unit of ``x``, the planted size). Measures, each a share of
  replicates (unit ``share``): ``false_positive_rate`` and ``false_positive_mcse`` at the null size;
  ``power_stated`` and ``power_stated_mcse`` at the stated size; ``power`` at each size of the scan.
  ``minimal_detectable_effect`` (no ``x``; unit ``size_unit``; NaN when the scan never reaches 0.8).
- ``summary.json``: every calibration's result (with its null size and seed) and the names that fail.
- ``figures/power_curves.png``: power against planted size per reading, with the 0.8 and 0.05 lines,
  drawn from metrics.csv.

Exit 1 when a reading fails (false-positive rate above 0.05 plus two Monte Carlo standard errors, or
power below 0.8 at its stated size). ``--update-reference`` merges the results into
``figures/calibration.json``, redraws ``figures/calibration.power_curves.png`` from it and rewrites
the README calibration table.
"""

from __future__ import annotations

import importlib
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from elasticity import registry
from elasticity.command import Parser, add_verbosity_arguments
from harness import reference
from harness.atomic import dumps
from harness.calibration import POWER_TARGET, Calibration, calibrate
from harness.config import require
from harness.errors import ConfigError
from harness.logs import LOGGER, configure, run_log
from harness.metrics import metric_row
from harness.runs import RunDir
from harness.verdicts import ALPHA, SCHEMA_VERSION

FIGURE = "power_curves.png"


@dataclass(frozen=True, kw_only=True)
class CalibrateConfig:
    reps: int = 400
    only: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.reps >= 2, f"reps must be >= 2, got {self.reps}")


def load_calibrations(only: str = "", modules: Sequence[str] | None = None) -> list[Calibration]:
    """Every registered Calibration whose name (``experiment:reading``) contains ``only``."""
    found = [cal for name in (modules or registry.CALIBRATION_MODULES)
             for cal in importlib.import_module(name).CALIBRATIONS]
    names = [cal.name for cal in found]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"calibrations registered twice: {', '.join(duplicated)}")
    return [cal for cal in found if only in cal.name]


def result_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metric rows of one stored calibration result (see the module docstring)."""
    cond = {"experiment": result["experiment"], "reading": result["reading"], "size_unit": result["unit"]}
    rows = [
        metric_row("false_positive_rate", result["false_positive_rate"], "share", x=result["null"], **cond),
        metric_row("false_positive_mcse", result["false_positive_mcse"], "share", x=result["null"], **cond),
        metric_row("power_stated", result["power"], "share", x=result["stated_effect"], **cond),
        metric_row("power_stated_mcse", result["power_mcse"], "share", x=result["stated_effect"], **cond),
    ]
    rows += [metric_row("power", power, "share", x=float(size), **cond) for size, power in result["power_curve"].items()]
    mde = result["minimal_detectable_effect"]
    rows.append(metric_row("minimal_detectable_effect", float("nan") if mde is None else mde, result["unit"], **cond))
    return rows


def run_calibrations(config: CalibrateConfig, run: RunDir, cals: Sequence[Calibration],
                     n_jobs: int = 1) -> list[dict[str, Any]]:
    """Each calibration's result (cached per reading, so a rerun into the same folder resumes; JSON
    stores an MDE the scan never reached, NaN, as null), its replicates in ``n_jobs`` processes."""
    results = []
    for cal in tqdm(cals, desc="calibrations", unit="reading", file=sys.stderr):
        results.append(run.cell(f"calibration-{cal.name}", lambda cal=cal: {
            **calibrate(cal, config.reps, seed=config.seed, progress=True, n_jobs=n_jobs).to_dict(),
            "null": cal.null, "seed": config.seed}))
    run.write_metrics([row for result in results for row in result_rows(result)])
    return results


def draw_power_curves(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Power against planted size, one panel per reading, from metric rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from theory.figures import save_figure

    panels: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        c = row["condition"]
        panels[(c["experiment"], c["reading"], c["size_unit"])][row["measure"]].append((row["x"], row["value"]))
    n = max(len(panels), 1)
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.6 * cols, 3.6 * ((n + cols - 1) // cols)),
                             squeeze=False)
    for ax, ((experiment, reading, unit), m) in zip(axes.flat, sorted(panels.items()), strict=False):
        curve = sorted(m["power"])
        if curve:
            ax.plot(*zip(*curve, strict=True), "o-", color="C0", label="power (share reading holds)")
        ax.plot(*zip(*m["power_stated"], strict=True), "*", ms=12, color="C2", label="power at the stated size")
        ax.plot(*zip(*m["false_positive_rate"], strict=True), "x", ms=9, color="C3",
                label="false-positive rate (null)")
        ax.axhline(POWER_TARGET, color="grey", ls="--", lw=0.8, label=f"power target {POWER_TARGET}")
        ax.axhline(ALPHA, color="grey", ls=":", lw=0.8, label=f"level {ALPHA}")
        ax.set(xlabel=f"planted size ({unit})", ylabel="share of replicates", ylim=(-0.03, 1.03),
               title=f"{reading}\n({experiment})")
        ax.title.set_fontsize(8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    if panels:
        axes.flat[0].legend(fontsize=7, loc="center right")
    return save_figure(fig, path)


def summary_of(config: CalibrateConfig, run: RunDir, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "experiment": "calibrate", "schema_version": SCHEMA_VERSION, "config_hash": run.config_hash,
        "n_replicates": config.reps, "seed": config.seed, "calibrations": list(results),
        "failed": [r["name"] for r in results if not (r["fpr_ok"] and r["power_ok"])],
    }


def format_results(results: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for r in results:
        mde = float("nan") if r["minimal_detectable_effect"] is None else r["minimal_detectable_effect"]
        verdict = "ok" if r["fpr_ok"] and r["power_ok"] else "FAILS"
        lines.append(f"  {r['name']:<60s} {verdict:<5s} fpr={r['false_positive_rate']:.3f}±"
                     f"{r['false_positive_mcse']:.3f} power={r['power']:.2f} at {r['stated_effect']:g} "
                     f"MDE={mde:.3g} {r['unit']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "elasticity calibrate") -> int:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--reps", type=int, default=400, help="replicates per planted size (default 400)")
    parser.add_argument("--only", default="", metavar="SUBSTRING", help="only calibrations whose "
                        "experiment:reading name contains this")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the replicates")
    parser.add_argument("--jobs", type=int, default=-1, help="processes for the replicates (default -1: "
                        "every core); the results do not depend on it, so it is not part of the config")
    parser.add_argument("--list", action="store_true", help="list the calibrations and exit")
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder; an existing one resumes")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--update-reference", action="store_true",
                        help="merge into figures/calibration.json and rewrite the README calibration table")
    add_verbosity_arguments(parser)
    args = parser.parse_args(argv)
    configure(args.verbosity)
    try:
        config = CalibrateConfig(reps=args.reps, only=args.only, seed=args.seed)
        require(args.jobs == -1 or args.jobs >= 1, f"--jobs must be -1 (every core) or >= 1, got {args.jobs}")
        cals = load_calibrations(config.only)
        if not cals:
            raise ConfigError(f"no calibration name contains '{config.only}'")
        if args.list:
            print("\n".join(f"{c.name}  (stated {c.stated:g} {c.unit})" for c in cals))
            return 0
        commit = reference.require_clean_tree() if args.update_reference else None  # before anything runs
        run = RunDir.open("calibrate", config, out=args.out)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    with run_log(run.path):
        LOGGER.info("calibrating %d readings at %d replicates per planted size", len(cals), config.reps)
        results = run_calibrations(config, run, cals, args.jobs)
        summary = summary_of(config, run, results)
        run.finish(summary)
        draw_power_curves(run.read_metrics(), run.figures_dir / FIGURE)
    if commit:
        command = " ".join(filter(None, ("elasticity calibrate", f"--reps {config.reps}",
                                         f"--only {config.only}" if config.only else "", "--update-reference")))
        merged = reference.update_calibration(results, command=command, commit=commit)
        draw_power_curves([row for r in merged["calibrations"].values() for row in result_rows(r)],
                          reference.figures_dir() / reference.CALIBRATION_FIGURE)
    print(dumps(summary) if args.json else format_results(results), end="" if args.json else "\n")
    LOGGER.info("run folder: %s", run.path)
    for name in summary["failed"]:
        LOGGER.error("CALIBRATION FAILED: %s", name)
    return 1 if summary["failed"] else 0
