"""Markdown renderings of the reference results: the README results and calibration tables, the
dashboard block at the top of the README and of report.md, the prediction tables of reports, and
figures/README.md.

Pure text: :mod:`harness.reference` decides where it is written. Primary readings come first with
their raw and Holm-adjusted verdicts; exploratory readings follow in their own table, with no verdict;
exact checks are pass/fail.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TABLE_START = "<!-- results-table:start -->"
TABLE_END = "<!-- results-table:end -->"
CALIBRATION_START = "<!-- calibration-table:start -->"
CALIBRATION_END = "<!-- calibration-table:end -->"
DASHBOARD_START = "<!-- dashboard:start -->"
DASHBOARD_END = "<!-- dashboard:end -->"
DASHBOARD_ALT = ("Forest plot of every primary reading: value and 95% interval in units of the reading's minimal "
                 "detectable effect, coloured by verdict")

PRIMARY_HEADER = ("prediction", "family", "verdict", "Holm-adjusted", "value", "95% CI", "n_runs", "p",
                  "p (Holm)", "measure")
EXPLORATORY_HEADER = ("reading", "value", "95% CI", "n_runs", "p (two-sided)", "measure")
EXACT_HEADER = ("check", "result", "value", "detail")
CALIBRATION_HEADER = ("reading", "experiment", "false-positive rate (± MCSE)", "power at stated size",
                      "minimal detectable effect (planted size at 0.8 power)", "the size the paper implies",
                      "noise matched to")

# (lead cells, reading, trail cells): one table row with context around the reading's own cells
Row = tuple[Sequence[str], Mapping[str, Any], Sequence[str]]


def md_cell(x: Any, digits: int = 3) -> str:
    """One Markdown table cell: numbers to ``digits`` significant figures, pipes escaped."""
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return "" if x is None else str(x).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ci(p: Mapping[str, Any], digits: int) -> str:
    lo, hi = p.get("ci") or (None, None)
    return f"[{md_cell(lo, digits)}, {md_cell(hi, digits)}]"


def _bold(text: Any) -> str:
    return f"**{text}**" if text else ""


def primary_cells(p: Mapping[str, Any], digits: int = 3) -> list[str]:
    return [f"`{p['id']}`", md_cell(p.get("family")), _bold(p.get("verdict")), _bold(p.get("verdict_adjusted")),
            md_cell(p.get("value"), digits), _ci(p, digits), md_cell(p.get("n_runs")),
            md_cell(p.get("p_value"), digits), md_cell(p.get("p_adjusted"), digits), md_cell(p.get("measure"))]


def exploratory_cells(p: Mapping[str, Any], digits: int = 3) -> list[str]:
    return [f"`{p['id']}`", md_cell(p.get("value"), digits), _ci(p, digits), md_cell(p.get("n_runs")),
            md_cell(p.get("p_value"), digits), md_cell(p.get("measure"))]


def exact_cells(check: Mapping[str, Any], digits: int = 3) -> list[str]:
    return [f"`{check['id']}`", "pass" if check.get("passed") else "**FAIL**", md_cell(check.get("value"), digits),
            md_cell(check.get("detail"))]


def readings_tables(rows: Sequence[Row], lead: Sequence[str] = (), trail: Sequence[str] = (),
                    digits: int = 3) -> list[str]:
    """The primary table then the exploratory one (each only when it has rows), with a heading line each.

    A reading without ``primary`` (an earlier record) is shown as exploratory.
    """
    primary = [r for r in rows if r[1].get("primary")]
    exploratory = [r for r in rows if not r[1].get("primary")]
    out: list[str] = []
    if primary:
        out += ["Primary readings (pre-registered; the verdict and its Holm adjustment within the family):", "",
                md_table((*lead, *PRIMARY_HEADER, *trail),
                         ([*a, *primary_cells(p, digits), *b] for a, p, b in primary))]
    if exploratory:
        out += [""] if out else []
        out += ["Exploratory readings (no verdict: the value, its 95% interval and a two-sided p-value "
                "against 0):", "",
                md_table((*lead, *EXPLORATORY_HEADER, *trail),
                         ([*a, *exploratory_cells(p, digits), *b] for a, p, b in exploratory))]
    return out


def exact_table(rows: Sequence[Row], lead: Sequence[str] = (), trail: Sequence[str] = ()) -> list[str]:
    if not rows:
        return []
    return ["Exact checks (pass or fail, never a verdict):", "",
            md_table((*lead, *EXACT_HEADER, *trail), ([*a, *exact_cells(c), *b] for a, c, b in rows))]


def _headlines(results: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for name in sorted(results.get("experiments", {})):
        headline = results["experiments"][name].get("headline")
        if headline:
            yield name, headline


def results_table(results: Mapping[str, Any]) -> str:
    """Every headline reading: primary ones (by family) first, exploratory ones below, then exact checks."""
    rows: list[Row] = []
    checks: list[Row] = []
    for name, headline in _headlines(results):
        source = [f"`{headline.get('preset')}`"]
        rows += [([f"`{name}`"], p, source) for p in headline.get("predictions", [])]
        checks += [([f"`{name}`"], c, source) for c in headline.get("exact_checks", [])]
    rows.sort(key=lambda r: (str(r[1].get("family") or ""), r[0][0]) if r[1].get("primary") else ("", r[0][0]))
    lines = readings_tables(rows, lead=("experiment",), trail=("source",))
    scope = results.get("holm_scope")
    if scope and any(r[1].get("primary") for r in rows):
        lines += ["", f"Holm adjustment: {scope}."]
    extra = exact_table(checks, lead=("experiment",), trail=("source",))
    lines += ([""] if lines and extra else []) + extra
    return "\n".join(lines) if lines else "No reference results recorded yet."


def calibration_cells(c: Mapping[str, Any]) -> list[str]:
    """One calibration's row (figures/calibration.json) as plain text, in the order of CALIBRATION_HEADER."""
    unit = c.get("unit", "")
    fails = (" (fails)" if not c.get("fpr_ok") else "", " (fails)" if not c.get("power_ok") else "")
    mde = c.get("minimal_detectable_effect")
    return [
        c["reading"], c["experiment"],
        f"{c['false_positive_rate']:.3f} ± {c['false_positive_mcse']:.3f}{fails[0]}",
        f"{c['power']:.2f} ± {c['power_mcse']:.2f} at {md_cell(c['stated_effect'])} {unit}{fails[1]}",
        mde_text(mde, c.get("power_curve") or {}, unit),
        str(c.get("paper_size") or ""), str(c.get("noise") or ""),
    ]


