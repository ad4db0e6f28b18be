"""report.html: written at the end of every run and beside report.md, self-contained, its tables sortable,
checked in a real headless Chromium (skipped, with the reason, where none is installed)."""

from __future__ import annotations

import json
import os

import pytest

from harness import browser, reference
from harness.html_report import REPORT, run_report
from harness.markdown import DASHBOARD_START
from harness.runner import execute
from tests.foundation.test_runs import MICRO, Micro

# CI sets this where it installed Chromium, so that a missing browser fails there instead of skipping.
REQUIRE_BROWSER = "ELASTICITY_REQUIRE_BROWSER"
CALIBRATIONS = {"toy.resistance:resistance.inverse_lower": {"minimal_detectable_effect": -0.02, "null": 0.0,
                                                            "unit": "nats/token"}}


def _reading(pid, value, verdict=None, **extra):
    return {"id": pid, "value": value, "ci": [value - 0.01, value + 0.01], "n_runs": 5, "p_value": 0.01,
            "measure": f"{pid}, per seed", "primary": verdict is not None, "family": "resistance" if verdict else None,
            "verdict": verdict, "verdict_adjusted": verdict, **extra}


def _finished_run(folder, experiment="toy.resistance"):
    """A finished run folder from saved files: config, summary with three primary readings, one figure."""
    from matplotlib.image import imsave

    (folder / "figures").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"experiment": experiment, "config_hash": "abc123",
                                                    "preset": "quick"}))
    predictions = [_reading("resistance.inverse_lower", -0.03, "holds"),
                   _reading("resistance.beyond_control", 0.2, "contradicted"),
                   _reading("resistance.other_primary", 0.001, "inconclusive"),
                   _reading("resistance.loss_mean", -0.5)]
    (folder / "summary.json").write_text(json.dumps({"experiment": experiment, "predictions": predictions,
                                                     "exact_checks": [{"id": "exact", "passed": True}]}))
    imsave(folder / "figures" / "curve.png", [[0.0, 1.0], [1.0, 0.0]])
    return folder


def test_every_run_ends_with_its_report(tmp_path):
    outcome = execute(MICRO, Micro(n=3), root=tmp_path)
    page = (outcome.run.path / REPORT).read_text()
    assert (outcome.run.path / "dashboard.png").is_file() and "micro.mean_positive" in page
    assert "data:image/png;base64," in page, "the dashboard is embedded"
    assert "http://" not in page and "https://" not in page and "<link rel=\"stylesheet\"" not in page


def test_a_reproduce_folders_report_md_gets_the_dashboard_on_top(tmp_path):
    inner = _finished_run(tmp_path / "rep" / "toy.resistance")
    folder = inner.parent
    (folder / "config.json").write_text(json.dumps({"experiment": "reproduce", "config_hash": "f00"}))
    (folder / "summary.json").write_text(json.dumps({
        "experiment": "reproduce", "theory_checks": [{"name": "identity", "passed": True, "exact": True}],
        "experiments": {"toy.resistance": json.loads((inner / "summary.json").read_text()),
                        "toy.scale": {"error": "ValueError: boom", "predictions": []}}}))
    (folder / "report.md").write_text("# Elasticity reproduction report (quick)\n\nBody.\n")
    reference.write_run_report(folder)
    reference.write_run_report(folder)  # a second time changes nothing
    report_md = (folder / "report.md").read_text()
    assert report_md.count(DASHBOARD_START) == 1 and "](dashboard.png)" in report_md
    assert report_md.index(DASHBOARD_START) < report_md.index("Body.")
    page = (folder / REPORT).read_text()
    assert "identity" in page and "ValueError: boom" in page and page.count("data:image/png;base64,") == 2


def _browser_or_skip():
    reason = browser.missing()
    if reason and os.environ.get(REQUIRE_BROWSER):
        pytest.fail(f"{REQUIRE_BROWSER} is set but {reason}")
    if reason:
        pytest.skip(reason)


def _column(table, header):
    index = table.locator("th").all_inner_texts().index(header)
    return [row.locator("td").nth(index).inner_text() for row in table.locator("tbody tr").all()]


def test_report_opens_in_a_browser_with_images_sorting_and_no_network(tmp_path):
    _browser_or_skip()
    report = run_report(_finished_run(tmp_path / "run"), CALIBRATIONS)
    with browser.browser_page() as page:
        problems, requests = [], []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.resolve().as_uri(), wait_until="load")
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete && i.naturalWidth)")
        assert len(widths) == 2 and all(widths), "the dashboard and the figure decode"
        primary = page.locator("table.sortable").first
        assert _column(primary, "value") == ["-0.03", "0.2", "0.001"]
        primary.locator("th", has_text="value").click()
        assert _column(primary, "value") == ["-0.03", "0.001", "0.2"]
        primary.locator("th", has_text="value").click()
        assert _column(primary, "value") == ["0.2", "0.001", "-0.03"]
        primary.locator("th", has_text="verdict").first.click()
        assert _column(primary, "verdict") == ["contradicted", "holds", "inconclusive"]
    assert not problems
    assert requests == [report.resolve().as_uri()], "the page asked for nothing beyond itself"


def test_screenshot_without_a_browser_is_a_one_line_refusal_before_any_redraw(monkeypatch, capsys):
    from elasticity import figures

    monkeypatch.setattr(browser, "missing", lambda: "no Chromium on PATH")
    monkeypatch.setattr(figures, "redraw_reference", lambda: pytest.fail("redrew before refusing"))
    assert figures.main(["--screenshot"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Chromium on PATH" in err
