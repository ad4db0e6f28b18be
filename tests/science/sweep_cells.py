"""Cheap deterministic cell functions for the sweep machinery tests (no training)."""

from __future__ import annotations

import os
import time
import zlib

import numpy as np

from harness.metrics import metric_row
from toymodels.sweep import Cell


def noisy_line(cell: Cell, device: str) -> list[dict]:
    """A noisy line y = slope * x per seed; the noise depends only on the cell key."""
    rng = np.random.default_rng(zlib.crc32(cell.key.encode()))
    delay = float(os.environ.get("SWEEP_TEST_CELL_SECONDS", "0"))
    if delay:
        time.sleep(delay)
    slope = float(cell["slope"])
    rows = [metric_row("y", slope * x + rng.normal(0, 0.1), "nats", x=x) for x in (1, 2, 4)]
    rows.append(metric_row("device_is_" + device, 1.0, "count", probe="a"))
    return rows


def censored(cell: Cell, device: str) -> list[dict]:
    """A reading that never got there (NaN), as R_back is when the curve stays above S0."""
    return [metric_row("r_back", float("nan"), "examples"), metric_row("steps", 3.0, "steps")]
