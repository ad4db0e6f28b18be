"""Deterministic execution: fixed threads, seeded generators, deterministic kernels.

Same seed and config give identical metrics on the same machine and thread count. On CUDA,
deterministic algorithms also need ``CUBLAS_WORKSPACE_CONFIG`` set before cuBLAS starts.
"""

from __future__ import annotations

import os

import torch


def make_deterministic(threads: int | None, device: str = "cpu") -> None:
    """Fix torch's intra-op threads and switch to deterministic kernels."""
    if threads:
        torch.set_num_threads(int(threads))
    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
