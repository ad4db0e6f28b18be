"""The committed reference results: ``figures/results.json``, ``figures/calibration.json`` and the
reference figures and data.

``results.json`` layout (schema 2)::

    {"schema_version": 2,
     "holm_scope": "...", "holm_families": {"<family>": ["<experiment>:<prediction id>", ...]},
     "experiments": {
        "<experiment>": {
            "headline": {"preset": "full", "config_hash": "...", "command": "...", "figures": [...],
                         "predictions": [...], "exact_checks": [...],
                         "provenance": {"git_commit": "...", "tree_clean": true, "versions": {...},
                                        "model": ..., "weights_sha256": ..., "data_sha256": ...}},
            "tests": {"<test config hash>": {"<prediction id>": {"verdict": ..., "value": ..., "ci": ...}}}
        }}}

The primary readings of every headline are Holm-adjusted within their family across all headlines
(a family is one of the paper's effects, over its predictions and models), afresh at every update.
Updating one experiment never touches another's entries, so refreshing the toy results keeps the LLM
ones. Prediction tests compare their verdict with ``tests[<hash>]`` (see ``tests/verdicts.py``).

A reference is made from a commit: :func:`require_clean_tree` refuses (ConfigError, exit 2) when
tracked files outside ``figures/`` differ from HEAD. Callers check it once, before running anything,
so that an update of several experiments does not block itself by writing ``figures/``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_json, atomic_write_text
from harness.errors import ConfigError
from harness.html_report import DASHBOARD, REPORT, reference_report, run_report
from harness.markdown import (
    dashboard_block,
    figures_readme,
    with_calibration_table,
    with_dashboard,
    with_results_table,
)
from harness.runs import (
    RunDir,
    changed_outside_outputs,
    folder_locked,
    package_versions,
    repo_root,
    run_git,
)
from harness.verdicts import SCHEMA_VERSION, adjust_families

PROVENANCE_PACKAGES = ("lm-elasticity", "numpy", "scipy", "torch", "transformers")
HOLM_SCOPE = ("within each family, across the primary readings of every headline in this file "
              "(underpowered readings are left out)")
CALIBRATION_FIGURE = "calibration.power_curves.png"
SCREENSHOT = "report.png"  # figures/report.html at its tables, for the README
# the files drawn from every headline at once, with the command that makes them
OVERVIEWS = ((DASHBOARD, "elasticity figures"), (REPORT, "elasticity figures"),
             (SCREENSHOT, "elasticity figures --screenshot"))


def figures_dir() -> Path:
    return repo_root() / "figures"


def results_path() -> Path:
    return figures_dir() / "results.json"


def calibration_path() -> Path:
    return figures_dir() / "calibration.json"


def readme_path() -> Path:
    return repo_root() / "README.md"


def reference_config(experiment: str) -> dict[str, Any]:
    """The resolved config of an experiment's committed reference run (``figures/data/<experiment>``)."""
    return json.loads((figures_dir() / "data" / experiment / "config.json").read_text())["config"]


def load_results(path: Path | None = None) -> dict[str, Any]:
    """results.json; a file in the earlier schema loads as it is (its headlines lack the newer keys)."""
    path = path or results_path()
    if not path.exists():
        return {"schema_version": SCHEMA_VERSION, "experiments": {}}
    return json.loads(path.read_text())


def save_results(results: Mapping[str, Any], path: Path | None = None) -> None:
    atomic_write_json(path or results_path(), results)