def mde_text(mde: float | None, power_curve: Mapping[str, float], unit: str) -> str:
    """The minimal detectable effect; one reached at the scan's first (smallest) size is a bound,
    since the scan never looked closer to the null."""
    if mde is None or mde != mde:
        return "not reached on the scan"
    first = next(iter(power_curve), None)
    if first is not None and float(first) == mde:
        return f"{md_cell(mde)} {unit} or closer to the null (reached at the scan's first size)"
    return f"{md_cell(mde)} {unit}"


def calibration_rows(calibration: Mapping[str, Any]) -> list[list[str]]:
    """Every calibration's row as plain text, by name."""
    return [calibration_cells(calibration["calibrations"][name]) for name in sorted(calibration.get("calibrations", {}))]


def calibration_table(calibration: Mapping[str, Any]) -> str:
    """The calibration of every reading that issues a verdict (figures/calibration.json)."""
    rows = [[f"`{reading}`", f"`{experiment}`", *map(md_cell, rest)]
            for reading, experiment, *rest in calibration_rows(calibration)]
    if not rows:
        return "No calibration recorded yet."
    return md_table(CALIBRATION_HEADER, rows) + "\n\n" + calibration_provenance(calibration)


def calibration_provenance(calibration: Mapping[str, Any]) -> str:
    """Which command at which commit made the calibrations of which experiments' readings (they are
    merged by reading, so one table holds several runs)."""
    made: dict[tuple[str, str], dict[str, None]] = {}
    for name in sorted(calibration.get("calibrations", {})):
        c = calibration["calibrations"][name]
        made.setdefault((str(c.get("git_commit", ""))[:7], str(c.get("command", ""))), {})[f"`{c['experiment']}`"] = None
    runs = "; ".join(f"{', '.join(experiments)} by `{command}` at `{commit}`"
                     for (commit, command), experiments in made.items())
    return (f"{calibration.get('n_replicates')} replicates per planted size (seed {calibration.get('seed')}). "
            f"Made: {runs}.")


