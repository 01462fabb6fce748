"""The encoding model: a front-end (the wav2spec slot) followed by a readout."""

from __future__ import annotations

import torch
from torch import nn

from strf_runner.frontends.base import Frontend


class EncodingModel(nn.Module):
    """stims -> frontend -> (B, 1, F, T) -> readout -> predictions (B, N, 1, T).

    ``view`` is the dataset view the front-end consumes, so the runner loads the right one.
    """

    def __init__(self, frontend: Frontend, readout: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.readout = readout

    @property
    def view(self) -> str:
        return self.frontend.view

    def forward(self, stims: torch.Tensor) -> torch.Tensor:
        return self.readout(self.frontend(stims))

    def n_params(self) -> int:
        """Number of trainable scalars (buffers such as batch-norm statistics excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
