"""The long-format metrics table: one row per measured point (seed, condition, x, measure, value, unit)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text

METRIC_COLUMNS = ("seed", "condition", "x", "measure", "value", "unit")


def metric_row(measure: str, value: float, unit: str, *, seed: Any = "", condition: str = "",
               x: Any = "") -> dict[str, Any]:
    """One row of the long-format metrics table."""
    return {"seed": seed, "condition": condition, "x": x, "measure": measure, "value": value, "unit": unit}


def restore_nan(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows read back from JSON, which stores NaN (a censored reading) as null."""
    return [{**r, "value": float("nan") if r["value"] is None else r["value"]} for r in rows]


def write_metrics_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        missing = set(METRIC_COLUMNS) - set(row)
        if missing:
            raise ValueError(f"metric row lacks {sorted(missing)}: {row}")
        value = row["value"]
        writer.writerow({**{k: row[k] for k in METRIC_COLUMNS}, "value": repr(float(value))})
    atomic_write_text(path, buffer.getvalue())
    return path


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """Read a metrics table back, with ``value`` as float and ``seed`` and ``x`` parsed."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["value"] = float(row["value"])
        row["seed"] = _number(row["seed"])
        row["x"] = _number(row["x"])
    return rows


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
