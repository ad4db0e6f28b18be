"""The accelerate (DDP) path of ``fit`` on 2 CPU processes equals one process (slow: spawns two)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_ddp_fit_matches_one_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single, multi = tmp_path / "one.pt", tmp_path / "two.pt"
    subprocess.run([sys.executable, str(WORKER), str(single)], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                    str(WORKER), str(multi)], check=True, env=env, timeout=300)
    a, b = torch.load(single, weights_only=True), torch.load(multi, weights_only=True)
    assert a["losses"] == pytest.approx(b["losses"], abs=1e-5)
    for k in a["state"]:
        torch.testing.assert_close(a["state"][k], b["state"][k], rtol=0, atol=1e-5)
