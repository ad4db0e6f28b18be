"""The readings of a resistance run, written once for the toy models and the real checkpoints.

A *comparison* is one (run seed, task, size, checkpoint pair) at one sampling temperature T from one
starting point (``init``: ``pretrained``, or ``random`` for the no-pre-training control): the inverse
path's value minus the forward path's, or the relative asymmetry (inverse - forward) / ((inverse +
forward) / 2). A reading averages the comparisons of each independent run (seed) over its tasks,
sizes and pairs, and takes a t-interval over runs: comparisons within a run share its models and
never count as runs, so fewer than 3 runs read ``underpowered``.

Every temperature is read on its own, never pooled (T = 0.05 and T = 1 can differ in sign). The
pre-registered primary readings (``harness/preregistration.toml``) are at the sampling temperature
``PRIMARY_T``:

- ``resistance.inverse_lower``: inverse - forward epoch KL-excess (``excess_mean_nats``: training
  loss over the epoch minus the entropy of the tempered generator the data was sampled from);
- ``resistance.beyond_control``: relative asymmetry of the epoch KL-excess, pre-trained minus the
  no-pre-training control, paired by (seed, task, size, pair).

Exploratory, at each T (ids ending ``.T0.05``, ``.T1``): inverse - forward of ``MEASURES`` from each
starting point, the relative asymmetry of each starting point, and beyond-control at other T.
:func:`resistance_predictions` reads any ``metrics.csv`` in the documented layout. A table whose
checkpoints were aligned under several conditions (field ``treatment``: SFT, a mitigation, a preference
method) is read by :func:`treatment_predictions` instead, exploratory only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.config import require
from harness.preregistration import reading
from harness.verdicts import Prediction, t_estimate

PRIMARY_T = 0.05  # the sampling temperature of the pre-registered readings
MEASURES = ("excess_mean", "loss_mean", "excess_step0")
# init -> id suffix: the pre-trained start, and the no-pre-training controls (random init; and on
# real checkpoints, the pre-trained weights with each tensor's entries permuted)
ARMS = {"pretrained": "", "random": ".control_no_pretraining", "permuted": ".control_permuted"}
Key = tuple[Any, str, str, str]  # (seed, task, size, pair)
BASELINE = "sft"  # the alignment condition every other one is read against


def temperature_tag(temperature: float) -> str:
    """``0.05`` -> ``"T0.05"``, ``1.0`` -> ``"T1"``: the temperature as an id part."""
    return f"T{float(temperature):g}"


def paths_by_comparison(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, float], dict[Key, dict[str, float]]]:
    """(measure, init, T) -> comparison -> {"forward": value, "inverse": value}, from the path rows
    (per-prompt rows are left out)."""
    out: dict[tuple[str, str, float], dict[Key, dict[str, float]]] = {}
    for r in rows:
        c = r["condition"]
        if "path" not in c or "prompt" in c:
            continue
        key = (r["seed"], str(c["task"]), str(c["size"]), str(c["pair"]))
        out.setdefault((r["measure"], c.get("init", "pretrained"), float(c["T"])), {}).setdefault(
            key, {})[c["path"]] = float(r["value"])
    return out


def asymmetries(paths: Mapping[Key, Mapping[str, float]], relative: bool = False) -> dict[Key, float]:
    """inverse - forward per comparison; ``relative`` divides by the mean of the two (NaN where that
    mean is not positive: a relative asymmetry of a non-positive level is undefined)."""
    out = {}
    for key, v in paths.items():
        if "inverse" not in v or "forward" not in v:
            continue
        diff, level = v["inverse"] - v["forward"], (v["inverse"] + v["forward"]) / 2
        out[key] = (diff / level if level > 0 else float("nan")) if relative else diff
    return out


def comparisons(rows: Sequence[Mapping[str, Any]], measure: str, init: str,
                relative: bool = False) -> dict[float, dict[Key, float]]:
    """T -> comparison -> asymmetry of ``measure`` (a metric name, e.g. ``steps``) from ``init``."""
    return {t: asymmetries(paths, relative) for (m, i, t), paths in paths_by_comparison(rows).items()
            if m == measure and i == init}


def per_run_by_label(values: Mapping[Key, float]) -> dict[Any, float]:
    """The mean over each run's comparisons, by run (a NaN comparison makes its run NaN, which the
    interval then leaves out). A control run's label is its pre-trained run's with ``<init>-`` in front."""
    runs: dict[Any, list[float]] = {}
    for key, v in values.items():
        runs.setdefault(key[0], []).append(v)
    return {s: float(np.mean(runs[s])) for s in sorted(runs, key=str)}


def per_run(values: Mapping[Key, float]) -> list[float]:
    return list(per_run_by_label(values).values())


def _read(pid: str, values: Mapping[Key, float], measure: str, experiment: str, unit: str,
          temperature: float) -> Prediction:
    d = np.array(list(values.values()))
    return reading(pid, t_estimate(per_run(values), unit), measure, experiment=experiment,
                   temperature=temperature, n_comparisons=int(d.size), inverse_lower=int(np.sum(d < 0)))


def unpaired(key: Key, init: str) -> Key:
    """The comparison of the ``init`` start that pairs with a pre-trained one: the same seed on the toy
    models, the run label with ``<init>-`` in front on real checkpoints (whose labels are strings)."""
    return (f"{init}-{key[0]}" if isinstance(key[0], str) else key[0], *key[1:])


def beyond_control(pretrained: Mapping[Key, Mapping[str, float]], control: Mapping[Key, Mapping[str, float]],
                   init: str) -> dict[Key, float]:
    """Relative asymmetry from the pre-trained start minus the ``init`` start's, per paired comparison."""
    rel_pre, rel_ctl = asymmetries(pretrained, True), asymmetries(control, True)
    return {k: rel_pre[k] - rel_ctl[unpaired(k, init)] for k in rel_pre if unpaired(k, init) in rel_ctl}


