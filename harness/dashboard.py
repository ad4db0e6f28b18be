"""The dashboard: a forest plot of every primary reading, on the scale of its minimal detectable effect.

Each row is one primary reading of one experiment. Its value and 95% interval are measured from the
calibration's null (0 for a sign, the band's edge for a band) in units of the reading's minimal
detectable effect (MDE, ``figures/calibration.json``), signed so that the predicted direction is
positive: 0 is no effect, 1 an effect the reading detects with 80% power. Rows are grouped by family
(the paper's effects, then the theorem), the theory, toy and real-checkpoint rows of one reading side by
side, and coloured by the Holm-adjusted verdict; the raw value, its interval and unit end the row.

A reading without an MDE on its own scale is left off that axis rather than drawn against a scale it
does not share: it has no calibration (the real checkpoints), or its MDE is a share of a level the
reading does not report (the rebound calibrations plant a rise as a share of the mean rate). Its row
keeps its label, verdict and raw value and says why it is off the axis.

A run folder's rows use the committed calibration, made for the reference run's size, so that a
smaller run reads on the reference's scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERDICT_COLOURS = {"holds": "#009E73", "contradicted": "#D55E00", "inconclusive": "#6E6E6E",
                   "underpowered": "#0072B2"}
NO_VERDICT_COLOUR = "#000000"
FAMILY_ORDER = ("resistance", "rebound", "scale", "theorem", "mitigation")
FAMILY_TITLES = {"theorem": "theorem (compression rates)", "mitigation": "mitigation (against plain SFT)"}
TIER_ORDER = ("theory", "toy", "llm")  # within a reading: exact theory, toy models, real checkpoints
# The unit of each pre-registered primary reading (harness/preregistration.toml states it in prose).
READING_UNITS = {
    "theorem.ratio_scales_with_k": "log-log slope",
    "resistance.inverse_lower": "nats/token",
    "resistance.beyond_control": "relative asymmetry",
    "rebound.initial_rate_increases_with_F": "log-odds/example per decade of F",
    "rebound.slows_near_s0": "log-odds/example",
    "scale.rebound_grows_with_size": "log-odds/example per decade of parameters",
    "scale.rebound_grows_with_pretraining": "log-odds/example per decade of examples",
    "mitigation.replay_retention": "share of the alignment gain",
    "mitigation.anchor_retention": "share of the alignment gain",
    "mitigation.vaccine_retention": "share of the alignment gain",
    "mitigation.dpo_rebound": "log-odds/example per decade of F",
    "mitigation.simpo_rebound": "log-odds/example per decade of F",
}
# A calibration unit with this word plants the effect as a share of a level, not in the reading's unit.
RELATIVE_UNIT_WORD = "share"


@dataclass(frozen=True)
class Row:
    """One primary reading of one experiment, as the dashboard draws it."""

    experiment: str
    reading: str
    family: str
    verdict: str  # Holm-adjusted where there is one
    raw_verdict: str
    value: float | None
    ci: tuple[float | None, float | None]
    n_runs: int | None
    unit: str
    scaled: tuple[float, float | None, float | None] | None  # value, low, high in MDE units
    off_axis: str  # why the row is not on the MDE axis ("" when it is)


def _number(x: Any) -> float | None:
    """A finite float, or None (JSON stores NaN as null)."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def mde_scale(calibration: Mapping[str, Any] | None) -> tuple[float, float] | str:
    """(null, MDE - null) of a calibration, or why it cannot standardise its reading."""
    if not calibration:
        return "no calibrated MDE"
    if RELATIVE_UNIT_WORD in str(calibration.get("unit", "")):
        return "MDE is a relative share, not this unit"
    mde, null = _number(calibration.get("minimal_detectable_effect")), _number(calibration.get("null")) or 0.0
    if mde is None or mde == null:
        return "MDE not reached on the calibration scan"
    return null, mde - null


def standardised(p: Mapping[str, Any], calibration: Mapping[str, Any] | None
                 ) -> tuple[tuple[float, float | None, float | None] | None, str]:
    """The reading's value, low and high end in MDE units (or None) and why it is off the axis."""
    value = _number(p.get("value"))
    if value is None:
        return None, "no value"
    scale = mde_scale(calibration)
    if isinstance(scale, str):
        return None, scale
    null, step = scale
    ends = [_number(x) for x in (p.get("ci") or (None, None))]
    low, high = sorted((x - null) / step for x in ends) if None not in ends else (None, None)
    return ((value - null) / step, low, high), ""


def primary_rows(readings: Iterable[tuple[str, Mapping[str, Any]]],
                 calibrations: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """The dashboard rows of the primary readings among ``(experiment, prediction)`` pairs;
    ``calibrations`` are figures/calibration.json's, by ``experiment:reading``."""
    rows = []
    for experiment, p in readings:
        if not p.get("primary"):
            continue
        calibration = calibrations.get(f"{experiment}:{p['id']}")
        scaled, off_axis = standardised(p, calibration)
        unit = READING_UNITS.get(p["id"]) or ("" if off_axis else str(calibration.get("unit", "")))
        low, high = p.get("ci") or (None, None)
        rows.append(Row(experiment=experiment, reading=p["id"], family=str(p.get("family") or "other"),
                        verdict=str(p.get("verdict_adjusted") or p.get("verdict") or "no verdict"),
                        raw_verdict=str(p.get("verdict") or ""), value=_number(p.get("value")),
                        ci=(_number(low), _number(high)), n_runs=p.get("n_runs"), unit=unit,
                        scaled=scaled, off_axis=off_axis))
    return rows


def reference_readings(results: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(experiment, prediction)`` of every headline of results.json."""
    for name, entry in sorted(results.get("experiments", {}).items()):
        for p in (entry.get("headline") or {}).get("predictions", []):
            yield name, p


def summary_readings(summary: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(experiment, prediction)`` of a run's summary.json: one experiment's, or each of a reproduce run's."""
    if "experiments" in summary:
        for name, entry in summary["experiments"].items():
            yield from ((name, p) for p in (entry or {}).get("predictions", []))
    else:
        yield from ((summary.get("experiment", ""), p) for p in summary.get("predictions", []))


def _tier(experiment: str) -> int:
    top = experiment.split(".")[0]
    return TIER_ORDER.index(top) if top in TIER_ORDER else len(TIER_ORDER)


def grouped(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """Rows by family (the paper's order first); within one, each reading's rows together, toy before
    real checkpoints."""
    families = sorted({r.family for r in rows},
                      key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else len(FAMILY_ORDER), f))
    out = []
    for family in families:
        members = [r for r in rows if r.family == family]
        first_seen = {r.reading: i for i, r in reversed(list(enumerate(members)))}
        out.append((family, sorted(members, key=lambda r: (first_seen[r.reading], _tier(r.experiment),
                                                           r.experiment))))
    return out


def colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict, NO_VERDICT_COLOUR)


def raw_text(row: Row) -> str:
    """The row's end: raw value, interval and unit (and the unadjusted verdict when it differs)."""
    if row.value is None:
        text = "no value"
    else:
        interval = f" [{row.ci[0]:.3g}, {row.ci[1]:.3g}]" if None not in row.ci else ""
        text = f"{row.value:.3g}{interval} {row.unit}".rstrip()
    if row.raw_verdict and row.raw_verdict != row.verdict:
        text += f"; unadjusted: {row.raw_verdict}"
    return text
