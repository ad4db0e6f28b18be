"""The committed reference results: ``figures/results.json``, reference PNGs and the README table.

``results.json`` layout::

    {"schema_version": 1,
     "experiments": {
        "<experiment>": {
            "headline": {"preset": "full", "config_hash": "...", "run": "...", "predictions": [...]},
            "tests": {"<test config hash>": {"<prediction id>": {"verdict": ..., "value": ..., "ci": ...}}}
        }}}

Updating one experiment never touches another's entries, so refreshing the toy results keeps
the LLM ones. Prediction tests compare their verdict with ``tests[<hash>]``; a changed verdict
fails until someone records it deliberately (``ELASTICITY_RECORD_VERDICTS=1``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from theory.runs import RunDir, atomic_write_json, atomic_write_text, repo_root

RECORD_ENV = "ELASTICITY_RECORD_VERDICTS"
TABLE_START = "<!-- results-table:start -->"
TABLE_END = "<!-- results-table:end -->"


def figures_dir() -> Path:
    return repo_root() / "figures"


def results_path() -> Path:
    return figures_dir() / "results.json"


def load_results(path: Path | None = None) -> dict[str, Any]:
    path = path or results_path()
    if not path.exists():
        return {"schema_version": 1, "experiments": {}}
    return json.loads(path.read_text())


def _save_results(results: Mapping[str, Any], path: Path | None = None) -> None:
    atomic_write_json(path or results_path(), results)


def update_reference(run: RunDir, summary: Mapping[str, Any], preset: str | None) -> list[Path]:
    """Merge one experiment's headline into results.json and copy its figures and metrics.

    Returns the files written. Other experiments' entries are left untouched.
    """
    results = load_results()
    entry = results["experiments"].setdefault(run.experiment, {})
    entry["headline"] = {
        "preset": preset,
        "config_hash": run.config_hash,
        "predictions": summary.get("predictions", []),
    }
    _save_results(results)
    written = [results_path()]
    data_dir = figures_dir() / "data" / run.experiment
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.csv", "summary.json"):
        if (run.path / name).exists():
            shutil.copyfile(run.path / name, data_dir / name)
            written.append(data_dir / name)
    for png in sorted((run.path / "figures").glob("*.png")):
        target = figures_dir() / f"{run.experiment}.{png.name}"
        shutil.copyfile(png, target)
        written.append(target)
    render_readme_table()
    return written


def recorded_test_verdict(experiment: str, test_hash: str, prediction_id: str) -> dict[str, Any] | None:
    return (
        load_results()["experiments"].get(experiment, {}).get("tests", {})
        .get(test_hash, {}).get(prediction_id)
    )


def record_test_verdict(experiment: str, test_hash: str, prediction: Mapping[str, Any]) -> None:
    results = load_results()
    tests = results["experiments"].setdefault(experiment, {}).setdefault("tests", {})
    tests.setdefault(test_hash, {})[prediction["id"]] = {
        "verdict": prediction["verdict"],
        "value": prediction.get("value"),
        "ci": prediction.get("ci"),
        "n_seeds": prediction.get("n_seeds"),
    }
    _save_results(results)


def check_recorded_verdict(experiment: str, test_hash: str, prediction: Mapping[str, Any]) -> str:
    """Assert-helper for prediction tests. Returns a message; raises AssertionError on mismatch.

    With ``ELASTICITY_RECORD_VERDICTS=1`` the measured verdict is recorded instead (deliberately).
    """
    measured = (
        f"{experiment} {prediction['id']}: verdict={prediction['verdict']} "
        f"value={prediction.get('value'):.4g} ci={prediction.get('ci')} n={prediction.get('n_seeds')} "
        f"(test config {test_hash})"
    )
    print(measured)
    if os.environ.get(RECORD_ENV) == "1":
        record_test_verdict(experiment, test_hash, prediction)
        return measured + " [recorded]"
    recorded = recorded_test_verdict(experiment, test_hash, prediction["id"])
    if recorded is None:
        raise AssertionError(
            f"no verdict recorded for {measured}. Record it deliberately with "
            f"{RECORD_ENV}=1 and commit figures/results.json."
        )
    if recorded["verdict"] != prediction["verdict"]:
        raise AssertionError(f"verdict changed: recorded {recorded['verdict']}, measured {measured}")
    return measured


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return "" if x is None else str(x)


def results_table(results: Mapping[str, Any] | None = None) -> str:
    """Markdown table of every headline prediction, with the test verdicts beside it."""
    results = results or load_results()
    lines = [
        "| experiment | prediction | verdict | value | 95% CI | n | measure | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(results.get("experiments", {})):
        headline = results["experiments"][name].get("headline")
        if not headline:
            continue
        for p in headline.get("predictions", []):
            ci = p.get("ci") or [None, None]
            lines.append(
                f"| `{name}` | `{p['id']}` | **{p['verdict']}** | {_fmt(p.get('value'))} | "
                f"[{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(p.get('n_seeds'))} | {p.get('measure', '')} | "
                f"`{headline.get('preset')}` |"
            )
    if len(lines) == 2:
        lines.append("| – | no reference results recorded yet | | | | | | |")
    return "\n".join(lines)


def render_readme_table(readme: Path | None = None) -> bool:
    """Rewrite the README results table between its markers. Returns True if it changed."""
    readme = readme or repo_root() / "README.md"
    if not readme.exists():
        return False
    text = readme.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        return False
    new = text[: start + len(TABLE_START)] + "\n" + results_table() + "\n" + text[end:]
    if new != text:
        atomic_write_text(readme, new)
        return True
    return False
