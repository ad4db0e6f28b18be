"""The readings of a mitigations run, written once for the toy models and the real checkpoints.

A mitigations run is the rebound protocol once per condition (``sft``, each mitigation, each
preference method) from the same starting model and seed, with rows carrying the condition fields
``treatment`` and ``init`` (``pretrained``, or a no-pre-training start). Per run and treatment, from
the aligned arms' mean log-odds curves at the largest F:

- ``retention``: the share of the alignment gain (score above S0 at R = 0) still held, averaged over
  the reverse amounts of the initial-rate window (optimizer steps 1-9);
- ``decay_rate``: the log-odds lost per reverse example over the same window, read beside retention,
  which mixes the rate with the gain (the same rate takes a larger share of a smaller gain; the rate
  itself may also change with how far alignment got, which is what rebound says);
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
from toymodels import measures
from toymodels.protocols.rebound_readings import (
    MeanCurves,
    control_arm_predictions,
    curves_from_rows,
    finite_mean,
    per_run_values,
)

BASELINE = "sft"
REBOUND_ID = "rebound.initial_rate_increases_with_F"


def curve_readings(curves: MeanCurves) -> dict[str, float]:
    """Retention, gain, the initial decay rate and KL(theta0||model) after alignment at the largest
    F, in log-odds."""
    y, s0 = curves.log_odds[-1], curves.s0_log_odds
    lo, hi = curves.initial_rate_window()
    inside = [j for j, r in enumerate(curves.reverse_amounts) if lo <= r <= hi]
    gain = float(y[0] - s0)
    retention = float(np.mean((y[inside] - s0) / gain)) if inside and gain > 0 else float("nan")
    return {"retention": retention, "gain_log_odds": gain,
            "decay_rate": measures.initial_decay_rate(curves.reverse_amounts, y, (lo, hi)),
            "kl_after_alignment": float(curves.kl_theta0_model[-1, 0])}


def readings_by_run(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[Any, dict[str, float]]]:
    """(init, condition) -> run -> each curve reading, the mean over the run's tasks (aligned arms)."""
    # a task whose alignment gained nothing has no retention and drops out of its run's mean
    per: dict[tuple[str, str], dict[Any, list[dict[str, float]]]] = {}
    for (run, group), curves in curves_from_rows(rows).items():
        fields = dict(group)
        if "+" in str(fields.get("task", "")):
            continue  # a control arm
        key = (str(fields.get("init", "pretrained")), str(fields["treatment"]))
        per.setdefault(key, {}).setdefault(run, []).append(curve_readings(curves))
    return {key: {run: {name: finite_mean([v[name] for v in values]) for name in values[0]}
                  for run, values in runs.items()} for key, runs in per.items()}


CURVE_READINGS = (("retention", "share of the alignment gain kept over reverse steps 1-9"),
                  ("gain_log_odds", "alignment gain at the largest F (log-odds above S0)"),
                  ("decay_rate", "initial log-odds decay rate at the largest F (per reverse example, steps 1-9): "
                                 "read beside retention, which also depends on the gain"),
                  ("kl_after_alignment", "KL(theta0||model) after alignment at the largest F"))


def paired(by_run: Mapping[tuple[str, str], Mapping[Any, Mapping[str, float]]], init: str, treatment: str,
           name: str) -> dict[Any, float]:
    """run -> the treatment's reading ``name`` minus SFT's, from the ``init`` start."""
    mine, base = by_run.get((init, treatment), {}), by_run.get((init, BASELINE), {})
    return {run: mine[run][name] - base[run][name] for run in mine if run in base}


def against_sft(by_run: Mapping[tuple[str, str], Mapping[Any, Mapping[str, float]]], treatment: str, name: str,
                experiment: str, init: str = "pretrained", unit: str = "seeds") -> Prediction:
    """One curve reading of ``treatment`` minus SFT's, a t-interval over runs."""
    tag = "" if init == "pretrained" else f".control_{init}"
    desc = dict(CURVE_READINGS)[name]
    return reading(f"mitigation.{treatment}_{name}{tag}", t_estimate(list(paired(by_run, init, treatment, name).values()), unit),
                   f"{desc}: {treatment} minus {BASELINE}, paired by run" + (f", from the {init} start" if tag else ""),
                   experiment=experiment)


def beyond_control(by_run: Mapping[tuple[str, str], Mapping[Any, Mapping[str, float]]], treatment: str, init: str,
                   experiment: str, unit: str = "seeds") -> Prediction:
    """The treatment's retention change (minus SFT's) from pre-trained minus from the ``init`` start."""
    pre, ctl = paired(by_run, "pretrained", treatment, "retention"), paired(by_run, init, treatment, "retention")
    # a toy control shares its run's seed; a bridge's has the run's label prefixed
    values = [pre[run] - ctl.get(run, ctl.get(f"{init}-{run}", np.nan)) for run in pre]
    return reading(f"mitigation.{treatment}_retention.beyond_control_{init}", t_estimate(values, unit),
                   f"retention change of {treatment} (minus {BASELINE}), pre-trained minus the {init} start, "
                   "paired by run", experiment=experiment)


def rebound_under(rows: Sequence[Mapping[str, Any]], treatment: str, experiment: str, unit: str = "seeds",
                  with_control_arm: bool = True) -> list[Prediction]:
    """The rebound primary reading with ``treatment`` as the alignment (pre-trained start), and the
    same beyond the format-matched neutral arm."""
    own = [r for r in rows if r["condition"].get("treatment") == treatment
           and r["condition"].get("init", "pretrained") == "pretrained"]
    values, censored = per_run_values(own, "initial_rate_log_odds", "trend")
    out = [reading(f"mitigation.{treatment}_rebound", t_estimate(list(values.values()), unit),
                   f"{REBOUND_ID} with {treatment} as the alignment", experiment=experiment, n_censored_arms=censored)]
    if with_control_arm:
        out += [dataclasses.replace(p, id=f"mitigation.{treatment}_rebound.beyond_neutral_control")
                for p in control_arm_predictions(own, experiment, unit)
                if p.id == f"{REBOUND_ID}.beyond_neutral_control"]
    return out


def mitigation_predictions(rows: Sequence[Mapping[str, Any]], experiment: str,
                           unit: str = "seeds") -> list[Prediction]:
    """Every reading of a mitigations table (see the module docstring); primaries as pre-registered."""
    by_run = readings_by_run(rows)
    treatments = sorted({c for _, c in by_run} - {BASELINE})
    inits = sorted({i for i, _ in by_run}, key=lambda i: i != "pretrained")
    predictions = [against_sft(by_run, t, name, experiment, init, unit)
                   for init in inits for t in treatments for name, _ in CURVE_READINGS]
    predictions += [beyond_control(by_run, t, init, experiment, unit) for init in inits[1:] for t in treatments]
    for treatment in sorted({c for _, c in by_run}):
        predictions += rebound_under(rows, treatment, experiment, unit)
    return predictions


def condition_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """init -> condition -> each curve reading's mean over runs (what the summary shows)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (init, condition), runs in readings_by_run(rows).items():
        names = next(iter(runs.values())).keys()
        out.setdefault(init, {})[condition] = {
            name: finite_mean([r[name] for r in runs.values()]) for name in names}
    return out
