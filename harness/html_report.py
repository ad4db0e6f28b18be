"""report.html: one self-contained page for a run folder, a reproduce folder or the reference (figures/).

The dashboard (:mod:`harness.dashboard`) comes first, then the verdict tables (primary readings with
their verdicts, exploratory readings, exact checks), each sortable by a click on a column's header,
then the figures, embedded. The tables have the columns of the Markdown reports
(:mod:`harness.markdown`). Pure rendering: :mod:`harness.reference` says which calibration applies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text
from harness.dashboard import (
    VERDICT_COLOURS,
    Row,
    primary_rows,
    reference_readings,
    summary_readings,
)
from harness.dashboard_plot import draw_dashboard
from harness.html_page import Cell, esc, image, number_cell, page, prose_cell, table
from harness.markdown import (
    CALIBRATION_HEADER,
    EXACT_HEADER,
    EXPLORATORY_HEADER,
    PRIMARY_HEADER,
    calibration_rows,
)

REPORT = "report.html"
DASHBOARD = "dashboard.png"
READINGS_ANCHOR = "readings"  # the reference report's tables, where its screenshot looks
DASHBOARD_CAPTION = ("Every primary reading: value and 95% interval in units of its minimal detectable effect, "
                     "coloured by the Holm-adjusted verdict; the raw value and unit at the row's end.")
VERDICT_STYLE = "".join(f".v-{v} {{ color: {c}; font-weight: bold; }}" for v, c in VERDICT_COLOURS.items())

# (lead cells, reading, trail cells): one table row with context around the reading's own cells
TableRow = tuple[Sequence[Cell | str], Mapping[str, Any], Sequence[Cell | str]]


def _verdict(v: Any) -> Cell:
    return Cell(v or "", css=f"v-{v}" if v else "")


def _interval(p: Mapping[str, Any], digits: int) -> Cell:
    low, high = p.get("ci") or (None, None)
    if low is None and high is None:
        return Cell("", css="num")
    return Cell(f"[{number_cell(low, digits).text}, {number_cell(high, digits).text}]",
                sort=number_cell(low).sort or "", css="num")


def primary_cells(p: Mapping[str, Any], digits: int = 3) -> list[Cell | str]:
    return [p["id"], p.get("family") or "", _verdict(p.get("verdict")), _verdict(p.get("verdict_adjusted")),
            number_cell(p.get("value"), digits), _interval(p, digits), number_cell(p.get("n_runs")),
            number_cell(p.get("p_value"), digits), number_cell(p.get("p_adjusted"), digits), prose_cell(p.get("measure"))]


def exploratory_cells(p: Mapping[str, Any], digits: int = 3) -> list[Cell | str]:
    return [p["id"], number_cell(p.get("value"), digits), _interval(p, digits), number_cell(p.get("n_runs")),
            number_cell(p.get("p_value"), digits), prose_cell(p.get("measure"))]


def exact_cells(check: Mapping[str, Any], digits: int = 3) -> list[Cell | str]:
    return [check["id"], "pass" if check.get("passed") else "FAIL", number_cell(check.get("value"), digits),
            prose_cell(check.get("detail"))]


def readings_tables(rows: Sequence[TableRow], lead: Sequence[str] = (), trail: Sequence[str] = (),
                    digits: int = 3) -> list[str]:
    """The primary table, then the exploratory one, each with its heading and only when it has rows."""
    primary = [r for r in rows if r[1].get("primary")]
    exploratory = [r for r in rows if not r[1].get("primary")]
    out = []
    if primary:
        out += ["<h3>Primary readings</h3><p class=note>Pre-registered: the verdict and its Holm adjustment "
                "within the family.</p>",
                table((*lead, *PRIMARY_HEADER, *trail), ([*a, *primary_cells(p, digits), *b] for a, p, b in primary))]
    if exploratory:
        out += ["<h3>Exploratory readings</h3><p class=note>No verdict: the value, its 95% interval and a "
                "two-sided p-value against 0.</p>",
                table((*lead, *EXPLORATORY_HEADER, *trail),
                      ([*a, *exploratory_cells(p, digits), *b] for a, p, b in exploratory))]
    return out


def exact_table(rows: Sequence[TableRow], lead: Sequence[str] = (), trail: Sequence[str] = ()) -> list[str]:
    if not rows:
        return []
    return ["<h3>Exact checks</h3>",
            table((*lead, *EXACT_HEADER, *trail), ([*a, *exact_cells(c), *b] for a, c, b in rows))]


def figures(paths: Iterable[Path]) -> list[str]:
    return [image(path, path.name) for path in paths if path.is_file()]


def dashboard_part(rows: Sequence[Row], path: Path, title: str) -> list[str]:
    """The dashboard drawn to ``path`` and embedded, or a note when there is no primary reading."""
    drawn = draw_dashboard(rows, path, title)
    return [image(drawn, DASHBOARD_CAPTION)] if drawn else ["<p class=note>No primary reading: no dashboard.</p>"]


def experiment_part(summary: Mapping[str, Any], folder: Path, digits: int = 4) -> list[str]:
    """One experiment's readings, exact checks, instrument failures and figures."""
    out = readings_tables([((), p, ()) for p in summary.get("predictions", [])], digits=digits)
    out += exact_table([((), c, ()) for c in summary.get("exact_checks", [])])
    out += [f"<p><strong>Instrument check failed:</strong> {esc(f)}</p>" for f in summary.get("instrument_failures", [])]
    return out + figures(sorted((folder / "figures").glob("*.png")))


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def reproduce_parts(summary: Mapping[str, Any], folder: Path) -> list[str]:
    """A reproduce folder: its theory checks, then each experiment from its own run folder inside it."""
    checks = summary.get("theory_checks", [])
    out = ["<h2>Theory checks</h2>", table(("check", "kind", "result", "value"), (
        [c["name"], "exact" if c.get("exact") else "finding",
         "pass" if c.get("passed") else ("FAIL" if c.get("exact") else "not met"), number_cell(c.get("value"), 4)]
        for c in checks))] if checks else []
    for name, entry in summary.get("experiments", {}).items():
        out.append(f"<h2><code>{esc(name)}</code></h2>")
        if entry.get("error"):
            out.append(f"<p><strong>Failed:</strong> <code>{esc(entry['error'])}</code></p>")
            continue
        out += experiment_part(_read_json(folder / name / "summary.json") or entry, folder / name)
    return out


