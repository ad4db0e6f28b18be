"""``elasticity figures``: redraw every figure from saved metrics, never from memory.

With run folders as arguments it redraws those runs (a reproduce folder: each experiment inside it),
then each folder's dashboard and report.html. Without, it redraws the committed reference figures from
``figures/data/<experiment>/``, the dashboard and figures/report.html, and refreshes the README's
dashboard block and results table. ``--screenshot`` also saves each report.html as a browser opens
it (the reference's at its tables) to report.png beside it (it needs Chromium and the playwright package).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from elasticity import registry
from elasticity.command import Parser
from harness import browser
from harness.errors import ConfigError
from harness.html_report import DASHBOARD, READINGS_ANCHOR, REPORT
from harness.metrics import metrics_path
from harness.reference import (
    SCREENSHOT,
    figures_dir,
    render_readme_table,
    write_figures_readme,
    write_reference_report,
    write_run_report,
)
from harness.runner import draw_figures
from harness.runs import RunDir


def redraw(run: RunDir) -> list[Path]:
    """Draw one run's figures from its metrics.csv and summary.json (a finished run's; nothing is
    written into a folder that lacks them)."""
    for path in (metrics_path(run.path), run.path / "summary.json"):
        if not path.is_file():
            raise ConfigError(f"{run.path} is not a finished run (no {path.name}); rerun its command with "
                              f"--out {run.path} to finish it")
    return draw_figures(registry.load(run.experiment), run)


def redraw_run(run: RunDir) -> list[Path]:
    """A run folder's figures, then its dashboard and report.html; a reproduce folder's experiments first."""
    if run.experiment != "reproduce":
        written = redraw(run)
    elif not (run.path / "summary.json").is_file():
        raise ConfigError(f"{run.path} is not a finished run (no summary.json); rerun its command with "
                          f"--out {run.path} to finish it")
    else:  # an experiment that failed inside it left no summary.json: nothing to redraw there
        written = [png for found in sorted(run.path.glob("*/summary.json"))
                   for png in redraw_run(RunDir.load(found.parent))]
    write_run_report(run.path)
    return written + [path for path in (run.path / DASHBOARD, run.path / REPORT) if path.exists()]


def redraw_reference() -> list[Path]:
    """Redraw figures/<experiment>.*.png from the metrics committed under figures/data/."""
    written: list[Path] = []
    for data in sorted((figures_dir() / "data").glob("*/config.json")):
        with tempfile.TemporaryDirectory() as tmp:
            # Draw into a scratch copy so the committed data folder gains no figures/ subfolder.
            scratch = Path(tmp, data.parent.name)
            shutil.copytree(data.parent, scratch)
            run = RunDir.load(scratch)
            for png in redraw(run):
                # the folder is named by the reference key, which may qualify the experiment (a model)
                target = figures_dir() / f"{data.parent.name}.{png.name}"
                shutil.copyfile(png, target)
                written.append(target)
    render_readme_table()
    return written


def screenshots(reports: Sequence[Path]) -> list[Path]:
    """Each report.html as it opens (the reference's at its tables), saved as report.png beside it."""
    return [browser.screenshot(report, report.with_name(SCREENSHOT),
                               READINGS_ANCHOR if report.parent == figures_dir() else "") for report in reports]


def main(argv: Sequence[str] | None = None, prog: str = "elasticity figures") -> int:
    parser = Parser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="run folders to redraw (default: the reference figures in figures/)")
    parser.add_argument("--screenshot", action="store_true",
                        help="also save a screenshot of each report.html to report.png (needs Chromium and playwright)")
    args = parser.parse_args(argv)
    try:
        reason = browser.missing() if args.screenshot else None
        if reason:  # refused before anything is redrawn
            raise ConfigError(f"--screenshot needs a headless browser: {reason}")
        if args.runs:
            written = [path for folder in args.runs for path in redraw_run(RunDir.load(folder))]
        else:
            written = redraw_reference() + write_reference_report()
        if args.screenshot:
            written += screenshots([path for path in written if path.name == REPORT])
        if not args.runs:
            write_figures_readme()
            render_readme_table()  # again: the README's dashboard block links the screenshot when there is one
    except (ConfigError, KeyError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
