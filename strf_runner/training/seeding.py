"""Seeding and determinism."""

from __future__ import annotations

import ctypes
import os
import random
from typing import Any

import numpy as np
import torch

#: Environment variables that steer torch's CPU kernels (thread counts, dynamic adjustment, code paths);
#: a run records those that are set.
CPU_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_DYNAMIC", "MKL_DYNAMIC", "KMP_DYNAMIC_MODE", "MKL_CBWR",
           "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


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

    And with OpenMP's dynamic adjustment off (in this thread, which runs the training): where it is on
    (``OMP_DYNAMIC=true``, or a library's ``omp_set_dynamic``), GNU OpenMP gives each parallel region
    fewer threads than torch asks for when the machine's 15-minute load average is high, and torch's
    parallel reductions then add in another order: the same run differs in the last bits under load.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    omp = openmp_runtime()
    if omp is not None:
        omp.omp_set_dynamic(0)


def openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime torch's CPU kernels call, looked up the way they look it up (the process's
    global symbols: torch loads its runtime there on Linux); None where no runtime is visible there."""
    try:
        lib = ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows has no process-wide symbol table to open
        return None
    return lib if hasattr(lib, "omp_get_dynamic") and hasattr(lib, "omp_set_dynamic") else None


def determinism_settings() -> dict[str, Any]:
    """What decides a CPU run's last bits besides its seeds and data, as set now in this thread.

    threads: torch's intra-op thread count. openmp_dynamic: whether OpenMP may run a parallel region
    on fewer threads, by the machine's load (None: no OpenMP runtime visible). denormals_flushed:
    whether float32 denormals are flushed to zero here (``torch.set_flush_denormal``, or a library
    built with fast-math). env: those of ``CPU_ENV`` that are set.
    """
    omp = openmp_runtime()
    return {
        "threads": torch.get_num_threads(),
        "openmp_dynamic": None if omp is None else bool(omp.omp_get_dynamic()),
        "denormals_flushed": (torch.tensor(1e-40) * 1.0).item() == 0.0,
        "env": {name: os.environ[name] for name in CPU_ENV if name in os.environ},
    }


def determinism_warnings(settings: dict[str, Any]) -> list[str]:
    """One-line warnings about ``determinism_settings`` that let the same run give other numbers."""
    env_dynamic = settings["env"].get("OMP_DYNAMIC", "").strip().lower() == "true"
    dynamic = settings["openmp_dynamic"] if settings["openmp_dynamic"] is not None else env_dynamic
    if not dynamic or settings["threads"] == 1:
        return []
    source = "OMP_DYNAMIC=true" if env_dynamic else "omp_set_dynamic(1) by a library in this process"
    remedy = ("unset OMP_DYNAMIC" if settings["openmp_dynamic"] is None
              else "trainer.deterministic=true switches it off")
    return [f"OpenMP's dynamic thread adjustment is on ({source}): each parallel region may get fewer than "
            f"the {settings['threads']} threads by the machine's load, and the results' last digits change "
            f"with it; {remedy}"]


def data_generator(seed: int) -> torch.Generator:
    """A CPU generator for data order only, so model init and shuffling are seeded separately."""
    return torch.Generator().manual_seed(seed)
