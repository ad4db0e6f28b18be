"""`elasticity judge` and `judge_runs`: saved runs judged by their experiment's readings, runs merged by seed."""

import dataclasses
import json

import pytest

from elasticity import registry
from elasticity.cli import main
from elasticity.judge import judge_runs
from harness.errors import ConfigError
from harness.runner import execute
from tests.foundation.test_runs import MICRO, Micro

MICRO_WITHOUT_READINGS = dataclasses.replace(MICRO, readings=None)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Three micro runs: seeds 0-2, seeds 10-12, and seeds 1-3 (overlapping the first)."""
    monkeypatch.setitem(registry.EXPERIMENTS, "demo.micro", "tests.foundation.test_runs:MICRO")
    return [execute(MICRO, Micro(seed=seed), out=tmp_path / f"s{seed}", draw=False) for seed in (0, 10, 1)]


def test_judging_one_run_repeats_its_summary(runs):
    judged = judge_runs([runs[0].run.path])
    assert judged["predictions"] == runs[0].summary["predictions"]
    assert judged["holm_scope"] == "the primary readings of the judged runs, by family"


def test_runs_at_other_seeds_merge(runs, capsys):
    assert main(["judge", str(runs[0].run.path), str(runs[1].run.path), "--json"]) == 0
    judged = json.loads(capsys.readouterr().out)
    primary = judged["predictions"][0]
    assert primary["primary"] and primary["n_runs"] == 6 and "verdict_adjusted" in primary
    assert judged["runs"] == [str(runs[0].run.path), str(runs[1].run.path)]


def test_runs_of_the_same_seed_are_refused(runs, capsys):
    assert main(["judge", str(runs[0].run.path), str(runs[2].run.path)]) == 2
    assert "both hold seed 1" in capsys.readouterr().err


def test_a_bare_metrics_file_needs_its_experiment(runs, capsys):
    metrics = str(runs[0].run.path / "metrics.csv")
    assert main(["judge", metrics]) == 2
    assert "--experiment" in capsys.readouterr().err
    assert main(["judge", metrics, "--experiment", "demo.micro"]) == 0
    out = capsys.readouterr().out
    assert "micro.mean_positive" in out and "micro.first_draw" in out and "exploratory" in out


def test_an_experiment_without_readings_says_so(runs, monkeypatch):
    monkeypatch.setitem(registry.EXPERIMENTS, "demo.micro", "tests.foundation.test_judge:MICRO_WITHOUT_READINGS")
    with pytest.raises(ConfigError, match="no readings function"):
        judge_runs([runs[0].run.path])


def test_runs_of_other_designs_are_refused_unless_allowed(runs, tmp_path, capsys):
    """Runs that differ beyond their seeds are not replicates of one design."""
    other = execute(MICRO, Micro(seed=20, draws=5), out=tmp_path / "other", draw=False)
    assert main(["judge", str(runs[0].run.path), str(other.run.path)]) == 2
    assert "differ in draws" in capsys.readouterr().err
    pooled = judge_runs([runs[0].run.path, other.run.path], allow_config_differences=True)
    assert pooled["config_differences"] == ["draws"]
