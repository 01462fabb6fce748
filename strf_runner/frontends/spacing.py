"""Frequency scales and filter-centre grids shared by the front-ends (mel, ERB, log)."""

from __future__ import annotations

import numpy as np


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: m = 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_centres(n: int, f_min: float, f_max: float) -> np.ndarray:
    """n centre frequencies (Hz) evenly spaced on the HTK mel scale from f_min to f_max inclusive."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n))


def erb_bandwidth(f: np.ndarray | float) -> np.ndarray:
    """Equivalent rectangular bandwidth (Glasberg & Moore 1990): 24.7 (0.00437 f + 1) Hz."""
    return 24.7 * (0.00437 * np.asarray(f, dtype=np.float64) + 1.0)


def hz_to_erb_rate(f: np.ndarray | float) -> np.ndarray:
    """ERB-rate (number of ERBs below f): 21.4 log10(0.00437 f + 1)."""
    return 21.4 * np.log10(0.00437 * np.asarray(f, dtype=np.float64) + 1.0)


def erb_rate_to_hz(e: np.ndarray | float) -> np.ndarray:
    """Inverse of ``hz_to_erb_rate``."""
    return (10.0 ** (np.asarray(e, dtype=np.float64) / 21.4) - 1.0) / 0.00437


def erb_centres(n: int, f_min: float, f_max: float) -> np.ndarray:
    """n centre frequencies (Hz) evenly spaced in ERB-rate from f_min to f_max inclusive."""
    return erb_rate_to_hz(np.linspace(hz_to_erb_rate(f_min), hz_to_erb_rate(f_max), n))
