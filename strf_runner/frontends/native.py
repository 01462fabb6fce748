"""``native``: the dataset's own precomputed spectrogram, passed through unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from strf_runner.config import FrontendConfig
from strf_runner.frontends.base import SpectrogramFrontend
from strf_runner.frontends.registry import register


@dataclass
class NativeFrontendConfig(FrontendConfig):
    """The dataset's native spectrogram as it is: no options beyond the arm's learning rate."""

    name: str = "native"


@register("native", config=NativeFrontendConfig)
class NativeSpectrogram(SpectrogramFrontend):
    """Identity on the spectrogram view: (B, 1, F, T) -> (B, 1, F, T). No parameters."""

    def __init__(self, n_bands: int) -> None:
        super().__init__(out_channels=n_bands)

    def finite(self, stims: torch.Tensor) -> torch.Tensor:
        self.check_spectrogram(stims, "native")
        return stims[:, 0]
