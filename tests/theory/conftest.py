"""Shared fixtures of the theory tests: one tiny run per experiment for the whole session."""

from __future__ import annotations

import pytest

from harness.runner import execute


@pytest.fixture(scope="session")
def simulate_run(tmp_path_factory):
    from theory.simulate import EXPERIMENT

    config = EXPERIMENT.resolve("quick", sets={"k": "10,100,1000,10000", "n_types": 4096})
    return execute(EXPERIMENT, config, out=tmp_path_factory.mktemp("sim") / "run")


@pytest.fixture(scope="session")
def boundary_run(tmp_path_factory):
    from theory.boundary import EXPERIMENT

    config = EXPERIMENT.resolve("quick", sets={"n_types": 4096, "depth": "2,4,8",
                                               "similarity": "0,0.9,1", "l_max": "0.01,0.1,1"})
    return execute(EXPERIMENT, config, out=tmp_path_factory.mktemp("bnd") / "run")
