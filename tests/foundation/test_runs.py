"""Run folders: atomic writes, resume by config hash, determinism, summary schema, reference merge."""

import json
import multiprocessing
import os
from dataclasses import dataclass

import pytest

from harness import reference
from harness.atomic import atomic_write_text
from harness.config import Preset
from harness.errors import ConfigError
from harness.experiment import Experiment
from harness.markdown import TABLE_END, TABLE_START
from harness.metrics import metric_row, read_metrics_csv, write_metrics_csv
from harness.runner import execute
from harness.runs import RunDir, config_hash
from harness.verdicts import Claim, judge, mean_ci, t_estimate
from tests.verdicts import RECORD_ENV, check_recorded_verdict, record_test_verdict


@dataclass(frozen=True, kw_only=True)
class Micro:
    n: int = 3  # independent runs (seeds)
    draws: int = 4  # draws per run
    seed: int = 0


CALLS: list[str] = []


def micro_readings(rows: list[dict], experiment: str) -> list:
    """A primary reading (the mean draw is positive, over seeds) and an exploratory one."""
    import numpy as np

    by_seed: dict = {}
    for row in rows:
        by_seed.setdefault(row["seed"], []).append(row["value"])
    means = [float(np.mean(v)) for _, v in sorted(by_seed.items())]
    return [judge("micro.mean_positive", t_estimate(means), "mean draw per seed", claim=Claim(direction=1),
                  family="demo"),
            judge("micro.first_draw", t_estimate([v[0] for _, v in sorted(by_seed.items())]), "first draw")]


def _run(config: Micro, run: RunDir) -> dict:
    import numpy as np

    rows = []
    for i in range(config.n):
        seed = config.seed + i
        # A cell per unit of work: what a resumed run must not recompute.
        values = run.cell(f"cell-{i}", lambda seed=seed, i=i: (CALLS.append(f"cell-{i}"), list(
            np.random.default_rng(seed).normal(0.5, 1.0, config.draws)))[1])
        rows += [metric_row("draw", v, "nats", seed=seed, x=x) for x, v in enumerate(values)]
    run.write_metrics(rows)
    return {"predictions": micro_readings(rows, MICRO.name)}


MICRO = Experiment(name="demo.micro", help="micro", config_cls=Micro,
                   presets={"quick": Preset(help="", est_seconds=0.1)}, run=_run, readings=micro_readings)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target], "a temporary file was left behind"


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    """Not the temporary file's private 0600: others may read a run folder where the umask lets them."""
    atomic_write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_same_seed_same_metrics(tmp_path):
    a = execute(MICRO, Micro(n=4, seed=3), root=tmp_path / "a")
    b = execute(MICRO, Micro(n=4, seed=3), root=tmp_path / "b")
    assert (a.run.path / "metrics.csv").read_bytes() == (b.run.path / "metrics.csv").read_bytes()
    c = execute(MICRO, Micro(n=4, seed=4), root=tmp_path / "c")
    assert (a.run.path / "metrics.csv").read_bytes() != (c.run.path / "metrics.csv").read_bytes()


def test_resume_skips_finished_cells_and_refuses_other_configs(tmp_path):
    CALLS.clear()
    out = tmp_path / "run"
    first = execute(MICRO, Micro(n=3), out=out)
    assert CALLS == ["cell-0", "cell-1", "cell-2"]
    (out / "cells" / "cell-2.json").unlink()  # as if killed before the last cell finished
    second = execute(MICRO, Micro(n=3), out=out)
    assert second.run.resumed and CALLS[3:] == ["cell-2"]
    assert first.summary == second.summary
    with pytest.raises(ConfigError, match="config hash"):
        execute(MICRO, Micro(n=5), out=out)


