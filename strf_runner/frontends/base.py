"""What every front-end is: a module that declares the dataset view it reads."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


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
