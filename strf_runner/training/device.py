"""Choosing the compute device from a config string, and process-wide CPU memory settings."""

from __future__ import annotations

import ctypes

import torch

from strf_runner.errors import ConfigError


def resolve_device(name: str, key: str = "trainer.device") -> torch.device:
    """``auto`` -> cuda when a GPU is visible, else cpu; an unavailable device is a ConfigError naming
    ``key`` (the config key or command-line flag the name came from)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"{key}={name!r} is not a device name ({err})") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={name!r} but no CUDA GPU is visible; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={name!r} but only {torch.cuda.device_count()} GPU(s) are visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}={name!r} but Apple MPS is not available; use cpu")
    return device


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse instead of returning it to the OS.

    By default every freed tensor of tens of MB goes back to the OS and is page-faulted in again on
    the next step, which about doubles the time of a waveform front-end's training step on CPU.
    Sets M_MMAP_MAX = 0 and M_TRIM_THRESHOLD = 1 GiB; process-wide. Returns False where glibc is absent.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