def with_block(readme: str, start_marker: str, end_marker: str, body: str) -> str:
    """``readme`` with the text between two markers replaced (unchanged without the markers)."""
    start, end = readme.find(start_marker), readme.find(end_marker)
    if start < 0 or end < start:
        return readme
    return readme[: start + len(start_marker)] + "\n" + body + "\n" + readme[end:]


def with_results_table(readme: str, results: Mapping[str, Any]) -> str:
    return with_block(readme, TABLE_START, TABLE_END, results_table(results))


def with_calibration_table(readme: str, calibration: Mapping[str, Any]) -> str:
    return with_block(readme, CALIBRATION_START, CALIBRATION_END, calibration_table(calibration))


def dashboard_block(image: str | None, report: str, screenshot: str | None = None) -> str:
    """The dashboard image and what it shows (when there is one), and a link to the HTML report; with a
    ``screenshot``, the report is the reference's, which is made locally rather than committed (it
    embeds every figure), so the block shows its screenshot and says how to make it."""
    text = (f"The same report as one self-contained page, every figure embedded and every table sortable: "
            f"[`{report}`]({report}) (open it in a browser).")
    if screenshot:
        text = (f"`elasticity figures` writes the same report as one self-contained page, every figure "
                f"embedded and every table sortable, to `{report}` (not committed: it holds every figure). "
                "Its tables:")
    if image:
        text = ("Every pre-registered primary reading at a glance: its value and 95% interval in units of the "
                "reading's minimal detectable effect (0 is no effect, 1 the smallest effect its calibration "
                "detects with 80% power, positive the predicted direction), coloured by the Holm-adjusted "
                "verdict, with the raw value and unit at the row's end; a reading with no calibrated MDE in its "
                "own unit is marked off the axis. " + text)
    lines = [f"![{DASHBOARD_ALT}]({image})", ""] if image else []
    lines.append(textwrap.fill(text, width=104, break_long_words=False, break_on_hyphens=False))
    if screenshot:
        lines += ["", f'<img src="{screenshot}" width="480" alt="The HTML report\'s sortable tables">']
    return "\n".join(lines)


def with_dashboard(text: str, body: str) -> str:
    """``text`` with its dashboard block replaced, or inserted under its title when it has none."""
    if DASHBOARD_START in text:
        return with_block(text, DASHBOARD_START, DASHBOARD_END, body)
    title, _, rest = text.partition("\n")
    if not title.startswith("# "):
        return text
    return f"{title}\n\n{DASHBOARD_START}\n{body}\n{DASHBOARD_END}\n\n" + rest.lstrip("\n")


def figures_readme(results: Mapping[str, Any], calibration: Mapping[str, Any] | None = None,
                   overviews: Sequence[tuple[str, str]] = ()) -> str:
    """figures/README.md: which command made each reference figure; ``overviews`` are (file, command)
    of the files drawn from every headline at once (the dashboard, the HTML report)."""
    lines = [
        "# Reference figures", "",
        "Each figure is drawn from the metrics under `data/<experiment>/` (redraw them all with",
        "`elasticity figures`); the calibration figure from `calibration.json`; the dashboard and the HTML",
        "report from both. This file is generated by `--update-reference` and `elasticity figures`.", "",
        "| figure | experiment | made by |", "|---|---|---|",
    ]
    for name, headline in _headlines(results):
        for fig in headline.get("figures", []):
            lines.append(f"| [`{fig}`]({fig}) | `{name}` | `{headline.get('command', '')}` |")
    if calibration and calibration.get("figure"):
        fig = calibration["figure"]
        lines.append(f"| [`{fig}`]({fig}) | calibration | `{calibration.get('command', '')}` |")
    lines += [f"| [`{name}`]({name}) | every headline | `{command}` |" for name, command in overviews]
    return "\n".join(lines) + "\n"
