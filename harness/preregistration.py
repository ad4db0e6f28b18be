"""The pre-registered primary readings (``preregistration.toml``): one per prediction of the paper.

An experiment builds every reading through :func:`reading`: a reading whose id is pre-registered as
primary for that experiment gets the declared claim and family and so a verdict; every other reading
is exploratory (a value and an interval, no verdict).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from harness.verdicts import Claim, Estimate, Prediction, judge

FILE = Path(__file__).with_name("preregistration.toml")


@dataclass(frozen=True, kw_only=True)
class Primary:
    id: str
    claim: str
    family: str
    measure: str
    experiments: tuple[str, ...]
    why: str
    direction: int | None = None
    band: tuple[float, float] | None = None

    @property
    def predicted(self) -> Claim:
        return Claim(direction=self.direction, band=tuple(self.band) if self.band else None)


@cache
def primaries() -> dict[str, Primary]:
    """Every pre-registered primary reading, by id."""
    data = tomllib.loads(FILE.read_text())
    out = {}
    for entry in data["primary"]:
        entry = {**entry, "experiments": tuple(entry["experiments"]),
                 "band": tuple(entry["band"]) if "band" in entry else None}
        out[entry["id"]] = Primary(**entry)
    return out


def primary_for(pid: str, experiment: str) -> Primary | None:
    """The primary reading ``pid`` of ``experiment`` (a model variant such as ``llm.rebound.gemma3-270m``
    counts as its experiment), or None when the reading is exploratory there."""
    entry = primaries().get(pid)
    if entry is None:
        return None
    return entry if any(experiment == e or experiment.startswith(e + ".") for e in entry.experiments) else None


def reading(pid: str, est: Estimate, measure: str, *, experiment: str, **extra: Any) -> Prediction:
    """A Prediction of ``experiment``: primary (claim, family, verdict) when pre-registered, else exploratory."""
    entry = primary_for(pid, experiment)
    if entry is None:
        return judge(pid, est, measure, **extra)
    return judge(pid, est, measure, claim=entry.predicted, family=entry.family, **extra)
