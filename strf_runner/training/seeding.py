"""Seeding and determinism."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_torch(threads: int | None, deterministic: bool) -> None:
    """The process-wide torch settings a run asks for: its CPU thread count (None: torch's default)
    and deterministic kernels."""
    if threads is not None:
        torch.set_num_threads(threads)
    if deterministic:
        make_deterministic()


def make_deterministic() -> None:
    """Ask torch for deterministic kernels (cuBLAS needs its workspace setting before first use).

    Without filling every new uninitialised tensor with NaN, which deterministic mode does by default as a
    debugging aid: no code here reads memory it did not write (the same-seed tests would see it), and
    the fill cost a LEAF epoch 0.15-0.25 s of memory writes (its buffers are tens of MB per step).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False


def data_generator(seed: int) -> torch.Generator:
    """A CPU generator for data order only, so model init and shuffling are seeded separately."""
    return torch.Generator().manual_seed(seed)
