"""Deterministic execution: fixed threads, and deterministic kernels on CUDA.

Same seed and config give identical metrics on the same machine and thread count. The CPU kernels
the toy model uses are deterministic already; on CUDA, deterministic algorithms also need
``CUBLAS_WORKSPACE_CONFIG`` set before cuBLAS starts.
"""

from __future__ import annotations

import os

import torch


def make_deterministic(threads: int | None, device: str = "cpu") -> None:
    """Fix torch's intra-op threads; on CUDA also switch to deterministic kernels."""
    if threads:
        torch.set_num_threads(int(threads))
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