def resistance_predictions(rows: Sequence[Mapping[str, Any]], experiment: str,
                           unit: str = "seeds") -> list[Prediction]:
    """Every resistance reading of a metrics table, each temperature on its own (see the module)."""
    index = paths_by_comparison(rows)
    temps = sorted({t for (_m, _i, t) in index})
    predictions = []
    for temp in temps:
        tag, at_primary = temperature_tag(temp), temp == PRIMARY_T
        where = f"at sampling T = {temp:g}"
        for init, suffix in ARMS.items():
            for name in MEASURES:
                paths = index.get((f"{name}_nats", init, temp))
                if not paths:
                    continue
                primary = at_primary and init == "pretrained" and name == "excess_mean"
                pid = "resistance.inverse_lower" if primary else f"resistance.{name}.inverse_lower{suffix}.{tag}"
                predictions.append(_read(pid, asymmetries(paths), f"inverse - forward {name} (nats/token) {where}, "
                                         f"from the {init} start, mean over pairs, tasks and sizes per run",
                                         experiment, unit, temp))
            paths = index.get(("excess_mean_nats", init, temp))
            if paths:
                predictions.append(_read(f"resistance.relative_asymmetry{suffix}.{tag}", asymmetries(paths, True),
                                         f"relative asymmetry (inverse - forward) / mean of the epoch KL-excess {where}, "
                                         f"from the {init} start", experiment, unit, temp))
        pre = index.get(("excess_mean_nats", "pretrained", temp))
        for init in ARMS:
            ctl = index.get(("excess_mean_nats", init, temp))
            if init == "pretrained" or not (pre and ctl):
                continue
            paired = beyond_control(pre, ctl, init)
            primary = at_primary and init == "random"
            pid = "resistance.beyond_control" if primary else f"resistance.beyond_control{ARMS[init] if init != 'random' else ''}.{tag}"
            predictions.append(_read(pid, paired, f"relative asymmetry of the epoch KL-excess {where}, pre-trained "
                                     f"minus the {init} start (no pre-training), paired by (run, task, size, pair)",
                                     experiment, unit, temp))
    return predictions


