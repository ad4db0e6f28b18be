"""Session-scoped science runs shared by the tests: one compression run and one scale micro grid."""

from __future__ import annotations

import pytest

from harness.runner import Outcome, execute
from toymodels.protocols import compression, scale

# The compression test config: a quick size, k over two decades, the like-D_p perturbation only.
COMPRESSION_TEST = {"size": "50k", "n_pretrain": 3000, "k": (10.0, 100.0, 1000.0),
                    "perturbations": ("like",), "perturb_amounts": (0, 32, 64), "n_eval": 256,
                    "seeds": 5, "mixture_samples": 5000}


@pytest.fixture(scope="session")
def compression_run(tmp_path_factory) -> Outcome:
    config = compression.EXPERIMENT.resolve("quick", sets=COMPRESSION_TEST)
    return execute(compression.EXPERIMENT, config, out=tmp_path_factory.mktemp("science") / "compression")


@pytest.fixture(scope="session")
def scale_micro_run(tmp_path_factory) -> Outcome:
    config = scale.EXPERIMENT.resolve("micro")
    return execute(scale.EXPERIMENT, config, out=tmp_path_factory.mktemp("science") / "scale")
