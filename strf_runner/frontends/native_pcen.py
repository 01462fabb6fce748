"""``native_pcen``: the native spectrogram through the same learnable per-channel PCEN as LEAF.

An ablation arm: with the native filterbank fixed, does LEAF's advantage come from its learned
filters or from PCEN's adaptive gain control (4F extra parameters)? The native view is in dB
(20 log10 magnitude, floored at -70 dB), so each bin is first mapped back to a non-negative linear
magnitude 10^(dB/20) (the floor becomes 10^(-3.5) = 3.2e-4, not zero), then PCEN runs per band
along time with the shared ``PCEN`` module (initial smoother state M(0) = E(0)).
Output frame t depends on input frames <= t only (PCEN's smoother is an exactly causal scan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from strf_runner.config import FrontendConfig
from strf_runner.errors import ConfigError
from strf_runner.frontends.base import SpectrogramFrontend
from strf_runner.frontends.pcen import PCEN
from strf_runner.frontends.registry import register

DB_TO_LOG = math.log(10.0) / 20.0  # 10^(dB/20) = exp(dB * ln(10) / 20)


@dataclass
class NativePcenFrontendConfig(FrontendConfig):
    """The native spectrogram (dB -> linear) through learnable per-channel PCEN (4F parameters)."""

    name: str = "native_pcen"
    alpha: float = 0.96
    delta: float = 2.0
    root: float = 0.5
    smooth: float = 0.04
    learnable: bool = True


@register("native_pcen", config=NativePcenFrontendConfig)
class NativePCEN(SpectrogramFrontend):
    """(B, 1, F, T) native dB spectrogram -> linear magnitude -> per-band PCEN -> (B, 1, F, T).

    n_bands: F (passed by the runner from the dataset). alpha, delta, root, smooth, eps: PCEN's
    initial values (LEAF's defaults); learnable=False freezes them. 4F parameters (136 at F = 34).
    """

    def __init__(
        self,
        n_bands: int,
        alpha: float = 0.96,
        delta: float = 2.0,
        root: float = 0.5,
        smooth: float = 0.04,
        eps: float = 1e-6,
        learnable: bool = True,
    ) -> None:
        if n_bands < 1:
            raise ConfigError(f"native_pcen: n_bands must be >= 1, got {n_bands}")
        super().__init__(out_channels=n_bands)
        self.pcen = PCEN(n_bands, alpha=alpha, delta=delta, root=root, smooth=smooth, eps=eps, learnable=learnable)

    def finite(self, stims: torch.Tensor) -> torch.Tensor:
        """The linear magnitude 10^(dB/20) > 0 of every bin, (B, F, T); PCEN follows."""
        self.check_spectrogram(stims, "native_pcen")
        return torch.exp(stims[:, 0] * DB_TO_LOG)