def by_treatment(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """treatment -> its rows; rows without the field are plain SFT's (every run before mitigations).
    A table must not mix the two: a plain run's seed would count twice beside a treatments run's SFT."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r["condition"].get("treatment", BASELINE)), []).append(r)
    return out


def primary_by_run(index: Mapping[tuple[str, str, float], Mapping[Key, Mapping[str, float]]]) -> dict[Any, float]:
    """run -> the primary reading's per-run value (inverse - forward epoch KL-excess at ``PRIMARY_T``
    from the pre-trained start), from a :func:`paths_by_comparison` index."""
    return per_run_by_label(asymmetries(index.get(("excess_mean_nats", "pretrained", PRIMARY_T), {})))


def treatment_predictions(rows: Sequence[Mapping[str, Any]], experiment: str, unit: str = "seeds") -> list[Prediction]:
    """Resistance after each alignment condition (exploratory, never primary): per treatment, the
    primary reading's value from the pre-trained start (``mitigation.<t>_resistance_level``), its
    relative asymmetry beyond the random-init control (``..._beyond_control``) and, for each
    treatment other than SFT, its value minus SFT's paired by run (``mitigation.<t>_resistance``). All
    at the primary sampling temperature; a run's other temperatures are left unread."""
    indexes = {treatment: paths_by_comparison(group) for treatment, group in by_treatment(rows).items()}
    baseline = primary_by_run(indexes.get(BASELINE, {}))
    where = f"inverse - forward epoch KL-excess (nats/token) at sampling T = {PRIMARY_T:g}, from the pre-trained start"
    predictions = []
    for treatment, index in indexes.items():
        values = primary_by_run(index)
        predictions.append(reading(f"mitigation.{treatment}_resistance_level", t_estimate(list(values.values()), unit),
                                   f"{where}, checkpoints aligned by {treatment}", experiment=experiment))
        pre, ctl = (index.get(("excess_mean_nats", init, PRIMARY_T)) for init in ("pretrained", "random"))
        if pre and ctl:
            paired = per_run(beyond_control(pre, ctl, "random"))
            predictions.append(reading(f"mitigation.{treatment}_resistance_beyond_control", t_estimate(paired, unit),
                                       f"relative asymmetry beyond the random-init control, aligned by {treatment}",
                                       experiment=experiment))
        if treatment != BASELINE:
            diffs = [values[run] - baseline[run] for run in values if run in baseline]
            predictions.append(reading(f"mitigation.{treatment}_resistance", t_estimate(diffs, unit),
                                       f"{where}: aligned by {treatment} minus by SFT, paired by run",
                                       experiment=experiment))
    return predictions


def readings(rows: Sequence[Mapping[str, Any]], experiment: str = "toy.resistance", unit: str = "seeds"
             ) -> list[Prediction]:
    """The readings of a resistance metrics table (runs are ``unit``); a table of several alignment
    conditions has the exploratory :func:`treatment_predictions` only, so that it never adds a second
    instance of a pre-registered reading."""
    marked = sum("treatment" in r["condition"] for r in rows)
    if marked:
        require(marked == len(rows), "a table of several treatments cannot be judged with rows of a plain run")
        return treatment_predictions(rows, experiment, unit)
    return resistance_predictions(rows, experiment, unit=unit)


def counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per (starting point, measure, T): how many comparisons and runs have the inverse path lower,
    and the mean inverse - forward difference. Descriptive: comparisons are not independent."""
    out = {}
    for (measure, init, temp), paths in sorted(paths_by_comparison(rows).items(), key=str):
        if measure.removesuffix("_nats") not in MEASURES:
            continue
        d = asymmetries(paths)
        runs = np.array(per_run(d))
        values = np.array(list(d.values()))
        out[f"{init}.{measure}.{temperature_tag(temp)}"] = {
            "n_comparisons": int(values.size), "inverse_lower": int(np.sum(values < 0)),
            "n_runs": int(runs.size), "runs_inverse_lower": int(np.sum(runs < 0)),
            "mean_diff_nats": float(values.mean())}
    return out
