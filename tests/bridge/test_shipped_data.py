"""The shipped default data: its sha256, its size, a stratified held-out split, and room for every
``cpu-micro`` preset at any data draw; the slow test regenerates it on this machine."""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
import warnings

import pytest

from harness.errors import ConfigError
from llm_bridge import data
from llm_bridge.mitigations import EXPERIMENT as MITIGATIONS
from llm_bridge.mitigations import data_needs_of
from llm_bridge.rebound import EXPERIMENT as REBOUND
from llm_bridge.rebound import data_needs
from llm_bridge.resistance import EXPERIMENT as RESISTANCE
from llm_bridge.tasks import PAIRS, TASKS, check_data, held_out_split, load_records

DRAWS = range(20)


@pytest.mark.parametrize("task", TASKS)
def test_shipped_data_has_its_recorded_hash_and_provenance(task):
    records, manifest = data.shipped_paths(task)
    meta = json.loads(manifest.read_text())
    assert hashlib.sha256(records.read_bytes()).hexdigest() == meta["sha256"]
    assert data.DataSpec(**meta["spec"]) == data.default_spec(task)  # made by the documented default
    assert meta["spec"]["task"] == task and meta["command"].startswith("elasticity llm make-data --task")
    assert meta["counts"]["kept"] == len(load_records(records))
    assert sum(p.stat().st_size for p in data.SHIPPED.glob("*.jsonl")) < 1_000_000


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "shipped"
    shutil.copytree(data.SHIPPED, copy)
    monkeypatch.setattr(data, "SHIPPED", copy)
    with (copy / "safety.jsonl").open("a") as handle:
        handle.write('{"prompt": "p", "response": "r", "label": "aligned"}\n')
    with pytest.raises(ConfigError, match="was changed"):
        data.default_records("safety")


def _presets():
    """(experiment, task, config) of every cpu-micro preset, on every task it runs on."""
    for task in ("sentiment", "safety"):
        yield "rebound", task, REBOUND.resolve("cpu-micro", sets={"task": task})
    for task in TASKS:
        yield "resistance", task, RESISTANCE.resolve("cpu-micro", sets={"task": task})


@pytest.mark.parametrize("experiment,task,config", list(_presets()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_cpu_micro_preset_fits_at_20_data_draws(experiment, task, config):
    records = data.default_records(task)
    if experiment == "rebound":
        spec = config.probe
        needs, n_eval = data_needs(spec, spec.warmup_examples, config.neutral_control), spec.n_eval
    else:
        needs, n_eval = {"aligned": config.protocol.n_align}, config.n_eval
    for draw in DRAWS:
        check_data(task, records, n_eval, draw, needs)  # raises ConfigError when a draw leaves too few


@pytest.mark.parametrize("task", ("sentiment", "safety"))
def test_the_replicated_mitigations_preset_fits_with_its_preference_pairs(task):
    """Every treatment's data, DPO's and SimPO's pairs included, at the preset's data draws; a run
    that asks for more pairs than the data has is refused before a model loads."""
    config = MITIGATIONS.resolve("replicated", sets={"task": task})
    needs, records = data_needs_of(config), data.default_records(task)
    assert needs[PAIRS] == config.probe.forward_amounts[-1]
    for draw in config.data_draws:
        check_data(task, records, config.probe.n_eval, draw, needs)
    with pytest.raises(ConfigError, match="asked for 1000 preference-pair examples"):
        check_data(task, records, config.probe.n_eval, 0, {PAIRS: 1000})


@pytest.mark.parametrize("task", TASKS)
def test_held_out_split_is_stratified(task):
    records = data.default_records(task)
    strata = {r.prompt: r.stratum for r in records}
    for draw in range(3):
        held, pools, _ = held_out_split(task, records, 24, draw)
        counts = collections.Counter(strata[p] for p in held)
        eligible = collections.Counter(strata[p] for p in {r.prompt for r in records})
        full = [s for s in eligible if eligible[s] > max(counts.values())]  # strata that never ran out
        assert max(counts[s] for s in full) - min(counts[s] for s in full) <= 1, counts
        assert not {r.prompt for pool in pools.values() for r in pool} & set(held)
    assert held_out_split(task, records, 24, 0)[0] != held_out_split(task, records, 24, 1)[0]


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_regeneration_matches_the_shipped_data_or_says_how_it_differs(task):
    """The first batch of the first generation pass (36 prompts) gives the shipped file's first
    records, so regenerating them checks this machine's sampling kernels against the shipped data.
    Kernels differ between machines: a mismatch is reported (how many records differ), not failed.
    (The whole of a set takes 4 to 7 minutes on 2 cores: `elasticity llm make-data --task T --force`.)"""
    spec = data.default_spec(task)
    adapter, _ = data.generator_adapter(spec)
    regenerated, counts = data.generate_records(spec, adapter, batches=1)
    assert counts["generated"] == min(spec.batch, len(data.jobs(task, spec.n_prompts, spec.seed)))
    new = data.jsonl_text(regenerated).splitlines()
    old = data.shipped_paths(task)[0].read_text().splitlines()[: len(new)]
    differ = sum(a != b for a, b in zip(new, old, strict=True))
    print(f"{task}: {len(new)} regenerated records, {differ} differ from the shipped file")
    if differ:
        warnings.warn(f"regenerated {task} data differs from the shipped file: {differ} of the first "
                      f"{len(new)} records", stacklevel=1)
    assert new, f"the filter kept none of the first {counts['generated']} {task} outputs"
