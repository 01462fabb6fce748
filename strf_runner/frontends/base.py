"""What every front-end is: a module that declares the dataset view it reads."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from strf_runner.errors import ConfigError, ShapeError


class Frontend(nn.Module):
    """Maps a stimulus batch to a spectrogram (B, 1, F, T), strictly causally.

    ``view`` names the dataset view the front-end consumes: "spectrogram" (input (B, 1, F, T))
    or "waveform" (input (B, 1, T * hop)). The runner loads that view, so choosing a front-end
    is the only switch a user sets. Output frame t depends only on input up to the end of bin t.
    """

    view: ClassVar[str]

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels

    def forward(self, stims: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class SpectrogramFrontend(Frontend):
    """A front-end on the dataset's spectrogram view: (B, 1, F, T) -> (B, 1, F', T)."""

    view = "spectrogram"

    def check_spectrogram(self, x: torch.Tensor, name: str) -> None:
        """Validate a spectrogram batch (B, 1, F=out_channels, T); ``name`` is the config name in errors."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.out_channels:
            raise ShapeError(
                f"{name} front-end expects a spectrogram batch (B, 1, F={self.out_channels}, T); "
                f"got {tuple(x.shape)}"
            )


class WaveformFrontend(Frontend):
    """A front-end on raw audio: (B, 1, T * hop) -> (B, 1, F, T).

    audio_fs: sample rate in Hz; hop: samples per output frame (audio_fs * dt). Output frame t may
    depend only on samples [0, (t + 1) * hop). Subclasses call ``check_waveform`` first in forward.
    """

    view = "waveform"

    def __init__(self, out_channels: int, audio_fs: float, hop: int) -> None:
        super().__init__(out_channels)
        if hop < 1 or audio_fs <= 0:
            raise ConfigError(f"{type(self).__name__}: need audio_fs > 0 and hop >= 1, got {audio_fs}, {hop}")
        self.audio_fs = float(audio_fs)
        self.hop = int(hop)

    def check_waveform(self, x: torch.Tensor) -> int:
        """Validate a waveform batch (B, 1, T_audio); return the number of frames T_audio // hop."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ShapeError(f"{type(self).__name__} expects a waveform batch (B, 1, T_audio); got {tuple(x.shape)}")
        if x.shape[-1] % self.hop:
            raise ShapeError(
                f"{type(self).__name__}: T_audio={x.shape[-1]} is not a multiple of hop={self.hop} "
                "(the waveform must be grid-locked to the time bins)"
            )
        return x.shape[-1] // self.hop
