"""``elasticity figures``: redraw every figure from saved metrics, never from memory.

With run folders as arguments it redraws those runs. Without, it redraws the committed reference
figures from ``figures/data/<experiment>/`` and refreshes the README results table.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from elasticity import registry
from elasticity.command import Parser
from harness.errors import ConfigError
from harness.reference import figures_dir, render_readme_table
from harness.runner import draw_figures
from harness.runs import RunDir


def redraw(run: RunDir) -> list[Path]:
    """Draw one run's figures from its metrics.csv and summary.json (a finished run's; nothing is
    written into a folder that lacks them)."""
    for name in ("metrics.csv", "summary.json"):
        if not (run.path / name).is_file():
            raise ConfigError(f"{run.path} is not a finished run (no {name}); rerun its command with "
                              f"--out {run.path} to finish it")
    return draw_figures(registry.load(run.experiment), run)


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


def main(argv: Sequence[str] | None = None, prog: str = "elasticity figures") -> int:
    parser = Parser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="run folders to redraw (default: the reference figures in figures/)")
    args = parser.parse_args(argv)
    try:
        if args.runs:
            written = [png for path in args.runs for png in redraw(RunDir.load(path))]
        else:
            written = redraw_reference()
    except (ConfigError, KeyError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
