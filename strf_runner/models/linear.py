"""``linear``: the causal Linear STRF readout (one spectro-temporal filter per neuron)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from strf_runner.config import ModelConfig, require_at_least_one
from strf_runner.errors import ConfigError
from strf_runner.models.blocks import causal_strf, check_spectrogram_input, stream_finite
from strf_runner.models.registry import register

ACTIVATIONS = {"identity": nn.Identity, "relu": nn.ReLU, "softplus": nn.Softplus}


@dataclass
class LinearModelConfig(ModelConfig):
    """Causal Linear STRF: ``temporal_window_size`` frames of history per neuron (9 = 45 ms at 5 ms)."""

    name: str = "linear"
    temporal_window_size: int = 9
    batch_norm: bool = True
    activation: str = "identity"

    nonnegative_with: ClassVar[str] = "model.activation=softplus|relu, or a readout with non-negative rates (ln, nrf)"

    @property
    def nonnegative_output(self) -> bool:
        return self.activation in ("softplus", "relu")

    def check(self) -> None:
        require_at_least_one(self, "model", ("temporal_window_size",))


@register("linear", config=LinearModelConfig)
class LinearSTRF(nn.Module):
    """Per neuron a causal (F x L) STRF plus bias, then per-neuron batch norm and an activation.

    Input (B, C_in, F, T) -> output (B, N, 1, T). Output frame t sees input frames t-L+1 .. t only:
    time is zero-padded by L - 1 frames on the left and nothing on the right. Parameters:
    N*C_in*F*L weights + N biases + 2N batch-norm affine terms (36,771 for F=34, L=9, N=119).
    In eval mode the batch norm uses running statistics, a per-neuron affine map.
    """

    def __init__(
        self,
        n_bands: int,
        n_neurons: int,
        temporal_window_size: int = 9,
        in_channels: int = 1,
        batch_norm: bool = True,
        activation: str = "identity",
    ) -> None:
        super().__init__()
        if temporal_window_size < 1:
            raise ConfigError(f"model.temporal_window_size must be >= 1, got {temporal_window_size}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation={activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.n_bands, self.n_neurons, self.window = n_bands, n_neurons, temporal_window_size
        self.conv = nn.Conv2d(in_channels, n_neurons, kernel_size=(n_bands, temporal_window_size))
        self.norm = nn.BatchNorm1d(n_neurons) if batch_norm else nn.Identity()
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_spectrogram_input(x, self.conv.in_channels, self.n_bands, "linear")
        y = self.norm(causal_strf(x, self.conv.weight, self.conv.bias))  # (B, N, T)
        return self.activation(y).unsqueeze(2)

    def stream(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` on the next chunk (B, C_in, F, T) of a long input; state: the last L - 1 input frames
        (None at the start). Chunk outputs concatenated equal ``forward`` of the whole (eval mode)."""
        return stream_finite(self, x, state, self.window - 1)

    def strfs(self) -> torch.Tensor:
        """The STRF weights of input channel 0 as (N, F, L), lag L-1 being the current frame."""
        return self.conv.weight[:, 0].detach()
