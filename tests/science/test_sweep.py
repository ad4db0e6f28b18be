"""Instrument tests of toymodels.sweep: grids, parallel equivalence, resume after a kill, dask."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.runs import RunDir
from tests.science.sweep_cells import censored, noisy_line
from toymodels.sweep import Execution, Grid, Runtime, aggregate, run_sweep

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Cfg:
    name: str = "sweep-test"


def _grid() -> Grid:
    return Grid.of({"slope": (0.5, 1.0, 2.0), "tag": ("a", "b")}, seeds=3, positive=["slope"])


def _table(tmp: Path, name: str, execution: Execution, progress: bool = True) -> list[dict]:
    run = RunDir.open("test.sweep", _Cfg(), out=tmp / name)
    return run_sweep(run, _grid(), noisy_line, execution, progress=progress)


@pytest.mark.parametrize("axes, seeds, message", [
    ({"slope": ()}, 2, "is empty"),
    ({"slope": (1.0, 2.0, 1.0)}, 2, "repeats the value 1.0"),
    ({"slope": (1.0, 0.0)}, 2, "positive sizes"),
    ({"slope": (1.0, -3)}, 2, "positive sizes"),
    ({"slope": (1.0,)}, 0, "at least one seed"),
    ({"slope": (1.0,)}, [1, 1], "repeats the value 1"),
])
def test_bad_grids_are_config_errors(axes, seeds, message):
    with pytest.raises(ConfigError, match=message):
        Grid.of(axes, seeds=seeds, positive=["slope"])


def test_bad_execution_is_config_error():
    with pytest.raises(ConfigError, match="n_jobs"):
        Execution(n_jobs=-1)
    with pytest.raises(ConfigError, match="device"):
        Execution(device="tpu")


def test_workers_never_oversubscribe_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert Execution().workers == 2
    assert Execution(threads=2).workers == 1
    assert Execution(threads=0).cell_threads == 2  # 0: every core
    with pytest.raises(ConfigError, match="oversubscribe"):
        Execution(n_jobs=2, threads=2)
    assert Execution(n_jobs=4, backend="dask").workers == 4
    assert Execution(device="cuda").workers == 1  # one process per GPU unless asked
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert Runtime(threads=2).threads == 2  # one process may use more threads than cores


def test_grid_order_and_table(tmp_path):
    grid = _grid()
    assert len(grid) == len(grid.cells()) == 18
    table = _table(tmp_path, "serial", Execution(n_jobs=1), progress=False)
    assert len(table) == 18 * 4
    assert table[0]["condition"] == {"slope": 0.5, "tag": "a"}
    assert table[3]["condition"] == {"slope": 0.5, "tag": "a", "probe": "a"}
    agg = {(tuple(r["condition"].values()), r["x"], r["measure"]): r for r in aggregate(table)}
    line = agg[((2.0, "b"), 4, "y")]
    assert line["n"] == 3 and line["ci_lo"] < line["mean"] < line["ci_hi"]


def test_two_workers_give_the_serial_table(tmp_path):
    serial = _table(tmp_path, "serial", Execution(n_jobs=1), progress=False)
    parallel = _table(tmp_path, "parallel", Execution(n_jobs=2, threads=1), progress=False)
    assert parallel == serial


def test_killed_and_resumed_sweep_gives_the_uninterrupted_table(tmp_path):
    out = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.science.test_sweep import _table
        from toymodels.sweep import Execution
        from pathlib import Path
        _table(Path({str(tmp_path)!r}), "killed", Execution(n_jobs=1), progress=False)
    """)
    env = {**os.environ, "SWEEP_TEST_CELL_SECONDS": "0.3"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "cells").glob("*.json"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list((out / "cells").glob("*.json")))
    assert 4 <= done < 18, f"the sweep should have been killed part-way, {done} cells were done"
    resumed = _table(tmp_path, "killed", Execution(n_jobs=1), progress=False)
    uninterrupted = _table(tmp_path, "whole", Execution(n_jobs=1), progress=False)
    assert resumed == uninterrupted


def test_censored_readings_come_back_as_nan(tmp_path):
    run = RunDir.open("test.sweep", _Cfg(), out=tmp_path / "nan")
    grid = Grid.of({"slope": (1.0,)}, seeds=2)
    first = run_sweep(run, grid, censored, Execution(n_jobs=1), progress=False)
    again = run_sweep(run, grid, censored, Execution(n_jobs=1), progress=False)  # from the cache
    for table in (first, again):
        assert [math.isnan(r["value"]) for r in table] == [True, False, True, False]
    run.write_metrics(again)  # NaN survives the metrics table too
    assert math.isnan(run.read_metrics()[0]["value"])


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_table(tmp_path):
    pytest.importorskip("dask.distributed")
    local = _table(tmp_path, "local", Execution(n_jobs=1), progress=False)
    dask = _table(tmp_path, "dask", Execution(n_jobs=2, backend="dask"), progress=False)
    assert dask == local
