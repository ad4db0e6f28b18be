"""The readings of a mitigations run, written once for the toy models and the real checkpoints.

A mitigations run is the rebound protocol once per condition (``sft``, each mitigation, each
preference method) from the same starting model and seed, with rows carrying the condition fields
``condition`` and ``init`` (``pretrained``, or a no-pre-training start). Per run and condition, from
the aligned arms' mean log-odds curves at the largest F:

- ``retention``: the share of the alignment gain (score above S0 at R = 0) still held, averaged over
  the reverse amounts of the initial-rate window (optimizer steps 1-9);
- the cost: the gain itself (``gain_log_odds``) and KL(theta0||model) after alignment (R = 0).

Each mitigation's primary reading is its retention minus plain SFT's, paired by run; each
preference method's is the rebound primary reading under that method. Everything else (the costs,
the preference methods' retention, the readings from a no-pre-training start and beyond the
format-matched neutral arm) is exploratory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.preregistration import reading
from harness.verdicts import Prediction, t_estimate
from toymodels.protocols.rebound_readings import (
    MeanCurves,
    control_arm_predictions,
    curves_from_rows,
    per_run_values,
    run_means,
)

BASELINE = "sft"
RETENTION_PRIMARY = ("replay", "anchor", "vaccine")  # conditions read against SFT as primaries
PREFERENCE = ("dpo", "simpo")  # methods whose primary reading is the rebound reading under them
REBOUND_ID = "rebound.initial_rate_increases_with_F"


def curve_readings(curves: MeanCurves) -> dict[str, float]:
    """Retention, gain and KL(theta0||model) after alignment at the largest F, in log-odds."""
    y, s0 = curves.log_odds[-1], curves.s0_log_odds
    lo, hi = curves.initial_rate_window()
    inside = [j for j, r in enumerate(curves.reverse_amounts) if lo <= r <= hi]
    gain = float(y[0] - s0)
    retention = float(np.mean((y[inside] - s0) / gain)) if inside and gain > 0 else float("nan")
    return {"retention": retention, "gain_log_odds": gain, "kl_after_alignment": float(curves.kl_theta0_model[-1, 0])}


def readings_by_run(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[Any, dict[str, float]]]:
    """(init, condition) -> run -> each curve reading, the mean over the run's tasks (aligned arms)."""
    per: dict[tuple[str, str], dict[Any, list[dict[str, float]]]] = {}
    for (run, group), curves in curves_from_rows(rows).items():
        fields = dict(group)
        if "+" in str(fields.get("task", "")):
            continue  # a control arm
        key = (str(fields.get("init", "pretrained")), str(fields["treatment"]))
        per.setdefault(key, {}).setdefault(run, []).append(curve_readings(curves))
    return {key: {run: {name: float(np.nanmean([v[name] for v in values])) for name in values[0]}
                  for run, values in runs.items()} for key, runs in per.items()}


def _paired(by_run: Mapping[tuple[str, str], Mapping[Any, Mapping[str, float]]], init: str, condition: str,
            name: str) -> list[float]:
    mine, base = by_run.get((init, condition), {}), by_run.get((init, BASELINE), {})
    return [mine[run][name] - base[run][name] for run in mine if run in base]


def mitigation_predictions(rows: Sequence[Mapping[str, Any]], experiment: str,
                           unit: str = "seeds") -> list[Prediction]:
    """Every reading of a mitigations table (see the module docstring); primaries as pre-registered."""
    by_run = readings_by_run(rows)
    conditions = sorted({c for _, c in by_run} - {BASELINE})
    inits = sorted({i for i, _ in by_run}, key=lambda i: i != "pretrained")
    predictions = []
    for init in inits:
        tag = "" if init == "pretrained" else f".control_{init}"
        for condition in conditions:
            for name, desc in (("retention", "share of the alignment gain kept over reverse steps 1-9"),
                               ("gain_log_odds", "alignment gain at the largest F (log-odds above S0)"),
                               ("kl_after_alignment", "KL(theta0||model) after alignment at the largest F")):
                pid = f"mitigation.{condition}_{name}{tag}"
                predictions.append(reading(pid, t_estimate(_paired(by_run, init, condition, name), unit),
                                           f"{desc}: {condition} minus {BASELINE}, paired by run"
                                           + ("" if not tag else f", from the {init} start"),
                                           experiment=experiment))
        if init != "pretrained":
            for condition in conditions:
                pre = dict(zip(*_run_keys(by_run, "pretrained", condition), strict=True))
                ctl = dict(zip(*_run_keys(by_run, init, condition), strict=True))
                # a toy control shares its run's seed; a bridge's has the run's label prefixed
                paired = [pre[run] - ctl.get(run, ctl.get(f"{init}-{run}", np.nan)) for run in pre]
                predictions.append(reading(
                    f"mitigation.{condition}_retention.beyond_control_{init}", t_estimate(paired, unit),
                    f"retention change of {condition} (minus {BASELINE}), pre-trained minus the {init} start, "
                    "paired by run", experiment=experiment))
    for condition in sorted({c for _, c in by_run}):
        own = [r for r in rows if r["condition"].get("treatment") == condition
               and r["condition"].get("init", "pretrained") == "pretrained"]
        values, censored = per_run_values(own, "initial_rate_log_odds", "trend")
        pid = f"mitigation.{condition}_rebound"
        predictions.append(reading(pid, t_estimate(list(values.values()), unit),
                                   f"{REBOUND_ID} with {condition} as the alignment", experiment=experiment,
                                   n_censored_arms=censored))
        predictions += [dataclasses.replace(p, id=f"mitigation.{condition}_rebound.beyond_neutral_control")
                        for p in control_arm_predictions(own, experiment, unit)
                        if p.id == f"{REBOUND_ID}.beyond_neutral_control"]
    return predictions


def _run_keys(by_run: Mapping[tuple[str, str], Mapping[Any, Mapping[str, float]]], init: str, condition: str
              ) -> tuple[list[Any], list[float]]:
    """The runs of (init, condition) and their retention minus SFT's, paired by run."""
    mine, base = by_run.get((init, condition), {}), by_run.get((init, BASELINE), {})
    runs = [run for run in mine if run in base]
    return runs, [mine[run]["retention"] - base[run]["retention"] for run in runs]


def condition_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """init -> condition -> each curve reading's mean over runs (what the summary shows)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (init, condition), runs in readings_by_run(rows).items():
        names = next(iter(runs.values())).keys()
        out.setdefault(init, {})[condition] = {
            name: run_means({"all": [r[name] for r in runs.values()]})["all"] for name in names}
    return out
