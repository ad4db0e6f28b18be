"""The long-format metrics table: one row per measured point, one column per condition field.

In memory a row is ``{"seed", "condition", "x", "measure", "value", "unit"}`` where ``condition``
maps the fields that say which point was measured (``task``, ``F``, ``size``, ...) to plain
values. On disk (``metrics.csv``, ``aggregate.csv``) the condition fields become columns of their
own, between ``seed`` and ``x``, empty where a row has no such field. This module is the one place
that writes and reads that layout; it also reads the earlier layout, which packed the condition
into one ``condition`` column as ``"task=sentiment,F=0"``.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_text

METRIC_COLUMNS = ("seed", "x", "measure", "value", "unit")
AGGREGATE_COLUMNS = ("x", "measure", "unit", "mean", "ci_lo", "ci_hi", "n")
FLOAT_COLUMNS = ("value", "mean", "ci_lo", "ci_hi")
RESERVED = {"seed", "condition", *METRIC_COLUMNS, *AGGREGATE_COLUMNS}  # names a condition field may not take


def metric_row(measure: str, value: float, unit: str, *, seed: Any = "", x: Any = "",
               **condition: Any) -> dict[str, Any]:
    """One row of the metrics table; keyword arguments beyond ``seed`` and ``x`` are its condition."""
    return {"seed": seed, "condition": condition, "x": x, "measure": measure, "value": value, "unit": unit}


def condition_label(condition: Mapping[str, Any]) -> str:
    """``{"size": "50k", "F": 0}`` -> ``"size=50k,F=0"``: a condition as one readable name."""
    return ",".join(f"{key}={value}" for key, value in condition.items())


def restore_nan(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows read back from JSON, which stores NaN (a censored reading) as null."""
    return [{**r, "value": float("nan") if r["value"] is None else r["value"]} for r in rows]


def table_text(rows: Iterable[Mapping[str, Any]], leading: Sequence[str] = ("seed",),
               trailing: Sequence[str] = METRIC_COLUMNS[1:]) -> str:
    """CSV text: the ``leading`` columns, one column per condition field, the ``trailing`` ones.

    Floats in value columns are written with ``repr`` so that they read back exactly.
    """
    rows = list(rows)
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row["condition"]))
    clash = set(fields) & RESERVED
    if clash:
        raise ValueError(f"condition fields {sorted(clash)} clash with the table's columns")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*leading, *fields, *trailing], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        missing = (set(leading) | set(trailing)) - set(row)
        if missing:
            raise ValueError(f"metric row lacks {sorted(missing)}: {row}")
        out = {key: row[key] for key in (*leading, *trailing)}
        out.update({key: repr(float(out[key])) for key in FLOAT_COLUMNS if key in out})
        out.update(row["condition"])
        writer.writerow(out)
    return buffer.getvalue()


def write_metrics_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    atomic_write_text(path, table_text(rows))
    return path


def metrics_path(folder: Path) -> Path:
    """A folder's metrics table: ``metrics.csv``, or ``metrics.csv.gz`` (how a reference keeps a
    large one); the plain name when neither exists."""
    plain = folder / "metrics.csv"
    packed = folder / "metrics.csv.gz"
    return packed if packed.exists() and not plain.exists() else plain


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """Read a metrics or aggregate table back (gzip-compressed when its name ends in .gz): numbers
    parsed, condition fields gathered."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as handle:
        reader = csv.DictReader(handle)
        fixed = RESERVED - {"condition"}
        rows = []
        for raw in reader:
            row: dict[str, Any] = {k: _number(v) for k, v in raw.items() if k in fixed}
            row.update({key: float(raw[key]) for key in FLOAT_COLUMNS if key in raw})
            if "condition" in raw:  # the earlier layout: one packed column
                row["condition"] = parse_packed_condition(raw["condition"])
            else:
                row["condition"] = {k: _number(v) for k, v in raw.items() if k not in fixed and v != ""}
            rows.append(row)
    return rows


def parse_packed_condition(text: str) -> dict[str, Any]:
    """``"task=sentiment,F=0"`` (or ``;``-separated) -> ``{"task": "sentiment", "F": 0}``.

    A part without ``=`` (the earlier ``synthetic`` of llm.pareto) becomes ``{"sample": part}``.
    """
    out: dict[str, Any] = {}
    for part in filter(None, re.split("[,;]", text)):
        key, sep, value = part.partition("=")
        if sep:
            out[key] = _number(value)
        else:
            out["sample"] = part
    return out


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
