"""Figures: every reference figure is redrawn from figures/data alone, its text is readable (no font
under the floor), no panel is empty, and the shared parts (intervals, ticks, verdicts) behave."""

import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from elasticity import registry
from harness.figure_style import MIN_FONT_PT, interval, measured_ticks, small_texts, verdict_line
from harness.reference import figures_dir
from harness.runner import draw_figures
from harness.runs import RunDir

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REFERENCE_KEYS = sorted(p.parent.name for p in (figures_dir() / "data").glob("*/config.json"))
# cheap to draw (a second or two each) and between them heatmaps, scatter panels and error bars
FAST_KEYS = ("llm.resistance", "theory.boundary")


@pytest.fixture
def inspected(monkeypatch):
    """Every figure saved while the fixture is active: file name -> (small texts, empty axes)."""
    seen: dict[str, tuple[list, list]] = {}
    save = Figure.savefig

    def inspecting_save(fig, path, *args, **kwargs):
        empty = [ax.get_title() or f"axes {i}" for i, ax in enumerate(fig.axes) if not ax.has_data()]
        seen[Path(path).name] = (small_texts(fig), empty)
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", inspecting_save)
    return seen


def _redraw(key: str, tmp_path: Path) -> list[Path]:
    """Draw a reference key's figures from a copy of its committed data (never into figures/data)."""
    scratch = tmp_path / key
    shutil.copytree(figures_dir() / "data" / key, scratch)
    run = RunDir.load(scratch)
    return draw_figures(registry.load(run.experiment), run)


def _owner(png_name: str) -> str | None:
    """The reference key a committed PNG belongs to: the longest key it starts with."""
    keys = [k for k in REFERENCE_KEYS if png_name.startswith(f"{k}.")]
    return max(keys, key=len) if keys else None


def _check_reference(key: str, tmp_path: Path, inspected: dict) -> None:
    drawn = {png.name for png in _redraw(key, tmp_path)}
    committed = {p.name.removeprefix(f"{key}.") for p in figures_dir().glob("*.png") if _owner(p.name) == key}
    assert committed <= drawn, f"{key}: reference figures its data no longer draws: {sorted(committed - drawn)}"
    for name in drawn:
        small, empty = inspected[name]
        assert not small, f"{key}.{name}: text under {MIN_FONT_PT} pt: {small[:5]}"
        assert not empty, f"{key}.{name}: empty panels: {empty}"


@pytest.mark.parametrize("key", FAST_KEYS)
def test_reference_figure_redraws_readably(key, tmp_path, inspected):
    _check_reference(key, tmp_path, inspected)


@pytest.mark.slow
@pytest.mark.parametrize("key", REFERENCE_KEYS)
def test_every_reference_figure_redraws_readably(key, tmp_path, inspected):
    _check_reference(key, tmp_path, inspected)


def test_every_reference_png_has_its_data():
    # an experiment's figure is named after it; the others (calibration, dashboard) are not run figures
    of_runs = [p.name for p in figures_dir().glob("*.png") if p.name.startswith(tuple(registry.EXPERIMENTS))]
    orphans = [name for name in of_runs if _owner(name) is None]
    assert not orphans, f"reference figures without figures/data/<key>/: {orphans}"


def test_measured_ticks_label_the_measured_amounts():
    fig, ax = plt.subplots()
    ax.set_xscale("symlog", linthresh=16)
    measured_ticks(ax, np.arange(0, 513, 16))
    assert list(ax.get_xticks()) == [0, 16, 32, 64, 128, 256, 512]
    # a minor tick where a labelled one stands is not drawn twice
    assert {*ax.get_xticks(), *ax.get_xticks(minor=True)} == set(np.arange(0, 513, 16))
    plt.close(fig)


def test_interval_of_one_run_is_the_value_and_nan_values_are_left_out():
    assert interval([2.0]) == (2.0, 2.0, 2.0)
    mean, lo, hi = interval([1.0, 2.0, 3.0, float("nan")])
    assert mean == 2.0 and lo < 2.0 < hi


def test_verdict_line_names_the_primary_readings_only():
    summary = {"predictions": [{"id": "rebound.a", "primary": True, "verdict": "holds"},
                               {"id": "rebound.b", "primary": False, "verdict": "contradicted"},
                               {"id": "scale.c", "primary": True, "verdict": "inconclusive"}]}
    assert verdict_line(summary, ("rebound.",)) == "rebound.a: holds"
    assert verdict_line(summary, ("nothing.",)) == ""