def require_clean_tree(root: Path | None = None) -> str:
    """The HEAD commit of the checkout, or ConfigError when it cannot make a reference: not a git
    checkout, or tracked files outside what runs publish that differ from HEAD
    (:func:`harness.runs.changed_outside_outputs`)."""
    root = root or repo_root()
    try:
        head = run_git(root, "rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            raise ConfigError(f"--update-reference needs a git checkout with a commit to record; {root} is not one")
        changed = changed_outside_outputs(root)
    except subprocess.CalledProcessError as err:
        raise ConfigError(f"--update-reference needs git to record the commit ({err.stderr.strip()})") from None
    except (OSError, subprocess.SubprocessError) as err:
        raise ConfigError(f"--update-reference needs git to record the commit ({err})") from None
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise ConfigError(f"--update-reference refuses to start: tracked files outside figures/ differ from HEAD "
                          f"({shown}); commit them first, so that the reference records the commit it was made from")
    return head.stdout.strip()


def code_provenance(commit: str, run: RunDir | None = None) -> dict[str, Any]:
    """The commit a reference is made from (checked clean outside figures/ when the update started),
    the package versions the run recorded, and the run's own commit when it was made at another one
    (a resumed run folder)."""
    record = json.loads((run.path / "config.json").read_text()) if run else {}
    versions = record.get("versions") or package_versions()
    out: dict[str, Any] = {
        "git_commit": commit, "tree_clean": True,
        "versions": {name: versions.get(name) for name in ("python", *PROVENANCE_PACKAGES)},
    }
    made = record.get("git_commit")
    if made and made.removesuffix("-dirty") != commit:
        out["run_git_commit"] = made
    return out


def adjust_headlines(results: dict[str, Any]) -> dict[str, Any]:
    """Holm-adjust every headline's primary readings within their family, across all headlines
    (any earlier adjustment is dropped first, so nothing stale remains)."""
    where, flat = [], []
    for name in sorted(results.get("experiments", {})):
        for i, p in enumerate((results["experiments"][name].get("headline") or {}).get("predictions", [])):
            if p.get("primary"):
                where.append((name, i))
                # JSON stores NaN as null: a null p-value is a missing one
                flat.append({k: v for k, v in p.items() if k not in ("p_adjusted", "verdict_adjusted")
                             and not (k == "p_value" and v is None)})
    families: dict[str, list[str]] = {}
    for (name, i), p in zip(where, adjust_families(flat), strict=True):
        results["experiments"][name]["headline"]["predictions"][i] = p
        if "p_adjusted" in p:
            families.setdefault(p["family"], []).append(f"{name}:{p['id']}")
    results["holm_scope"] = HOLM_SCOPE
    results["holm_families"] = families
    return results


# a reference table larger than this is kept gzip-compressed (read back by harness.metrics)
GZIP_BYTES = 4_000_000


def keep_reference_file(source: Path, data_dir: Path) -> Path:
    """Copy a run's record into a reference's data folder; a table over GZIP_BYTES goes in as
    ``<name>.gz`` (no timestamp in the header, so the same table gives the same bytes)."""
    if source.suffix == ".csv" and source.stat().st_size > GZIP_BYTES:
        target = data_dir / f"{source.name}.gz"
        target.write_bytes(gzip.compress(source.read_bytes(), mtime=0))
        (data_dir / source.name).unlink(missing_ok=True)
        return target
    shutil.copyfile(source, data_dir / source.name)
    (data_dir / f"{source.name}.gz").unlink(missing_ok=True)
    return data_dir / source.name


def update_reference(run: RunDir, summary: Mapping[str, Any], preset: str | None, *, commit: str) -> list[Path]:
    """Merge one experiment's headline into results.json and copy its figures and metrics.

    ``commit`` is what :func:`require_clean_tree` returned when the update started. Returns the files
    written. Other experiments' entries are left untouched, but the Holm adjustment of every headline
    is recomputed; the README tables and ``figures/README.md`` are rendered afresh, the dashboard and
    figures/report.html too when there are some.
    """
    written = []
    data_dir = figures_dir() / "data" / run.reference_key
    data_dir.mkdir(parents=True, exist_ok=True)
    # every saved record a figure may be drawn from (theory.simulate's pareto_counts.json, the llm
    # runs' model.json and data.json beside config, metrics and summary); cells stay in the run
    for source in sorted([*run.path.glob("*.json"), *run.path.glob("*.csv")]):
        written.append(keep_reference_file(source, data_dir))
    for png in sorted((run.path / "figures").glob("*.png")):
        target = figures_dir() / f"{run.reference_key}.{png.name}"
        shutil.copyfile(png, target)
        written.append(target)
    # the test suite's workers, or another run, may be writing results.json too
    with folder_locked(results_path().parent):
        results = load_results()
        entry = results["experiments"].setdefault(run.reference_key, {})
        entry["headline"] = {
            "preset": preset,
            "config_hash": run.config_hash,
            "command": reference_command(run.experiment, preset, run.reference_args),
            "figures": [p.name for p in written if p.suffix == ".png"],
            "predictions": summary.get("predictions", []),
            "exact_checks": summary.get("exact_checks", []),
            # the model, weight and data hashes of a real checkpoint come from the run's summary
            "provenance": {**code_provenance(commit, run), **summary.get("provenance", {})},
        }
        results["schema_version"] = SCHEMA_VERSION
        save_results(adjust_headlines(results))
    written.append(results_path())
    write_figures_readme()
    written += refresh_reference_report()
    render_readme_table()
    return written


def load_calibration(path: Path | None = None) -> dict[str, Any]:
    path = path or calibration_path()
    if not path.exists():
        return {"schema_version": SCHEMA_VERSION, "calibrations": {}}
    return json.loads(path.read_text())


def update_calibration(results: Sequence[Mapping[str, Any]], *, command: str, commit: str) -> dict[str, Any]:
    """Merge calibration results (``CalibrationResult.to_dict()`` plus its ``seed``) into
    figures/calibration.json by reading name, keeping the others, each with the commit and command
    that made it; returns the merged record.

    The caller draws ``CALIBRATION_FIGURE`` from it (figures/report.html embeds the earlier one until
    the next ``elasticity figures``); the README tables and figures/README.md are rendered afresh, the
    dashboard and figures/report.html too when there are some.
    """
    calibration = load_calibration()
    for result in results:
        calibration["calibrations"][result["name"]] = {**result, "git_commit": commit, "command": command}
    calibration.update(figure=CALIBRATION_FIGURE, command=command,
                       provenance=code_provenance(commit))
    reps = sorted({c["n_replicates"] for c in calibration["calibrations"].values()})
    seeds = sorted({c.get("seed") for c in calibration["calibrations"].values()}, key=str)
    calibration.update(n_replicates="/".join(map(str, reps)), seed="/".join(map(str, seeds)))
    atomic_write_json(calibration_path(), calibration)
    write_figures_readme()
    refresh_reference_report()
    render_readme_table()
    return calibration


def write_figures_readme() -> None:
    calibration = load_calibration() if calibration_path().exists() else None
    overviews = [(name, command) for name, command in OVERVIEWS if (figures_dir() / name).exists()]
    atomic_write_text(figures_dir() / "README.md", figures_readme(load_results(), calibration, overviews))


def write_reference_report() -> list[Path]:
    """figures/dashboard.png (when a headline has a primary reading) and figures/report.html."""
    report = reference_report(figures_dir(), load_results(), load_calibration())
    return [path for path in (figures_dir() / DASHBOARD, report) if path.exists()]


def refresh_reference_report() -> list[Path]:
    """:func:`write_reference_report` where ``elasticity figures`` has made one, so that an update keeps
    it current without adding it to a reference folder that has none."""
    return write_reference_report() if (figures_dir() / REPORT).exists() else []


def write_run_report(folder: Path) -> Path:
    """A finished run folder's dashboard and report.html, its readings scaled by the committed
    calibration; the dashboard also heads the folder's report.md, when it has one."""
    report = run_report(folder, load_calibration()["calibrations"])
    markdown = folder / "report.md"
    if markdown.is_file():
        image = DASHBOARD if (folder / DASHBOARD).exists() else None
        atomic_write_text(markdown, with_dashboard(markdown.read_text(), dashboard_block(image, REPORT)))
    return report


def readme_dashboard_block() -> str | None:
    """The README's dashboard block: figures/dashboard.png, and figures/report.html's screenshot with
    how to make it; None while there is no dashboard (``elasticity figures`` makes it)."""
    if not (figures_dir() / DASHBOARD).exists():
        return None
    figures = Path(os.path.relpath(figures_dir(), readme_path().parent)).as_posix()
    image = f"{figures}/{DASHBOARD}"
    screenshot = f"{figures}/{SCREENSHOT}" if (figures_dir() / SCREENSHOT).exists() else None
    return dashboard_block(image, f"{figures}/{REPORT}", screenshot)


def render_readme_table() -> bool:
    """Rewrite the README's dashboard block and its results and calibration tables from the reference
    files. True if changed."""
    readme = readme_path()
    if not readme.exists():
        return False
    text = readme.read_text()
    block = readme_dashboard_block()
    new = with_results_table(with_dashboard(text, block) if block else text, load_results())
    if calibration_path().exists():
        new = with_calibration_table(new, load_calibration())
    if new != text:
        atomic_write_text(readme, new)
    return new != text


def reference_command(experiment: str, preset: str | None, args: str = "") -> str:
    group, short = experiment.split(".", 1)
    return " ".join(filter(None, ("elasticity", group, short, args, f"--preset {preset}", "--update-reference")))