def run_report(folder: Path, calibrations: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``folder``'s dashboard and report.html from its config.json and summary.json."""
    record, summary = _read_json(folder / "config.json"), _read_json(folder / "summary.json")
    name = summary.get("experiment") or record.get("experiment", "")
    made = ", ".join(f"{key} {record[key]}" for key in ("preset", "config_hash", "git_commit", "created_utc")
                     if record.get(key))
    parts = [f"<p>Run folder of <code>{esc(name)}</code> ({esc(made)}).</p>",
             *dashboard_part(primary_rows(summary_readings(summary), calibrations), folder / DASHBOARD,
                             f"Primary readings: {name}")]
    parts += reproduce_parts(summary, folder) if "experiments" in summary else experiment_part(summary, folder)
    target = folder / REPORT
    atomic_write_text(target, page(f"{name} report", parts, VERDICT_STYLE))
    return target


def reference_tables(results: Mapping[str, Any], calibration: Mapping[str, Any]) -> list[str]:
    """Every headline's readings (primary ones by family first) and exact checks, then the calibration."""
    readings: list[TableRow] = []
    checks: list[TableRow] = []
    for name, entry in sorted(results.get("experiments", {}).items()):
        headline = entry.get("headline") or {}
        readings += [([name], p, [headline.get("preset") or ""]) for p in headline.get("predictions", [])]
        checks += [([name], c, [headline.get("preset") or ""]) for c in headline.get("exact_checks", [])]
    readings.sort(key=lambda r: (str(r[1].get("family") or ""), r[0][0]))  # the README's order
    out = [f'<h2 id="{READINGS_ANCHOR}">Readings</h2>', *readings_tables(readings, ("experiment",), ("source",))]
    if results.get("holm_scope"):
        out.append(f"<p class=note>Holm adjustment: {esc(results['holm_scope'])}.</p>")
    out += exact_table(checks, ("experiment",), ("source",))
    if calibration.get("calibrations"):
        cells = [[*row[:-2], *map(prose_cell, row[-2:])] for row in calibration_rows(calibration)]
        out += ["<h2>Calibration</h2>", table(CALIBRATION_HEADER, cells)]
    return out


def reference_figures(folder: Path, results: Mapping[str, Any], calibration: Mapping[str, Any]) -> list[str]:
    """Each headline's figures with the command that made them, then the calibration's."""
    out = ["<h2>Figures</h2>"]
    for name, entry in sorted(results.get("experiments", {}).items()):
        headline = entry.get("headline") or {}
        out += [f"<h3><code>{esc(name)}</code></h3><p class=note>Made by <code>{esc(headline.get('command'))}"
                "</code>.</p>", *figures(folder / f for f in headline.get("figures", []))]
    if calibration.get("figure"):
        out += ["<h3>calibration</h3>", *figures([folder / calibration["figure"]])]
    return out


def reference_report(folder: Path, results: Mapping[str, Any], calibration: Mapping[str, Any]) -> Path:
    """Write the reference's dashboard and report.html into ``folder`` (figures/)."""
    rows = primary_rows(reference_readings(results), calibration.get("calibrations", {}))
    parts = ["<p>Generated from <code>results.json</code> and <code>calibration.json</code> by "
             "<code>elasticity figures</code>.</p>",
             *dashboard_part(rows, folder / DASHBOARD, "Primary readings of the reference"),
             *reference_tables(results, calibration), *reference_figures(folder, results, calibration)]
    target = folder / REPORT
    atomic_write_text(target, page("lm-elasticity reference results", parts, VERDICT_STYLE))
    return target
