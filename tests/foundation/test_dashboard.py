"""The dashboard: primary readings scaled by their minimal detectable effect, grouped, coloured by verdict,
drawn with no text under 8 pt, none overlapping, none cut off; the README's block is the rendered one."""

from __future__ import annotations

import itertools

import pytest

from harness import reference
from harness.dashboard import grouped, primary_rows, raw_text, reference_readings, summary_readings
from harness.dashboard_plot import draw_dashboard, forest_figure
from harness.markdown import DASHBOARD_END, DASHBOARD_START, dashboard_block, with_dashboard


def _p(pid, family, value, ci, verdict, adjusted=None, primary=True):
    return {"id": pid, "family": family, "value": value, "ci": ci, "verdict": verdict, "n_runs": 5,
            "verdict_adjusted": adjusted or verdict, "primary": primary}


CALIBRATIONS = {
    "toy.resistance:resistance.inverse_lower": {"minimal_detectable_effect": -0.02, "null": 0.0, "unit": "nats/token"},
    "toy.compression:theorem.ratio_scales_with_k": {"minimal_detectable_effect": 1.0, "null": 0.9,
                                                    "unit": "log-log slope"},
    "toy.rebound:rebound.slows_near_s0": {"minimal_detectable_effect": 0.2, "null": 0.0,
                                          "unit": "share of the decay rate lost"},
}
READINGS = [
    ("llm.resistance", _p("resistance.inverse_lower", "resistance", -0.04, [-0.06, -0.02], "holds")),
    ("toy.compression", _p("theorem.ratio_scales_with_k", "theorem", 0.7, [0.6, 0.8], "contradicted")),
    ("toy.resistance", _p("resistance.inverse_lower", "resistance", -0.01, [-0.02, 0.0], "holds", "inconclusive")),
    ("toy.rebound", _p("rebound.slows_near_s0", "rebound", 0.001, [-0.004, 0.006], "inconclusive")),
    ("llm.rebound.gemma3-270m", _p("rebound.slows_near_s0", "rebound", None, [None, None], "underpowered")),
    ("toy.rebound", _p("rebound.r_back_decreases_with_F", None, 3.0, [1.0, 5.0], None, primary=False)),
]


def test_rows_scale_by_the_mde_from_the_null_in_the_predicted_direction():
    rows = {(r.experiment, r.reading): r for r in primary_rows(READINGS, CALIBRATIONS)}
    assert len(rows) == 5, "exploratory readings are left out"
    toy = rows["toy.resistance", "resistance.inverse_lower"]
    assert toy.scaled == pytest.approx((0.5, 0.0, 1.0)), "a negative MDE turns the predicted side positive"
    band = rows["toy.compression", "theorem.ratio_scales_with_k"]
    assert band.scaled == pytest.approx((-2.0, -3.0, -1.0)), "a band is measured from the edge it was calibrated at"
    assert toy.verdict == "inconclusive" and "unadjusted: holds" in raw_text(toy)
    assert "nats/token" in raw_text(toy) and "[-0.02, 0]" in raw_text(toy)
    assert rows["llm.resistance", "resistance.inverse_lower"].off_axis == "no calibrated MDE"
    assert "share" in rows["toy.rebound", "rebound.slows_near_s0"].off_axis, "an MDE in another unit scales nothing"
    assert rows["llm.rebound.gemma3-270m", "rebound.slows_near_s0"].off_axis == "no value"


def test_groups_follow_the_papers_effects_with_toy_before_real_checkpoints():
    groups = grouped(primary_rows(READINGS, CALIBRATIONS))
    assert [family for family, _ in groups] == ["resistance", "rebound", "theorem"]
    assert [r.experiment for r in groups[0][1]] == ["toy.resistance", "llm.resistance"]


def test_summary_readings_of_an_experiment_and_of_a_reproduce_run():
    one = {"experiment": "toy.rebound", "predictions": [{"id": "a"}]}
    many = {"experiment": "reproduce", "experiments": {"toy.scale": {"predictions": [{"id": "b"}]},
                                                       "toy.lifecycle": {"error": "boom", "predictions": []}}}
    assert [(e, p["id"]) for e, p in summary_readings(one)] == [("toy.rebound", "a")]
    assert [(e, p["id"]) for e, p in summary_readings(many)] == [("toy.scale", "b")]


def _reference_rows():
    return primary_rows(reference_readings(reference.load_results()), reference.load_calibration()["calibrations"])


@pytest.mark.parametrize("rows", [lambda: primary_rows(READINGS, CALIBRATIONS), _reference_rows],
                         ids=["synthetic", "committed reference"])
def test_the_figure_has_no_small_overlapping_or_clipped_text_and_no_empty_panel(rows):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    fig = forest_figure(grouped(rows()), "Primary readings")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert min(t.get_fontsize() for t in texts) >= 8
    boxes = [(t.get_text(), t.get_window_extent(canvas.get_renderer())) for t in texts]
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]
    assert not overlapping
    width, height = fig.get_size_inches() * fig.dpi
    assert all(b.x0 >= 0 and b.y0 >= 0 and b.x1 <= width and b.y1 <= height for _, b in boxes)
    assert all(ax.lines or ax.texts for ax in fig.axes)


def test_no_primary_reading_draws_nothing_and_removes_a_stale_dashboard(tmp_path):
    stale = tmp_path / "dashboard.png"
    stale.write_bytes(b"old")
    assert draw_dashboard([], stale, "t") is None and not stale.exists()


def test_the_dashboard_block_goes_under_the_title_once():
    text = "# Title\n\nBody.\n"
    once = with_dashboard(text, dashboard_block("d.png", "r.html"))
    assert once.startswith(f"# Title\n\n{DASHBOARD_START}\n![") and once.endswith(f"{DASHBOARD_END}\n\nBody.\n")
    assert with_dashboard(once, dashboard_block("d.png", "r.html")) == once
    assert "r.html" in with_dashboard(once, dashboard_block(None, "r.html")) and "d.png" not in with_dashboard(
        once, dashboard_block(None, "r.html"))


def test_the_readme_dashboard_block_is_the_rendered_one():
    readme = reference.readme_path().read_text()
    assert DASHBOARD_START in readme
    assert with_dashboard(readme, reference.readme_dashboard_block()) == readme, "run `elasticity figures`"


def test_every_reference_primary_reading_has_one_row():
    results = reference.load_results()
    primaries = [(e, p["id"]) for e, p in reference_readings(results) if p.get("primary")]
    rows = primary_rows(reference_readings(results), reference.load_calibration()["calibrations"])
    assert sorted((r.experiment, r.reading) for r in rows) == sorted(primaries)
