"""The experiment runner: one experiment, one resolved config, one run folder."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, InstrumentError
from harness.experiment import Experiment, load_object
from harness.logs import FILE_ONLY, LOGGER, run_log
from harness.reference import write_run_report
from harness.runs import RunDir
from harness.verdicts import make_summary

EXIT_OK, EXIT_INSTRUMENT, EXIT_BAD_INPUT = 0, 1, 2


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
        with run_log(run.path):
            # file only: on stderr a line here would make a bad-input error two lines
            LOGGER.info("%s %s, config hash %s", "resuming" if run.resumed else "starting", experiment.name,
                        run.config_hash, extra=FILE_ONLY)
            LOGGER.debug("run folder %s", run.path)
            try:
                result = dict(experiment.run(config, run))
            except InstrumentError as err:
                result = {"predictions": [], "instrument_failures": [str(err)]}
            summary = make_summary(experiment.name, run.config_hash, result.pop("predictions", []),
                                   result.pop("units", experiment.units), **result)
            run.finish(summary)
            if draw:
                draw_figures(experiment, run)
                write_run_report(run.path)
            LOGGER.info("run folder: %s (%s%.1f s)", run.path, "resumed, " if run.resumed else "",
                        time.perf_counter() - start)
            for failure in summary.get("instrument_failures", []):
                LOGGER.error("INSTRUMENT CHECK FAILED: %s", failure)
    except ConfigError:
        run.discard_unused()  # bad input found before any work: the folder is as it was
        raise
    finally:
        run.close()
    return Outcome(run, summary, time.perf_counter() - start)


def draw_figures(experiment: Experiment, run: RunDir) -> list[Path]:
    """Draw ``run``'s figures afresh from its saved metrics; returns the PNGs.

    Old PNGs go first, so a resumed or redrawn run never keeps a figure its code no longer makes.
    """
    if experiment.draw is None:
        return []
    for png in run.figures_dir.glob("*.png"):
        png.unlink()
    draw = load_object(experiment.draw) if isinstance(experiment.draw, str) else experiment.draw
    draw(run)
    return sorted(run.figures_dir.glob("*.png"))
