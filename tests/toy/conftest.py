"""Shared, session-scoped toy runs: each experiment runs once at its test config, cold cache."""

from __future__ import annotations

import os

import pytest

from harness.runner import Outcome, execute
from toymodels.determinism import make_deterministic
from toymodels.protocols import rebound, resistance

# The prediction tests' own configs (their hashes key the recorded verdicts in results.json).
REBOUND_TEST = {"seeds": 5, "n_pretrain": 4000, "probe.forward_amounts": (0, 64, 128, 256),
                "probe.reverse_amounts": tuple(range(0, 257, 16)), "probe.n_eval": 64, "probe.n_kl_samples": 64,
                "probe.kl_every": 4}
RESISTANCE_TEST = {"tasks": ("sentiment",), "seeds": 5, "n_pretrain": 4000, "protocol.n_align": 256,
                   "protocol.n_queries": 64}


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The experiments' default; two threads only slow these tiny matmuls down on shared cores."""
    make_deterministic(1)


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh pre-training cache for the session, so the runs include pre-training."""
    previous = os.environ.get("ELASTICITY_CACHE")
    os.environ["ELASTICITY_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield os.environ["ELASTICITY_CACHE"]
    if previous is None:
        os.environ.pop("ELASTICITY_CACHE", None)
    else:
        os.environ["ELASTICITY_CACHE"] = previous


@pytest.fixture(scope="session")
def rebound_run(toy_cache, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    config = rebound.EXPERIMENT.resolve("micro", sets=REBOUND_TEST)
    return execute(rebound.EXPERIMENT, config, out=tmp_path_factory.mktemp("rebound") / "run")


@pytest.fixture(scope="session")
def resistance_run(toy_cache, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    config = resistance.EXPERIMENT.resolve("micro", sets=RESISTANCE_TEST)
    return execute(resistance.EXPERIMENT, config, out=tmp_path_factory.mktemp("resistance") / "run")
