"""``elasticity judge``: judge saved runs with their experiment's pre-registered readings.

Each argument is a run folder (its ``config.json`` names the experiment) or a bare ``metrics.csv``
in the documented layout, with ``--experiment NAME``. Several runs of one experiment (GPU runs at
different seeds, say) are merged into one set of rows first. Runs that measured the same point at
the same seed are refused, since merging them would count one run twice; rows without a seed
(deterministic quantities such as a model's parameter count) are kept once when the runs agree on
them. The predictions come from the experiment's ``readings`` function, the one its own run uses;
primary readings are Holm-adjusted within each family of the judged set.

From Python::

    from elasticity.judge import judge_runs
    summary = judge_runs(["runs/rebound-seed0", "runs/rebound-seed100"])
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elasticity import registry
from elasticity.command import Parser, format_summary
from harness.atomic import dumps
from harness.config import flatten
from harness.errors import ConfigError
from harness.metrics import METRIC_COLUMNS, condition_label, metrics_path, read_metrics_csv
from harness.runs import read_run_record
from harness.verdicts import make_summary

HOLM_SCOPE = "the primary readings of the judged runs, by family"
# config keys that may differ between runs that are merged: the seeds and where they ran
MERGEABLE_KEYS = ("seed", "seeds", "execution.")


def load_run(path: str | os.PathLike, experiment: str | None = None) -> tuple[str, dict[str, Any], list[dict]]:
    """(experiment name, config.json record or {}, metric rows) of a run folder or a bare metrics.csv."""
    path = Path(path)
    if path.is_dir():
        record = read_run_record(path)
        if experiment and record["experiment"] != experiment:
            raise ConfigError(f"{path} is a run of {record['experiment']}, not {experiment}")
        metrics = metrics_path(path)
        if not metrics.exists():
            raise ConfigError(f"{path} has no metrics.csv (an unfinished run?)")
        return record["experiment"], record, _metric_rows(metrics)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    if not experiment:
        raise ConfigError(f"{path} is a bare metrics file: name its experiment with --experiment")
    return experiment, {}, _metric_rows(path)


def _metric_rows(path: Path) -> list[dict]:
    """A metrics table with its columns and at least one row: nothing to judge is bad input."""
    try:
        rows = read_metrics_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"{path} cannot be read as a metrics table ({err})") from None
    missing = [c for c in METRIC_COLUMNS if not rows or c not in rows[0]]
    if not rows or missing:
        raise ConfigError(f"{path} holds no metric rows" if not rows else
                          f"{path} lacks the metrics columns {', '.join(missing)}")
    return rows


def _key(row: Mapping[str, Any]) -> tuple:
    return tuple(sorted(row["condition"].items())), row["x"], row["measure"]


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN (a censored reading) equals NaN here


def merge_rows(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> list[dict[str, Any]]:
    """The rows of several runs (label, rows) as one table; ConfigError when two runs hold the same
    seed at the same condition, or disagree on a row without a seed."""
    merged: list[dict[str, Any]] = []
    owner: dict[tuple, str] = {}  # (seed, condition) -> the run that holds it
    seedless: dict[tuple, tuple[str, float]] = {}
    for label, rows in runs:
        points = set()
        for row in rows:
            if row["seed"] == "":
                first = seedless.setdefault(_key(row), (label, row["value"]))
                if first[0] != label and not _same(first[1], row["value"]):
                    raise ConfigError(f"{first[0]} and {label} disagree on {row['measure']} at "
                                      f"{condition_label(row['condition'])}: runs of different configs?")
                if first[0] != label:
                    continue
            else:
                point = (row["seed"], tuple(sorted(row["condition"].items())))
                if owner.get(point, label) != label:
                    raise ConfigError(f"{owner[point]} and {label} both hold seed {row['seed']} at "
                                      f"{condition_label(row['condition']) or 'no condition'}; runs of the same "
                                      "seed cannot be merged (rerun one with a --seed whose seeds do not overlap)")
                points.add(point)
            merged.append(dict(row))
        owner.update(dict.fromkeys(points, label))
    return merged


def config_differences(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Config keys (beyond seeds and execution settings) on which the merged runs differ."""
    flats = [flatten(r["config"]) for r in records if r.get("config") is not None]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if not k.startswith(MERGEABLE_KEYS) and len({json.dumps(f.get(k)) for f in flats}) > 1]


def judge_runs(paths: Sequence[str | os.PathLike], experiment: str | None = None,
               allow_config_differences: bool = False) -> dict[str, Any]:
    """Predictions (a summary.json-shaped dict) from the saved metrics of one or more runs of one experiment.

    Runs whose configs differ beyond their seeds and execution settings (another model, other
    amounts) are not replicates of one another and are refused, unless ``allow_config_differences``
    (other data draws of one design, say); the differences are then listed in the summary.
    """
    if not paths:
        raise ConfigError("name at least one run folder or metrics.csv")
    loaded = [(str(p), *load_run(p, experiment)) for p in paths]
    names = {name for _, name, _, _ in loaded}
    if len(names) > 1:
        raise ConfigError(f"runs of different experiments cannot be judged together: {', '.join(sorted(names))}")
    name = names.pop()
    try:
        exp = registry.load(name)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    if exp.readings is None:
        raise ConfigError(f"{name} has no readings function, so its saved metrics cannot be judged")
    records = [record for _, _, record, _ in loaded]
    differences = config_differences(records)
    if differences and not allow_config_differences:
        raise ConfigError(f"the runs differ in {', '.join(differences)}: they are not runs of one design "
                          "(pass --allow-config-differences to pool them anyway)")
    rows = merge_rows([(label, rows) for label, _, _, rows in loaded])
    try:
        predictions = exp.readings(rows, name)
    except (KeyError, ValueError, IndexError) as err:
        raise ConfigError(f"the rows do not fit {name}'s readings ({type(err).__name__}: {err})") from err
    extra: dict[str, Any] = {"runs": [label for label, *_ in loaded], "holm_scope": HOLM_SCOPE}
    if differences:
        extra["config_differences"] = differences
    chash = "+".join(r.get("config_hash", "metrics.csv") for r in records)
    return make_summary(name, chash, predictions, exp.units, **extra)


def main(argv: Sequence[str] | None = None, prog: str = "elasticity judge") -> int:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, or metrics.csv files with "
                        "--experiment; several runs of one experiment at different seeds are merged")
    parser.add_argument("--experiment", default=None, metavar="NAME",
                        help=f"the experiment of bare metrics.csv files: one of {', '.join(registry.EXPERIMENTS)}")
    parser.add_argument("--allow-config-differences", action="store_true",
                        help="pool runs whose configs differ beyond seeds and execution settings")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    args = parser.parse_args(argv)
    try:
        summary = judge_runs(args.runs, args.experiment, args.allow_config_differences)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if summary.get("config_differences"):
        print(f"note: the merged runs differ in {', '.join(summary['config_differences'])}", file=sys.stderr)
    print(dumps(summary) if args.json else format_summary(summary), end="" if args.json else "\n")
    return 0