def test_summary_schema_and_config_record(tmp_path):
    outcome = execute(MICRO, Micro(), out=tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert {"experiment", "schema_version", "units", "config_hash", "predictions"} <= set(summary)
    assert summary["config_hash"] == config_hash("demo.micro", Micro())
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["config"] == {"n": 3, "draws": 4, "seed": 0} and "numpy" in record["versions"]
    assert outcome.exit_code == 0
    assert summary["schema_version"] == 2 and "holm_scope" in summary
    primary, exploratory = summary["predictions"]
    assert {"id", "primary", "family", "verdict", "verdict_adjusted", "p_value", "p_adjusted", "value", "ci",
            "n_runs", "method", "measure", "direction"} == set(primary)
    assert primary["primary"] and primary["n_runs"] == 3
    assert {"id", "primary", "p_value", "value", "ci", "n_runs", "method", "measure"} == set(exploratory)
    assert not exploratory["primary"]


def test_mean_ci_matches_textbook_interval():
    # Values 1, 3, 2, 2: mean 2, sample sd sqrt(2/3), n = 4, t(0.975, 3) = 3.182446.
    mean, (lo, hi) = mean_ci([1.0, 3.0, 2.0, 2.0])
    half_width = 3.182446 * (2 / 3) ** 0.5 / 2
    assert mean == pytest.approx(2.0)
    assert (lo, hi) == pytest.approx((2.0 - half_width, 2.0 + half_width), rel=1e-6)


def test_reference_merge_keeps_other_experiments(tmp_path, monkeypatch):
    monkeypatch.delenv(RECORD_ENV, raising=False)  # the recording run of the suite sets it
    monkeypatch.setattr(reference, "figures_dir", lambda: tmp_path / "figures")
    monkeypatch.setattr(reference, "results_path", lambda: tmp_path / "figures" / "results.json")
    monkeypatch.setattr(reference, "readme_path", lambda: tmp_path / "README.md")
    (tmp_path / "figures").mkdir()
    (tmp_path / "README.md").write_text(f"{TABLE_START}\n{TABLE_END}\n")
    reference.save_results({"schema_version": 1, "experiments": {"llm.rebound": {"headline": {"x": 1}}}})
    outcome = execute(MICRO, Micro(), out=tmp_path / "r")
    summary = {**outcome.summary, "provenance": {"model": "m", "weights_sha256": {"w": "ab"}, "data_sha256": "cd"}}
    reference.update_reference(outcome.run, summary, "quick", commit="f00d")
    results = reference.load_results()
    assert results["schema_version"] == 2 and "holm_scope" in results
    assert results["experiments"]["llm.rebound"] == {"headline": {"x": 1}}
    headline = results["experiments"]["demo.micro"]["headline"]
    assert headline["config_hash"] == outcome.run.config_hash
    provenance = headline["provenance"]
    assert provenance["git_commit"] == "f00d" and provenance["tree_clean"] and provenance["model"] == "m"
    assert {"python", "numpy", "scipy", "torch", "transformers", "lm-elasticity"} == set(provenance["versions"])
    assert (tmp_path / "figures" / "data" / "demo.micro" / "metrics.csv").exists()
    assert "`demo.micro`" in (tmp_path / "README.md").read_text()
    prediction = outcome.summary["predictions"][0]
    with pytest.raises(AssertionError, match="exploratory"):
        check_recorded_verdict("demo.micro", "h", outcome.summary["predictions"][1])
    with pytest.raises(AssertionError, match="no verdict recorded"):
        check_recorded_verdict("demo.micro", "h", prediction)
    monkeypatch.setenv(RECORD_ENV, "1")
    check_recorded_verdict("demo.micro", "h", prediction)
    monkeypatch.delenv(RECORD_ENV)
    check_recorded_verdict("demo.micro", "h", prediction)
    with pytest.raises(AssertionError, match="verdict changed"):
        check_recorded_verdict("demo.micro", "h", {**prediction, "verdict": "contradicted"})


def test_verdicts_recorded_by_parallel_workers_are_all_kept(tmp_path, monkeypatch):
    """The suite runs in several processes: each records into results.json under a lock, none is lost."""
    monkeypatch.setattr(reference, "results_path", lambda: tmp_path / "results.json")
    reference.save_results({"schema_version": 2, "experiments": {}})
    prediction = {"verdict": "holds", "value": 0.1, "ci": [0.0, 0.2], "n_runs": 5}
    workers = [multiprocessing.get_context("fork").Process(
        target=record_test_verdict, args=("demo.micro", "h", {**prediction, "id": f"p{i}"})) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * 6
    recorded = reference.load_results()["experiments"]["demo.micro"]["tests"]["h"]
    assert sorted(recorded) == [f"p{i}" for i in range(6)]


def test_metrics_table_has_a_column_per_condition_field_and_round_trips(tmp_path):
    rows = [metric_row("score", 0.25, "prob", seed=1, x=16, task="sentiment", F=0),
            metric_row("s0", float("nan"), "prob", seed=1, task="safety"),
            metric_row("n_params", 5e4, "parameters", size="50k", T=0.05)]
    path = write_metrics_csv(tmp_path / "metrics.csv", rows)
    assert path.read_text().splitlines()[0] == "seed,task,F,size,T,x,measure,value,unit"
    back = read_metrics_csv(path)
    assert [r["condition"] for r in back] == [{"task": "sentiment", "F": 0}, {"task": "safety"},
                                              {"size": "50k", "T": 0.05}]
    assert back[0]["value"] == 0.25 and back[0]["x"] == 16 and back[0]["seed"] == 1
    assert back[1]["value"] != back[1]["value"]  # NaN survives
    with pytest.raises(ValueError, match="clash"):
        write_metrics_csv(tmp_path / "bad.csv", [metric_row("m", 1.0, "1", x=2) | {"condition": {"x": 1}}])


def test_metrics_in_the_earlier_packed_layout_are_still_read(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("seed,condition,x,measure,value,unit\n"
                    '0,"task=sentiment,F=0",16,score,0.5,prob\n'
                    "0,grid=dist;s=0.5;l_max=0.1,1000.0,coefficient,0.9,1\n"
                    "42,synthetic,,alpha_true,1.2,exponent\n")
    assert [r["condition"] for r in read_metrics_csv(path)] == [
        {"task": "sentiment", "F": 0}, {"grid": "dist", "s": 0.5, "l_max": 0.1}, {"sample": "synthetic"}]


_HOLDER = """
import sys, time
from tests.foundation.test_runs import Micro
from harness.runs import RunDir
RunDir.open("demo.micro", Micro(n={n}), out=sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def _hold(folder, n):
    """A process that opens ``folder`` as a run of Micro(n=n) and keeps it open."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLDER.format(n=n), str(folder)], stdout=subprocess.PIPE,
                            text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_busy_run_folder_is_refused_and_freed_when_its_holder_is_killed(tmp_path):
    """A second run into a folder another process holds stops with one clear error before writing
    anything, whatever its config; once the holder is killed (kill -9), the folder opens and resumes
    with no clean-up."""
    import signal

    folder = tmp_path / "run"
    holder = _hold(folder, 3)
    try:
        before = sorted(p.name for p in folder.iterdir())
        for n in (3, 5):  # the same config, and a different one racing for the folder
            with pytest.raises(ConfigError, match="in use by another run"):
                RunDir.open("demo.micro", Micro(n=n), out=folder)
        assert sorted(p.name for p in folder.iterdir()) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run = RunDir.open("demo.micro", Micro(n=3), out=folder)
    assert run.resumed
    run.close()


def _out_at_a_file(tmp):
    (tmp / "file").write_text("x")
    return tmp / "file"


def _out_below_a_file(tmp):
    (tmp / "file").write_text("x")
    return tmp / "file" / "run"


def _damaged(name):
    def make(tmp):
        execute(MICRO, Micro(n=2), out=tmp / "run")
        target = tmp / "run" / name
        target.write_bytes(b"\x00\xff{not json")
        return tmp / "run"
    return make


@pytest.mark.parametrize("make_out", [_out_at_a_file, _out_below_a_file, lambda tmp: tmp / ("x" * 300),
                                      _damaged("config.json"), _damaged("cells/cell-1.json")],
                         ids=["out-is-a-file", "out-below-a-file", "name-too-long", "damaged-config",
                              "damaged-cell"])
def test_bad_run_folders_are_one_line_errors(tmp_path, make_out, capsys):
    """OS errors on --out and damaged files inside a run folder are one-line errors (exit 2 from the
    command line) that say what to do, not tracebacks."""
    out = make_out(tmp_path)
    with pytest.raises(ConfigError) as err:
        execute(MICRO, Micro(n=2), out=out)
    message = str(err.value)
    print(message)
    assert "\n" not in message and ("--out" in message or "rerun" in message)
