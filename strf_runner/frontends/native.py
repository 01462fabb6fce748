"""``native``: the dataset's own precomputed spectrogram, passed through unchanged."""

from __future__ import annotations

import torch

from strf_runner.errors import ShapeError
from strf_runner.frontends.base import Frontend
from strf_runner.frontends.registry import register


@register("native")
class NativeSpectrogram(Frontend):
    """Identity on the spectrogram view: (B, 1, F, T) -> (B, 1, F, T). No parameters."""

    view = "spectrogram"

    def __init__(self, n_bands: int) -> None:
        super().__init__(out_channels=n_bands)

    def forward(self, stims: torch.Tensor) -> torch.Tensor:
        if stims.dim() != 4 or stims.shape[1] != 1 or stims.shape[2] != self.out_channels:
            raise ShapeError(
                f"native front-end expects a spectrogram batch (B, 1, F={self.out_channels}, T); "
                f"got {tuple(stims.shape)}"
            )
        return stims
