"""The committed reference results: ``figures/results.json`` and the reference figures and data.

``results.json`` layout::

    {"schema_version": 1,
     "experiments": {
        "<experiment>": {
            "headline": {"preset": "full", "config_hash": "...", "command": "...", "predictions": [...]},
            "tests": {"<test config hash>": {"<prediction id>": {"verdict": ..., "value": ..., "ci": ...}}}
        }}}

Updating one experiment never touches another's entries, so refreshing the toy results keeps
the LLM ones. Prediction tests compare their verdict with ``tests[<hash>]`` (see ``tests/verdicts.py``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_json, atomic_write_text
from harness.markdown import figures_readme, with_results_table
from harness.runs import RunDir, repo_root


def figures_dir() -> Path:
    return repo_root() / "figures"


def results_path() -> Path:
    return figures_dir() / "results.json"


def readme_path() -> Path:
    return repo_root() / "README.md"


def load_results(path: Path | None = None) -> dict[str, Any]:
    path = path or results_path()
    if not path.exists():
        return {"schema_version": 1, "experiments": {}}
    return json.loads(path.read_text())


def save_results(results: Mapping[str, Any], path: Path | None = None) -> None:
    atomic_write_json(path or results_path(), results)


def update_reference(run: RunDir, summary: Mapping[str, Any], preset: str | None) -> list[Path]:
    """Merge one experiment's headline into results.json and copy its figures and metrics.

    Returns the files written. Other experiments' entries are left untouched; the README table
    and ``figures/README.md`` are rendered afresh.
    """
    written = []
    data_dir = figures_dir() / "data" / run.reference_key
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.csv", "summary.json"):
        if (run.path / name).exists():
            shutil.copyfile(run.path / name, data_dir / name)
            written.append(data_dir / name)
    for png in sorted((run.path / "figures").glob("*.png")):
        target = figures_dir() / f"{run.reference_key}.{png.name}"
        shutil.copyfile(png, target)
        written.append(target)
    results = load_results()
    entry = results["experiments"].setdefault(run.reference_key, {})
    entry["headline"] = {
        "preset": preset,
        "config_hash": run.config_hash,
        "command": reference_command(run.experiment, preset, run.reference_args),
        "figures": [p.name for p in written if p.suffix == ".png"],
        "predictions": summary.get("predictions", []),
    }
    save_results(results)
    written.append(results_path())
    atomic_write_text(figures_dir() / "README.md", figures_readme(results))
    render_readme_table()
    return written


def render_readme_table() -> bool:
    """Rewrite the README results table from results.json. Returns True if it changed."""
    readme = readme_path()
    if not readme.exists():
        return False
    text = readme.read_text()
    new = with_results_table(text, load_results())
    if new != text:
        atomic_write_text(readme, new)
    return new != text


def reference_command(experiment: str, preset: str | None, args: str = "") -> str:
    group, short = experiment.split(".", 1)
    return " ".join(filter(None, ("elasticity", group, short, args, f"--preset {preset}", "--update-reference")))
