"""Calibration of the mitigation primary readings on synthetic runs of the toy.mitigations shape.

Each replicate draws the runs of two treatments, plain SFT and one other, each from the rebound
generator (:func:`toymodels.protocols.rebound_calibration.rebound_rows`: the toy.rebound reference's
rate laws, starts, S0 and noise) at the shape of the mitigations experiment (its committed reference,
or its ``full`` preset before there is one). The two treatments are drawn independently: a real run
pairs them on one pre-trained model, which makes the paired difference less noisy as long as the two
runs are positively correlated (as runs from one model are expected to be): then the false-positive
rates are upper bounds and the powers lower bounds.

- Retention: the effect is planted by raising the treatment's score at every R > 0 by ``size``
  times its alignment gain (``score(R = 0) - S0``), which moves its retention by exactly ``size``.
- A preference method's rebound reading: the treatment's window rate is planted rising by ``size``
  (a share of its mean) per decade of F, as the rebound calibration plants it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from harness.calibration import Calibration
from harness.reference import figures_dir
from harness.verdicts import Prediction
from toymodels.protocols import rebound_calibration as rc
from toymodels.protocols.mitigation_readings import against_sft, readings_by_run, rebound_under

EXPERIMENT = "toy.mitigations"
NOISE_SCALE = rc.STEP_NOISE_SCALE["initial_rate"]  # retention reads the same window as the initial rate


@cache
def mitigations_shape() -> rc.Shape:
    """The shape of the committed toy.mitigations reference, or of its full preset before there is one."""
    if (figures_dir() / "data" / EXPERIMENT / "config.json").exists():
        return rc.headline_shape(EXPERIMENT)
    from toymodels.protocols.mitigations import EXPERIMENT as MITIGATIONS

    config = MITIGATIONS.resolve("full")
    return rc.Shape(config.seeds, config.tasks, config.probe.forward_amounts,
                    np.asarray(config.probe.reverse_amounts, dtype=float))


def tagged(rows: list[dict[str, Any]], treatment: str) -> list[dict[str, Any]]:
    return [{**r, "condition": {**r["condition"], "treatment": treatment, "init": "pretrained"}} for r in rows]


def plant_retention(rows: list[dict[str, Any]], size: float) -> list[dict[str, Any]]:
    """Raise every score at R > 0 by ``size`` times its curve's alignment gain (log-odds rows only:
    the readings read log-odds)."""
    s0 = {(r["seed"], r["condition"]["task"]): r["value"] for r in rows if r["measure"] == "s0_log_odds"}
    start = {(r["seed"], r["condition"]["task"], r["condition"]["F"]): r["value"] for r in rows
             if r["measure"] == "score_log_odds" and r["x"] == 0}
    out = []
    for r in rows:
        c = r["condition"]
        if r["measure"] == "score_log_odds" and r["x"] > 0:
            gain = start[(r["seed"], c["task"], c["F"])] - s0[(r["seed"], c["task"])]
            r = {**r, "value": r["value"] + size * gain}
        out.append(r)
    return out


def retention_replicate(treatment: str, size: float, seed: int) -> Prediction:
    shape = mitigations_shape()
    sft = tagged(rc.rebound_rows(0.0, 0.0, 2 * seed, NOISE_SCALE, shape), "sft")
    other = tagged(plant_retention(rc.rebound_rows(0.0, 0.0, 2 * seed + 1, NOISE_SCALE, shape), size), treatment)
    return against_sft(readings_by_run(sft + other), treatment, "retention", EXPERIMENT)


def rebound_replicate(treatment: str, size: float, seed: int) -> Prediction:
    rows = tagged(rc.rebound_rows(size, 0.0, seed, NOISE_SCALE, mitigations_shape()), treatment)
    return rebound_under(rows, treatment, EXPERIMENT, with_control_arm=False)[0]


NOISE = ("toy.rebound reference's rate laws, starts, S0 and step noise (scale 0.5, as for the initial rate) at the "
         "toy.mitigations shape; SFT and the treatment drawn independently (a real run pairs them)")
RETENTION_UNIT = "retention change, in the reading's unit (the fraction of the alignment gain kept over reverse steps 1-9)"


def _retention(treatment: str, band: bool) -> Calibration:
    return Calibration(
        reading=f"mitigation.{treatment}_retention", experiment=EXPERIMENT,
        replicate=lambda size, seed: retention_replicate(treatment, size, seed),
        # a band claim: null at the band's edge, the effect planted inside it (scanned toward its centre)
        null=0.05 if band else 0.0, stated=0.0 if band else 0.1,
        scan=(0.04, 0.03, 0.02, 0.01, 0.0) if band else (0.02, 0.04, 0.06, 0.08, 0.12),
        unit=RETENTION_UNIT,
        paper_size="none: the paper names mitigations only in words (Appendix C.2)" if treatment != "replay" else
        "derived: 0.02 or less (mixture model, theory/mitigations.py)",
        noise=NOISE)


def _rebound(treatment: str) -> Calibration:
    return Calibration(
        reading=f"mitigation.{treatment}_rebound", experiment=EXPERIMENT,
        replicate=lambda size, seed: rebound_replicate(treatment, size, seed),
        null=0.0, stated=0.25, scan=(0.05, 0.1, 0.15, 0.2, 0.3),
        unit="rise of the F > 0 initial rate per decade of F, as a share of its mean",
        paper_size="sign only: the paper's ablations say rebound appears after DPO and SimPO, with no numbers",
        noise=NOISE)


CALIBRATIONS: tuple[Calibration, ...] = (
    _retention("replay", band=True), _retention("anchor", band=False), _retention("vaccine", band=False),
    _rebound("dpo"), _rebound("simpo"))

