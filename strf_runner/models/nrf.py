"""``nrf``: the network receptive field model (Harper et al. 2016): a few hidden causal STRF units."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from strf_runner.config import ModelConfig, require_at_least_one
from strf_runner.models.blocks import (
    ChannelLayerNorm,
    ParametricSoftplus,
    TimestepReadout,
    causal_strf,
    check_positive,
    check_spectrogram_input,
    stream_finite,
    uniform_,
)
from strf_runner.models.registry import register


class HiddenSTRFs(nn.Module):
    """H causal (C_in x F x L) STRF units -> LayerNorm over the H units at every time step.

    (B, C_in, F, T) -> (B, H, T); H * (C_in F L + 1) + 2H parameters. Output frame t sees input
    frames t-L+1 .. t only.
    """

    def __init__(self, n_bands: int, n_hidden: int, window: int, in_channels: int) -> None:
        super().__init__()
        fan_in = in_channels * n_bands * window
        self.weight = nn.Parameter(uniform_(torch.empty(n_hidden, in_channels, n_bands, window), fan_in))
        self.bias = nn.Parameter(uniform_(torch.empty(n_hidden), fan_in))
        self.norm = ChannelLayerNorm(n_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(causal_strf(x, self.weight, self.bias))


@dataclass
class NRFModelConfig(ModelConfig):
    """Network receptive field: ``n_hidden`` causal STRF units, tanh, per-time-step linear readout."""

    name: str = "nrf"
    temporal_window_size: int = 9
    n_hidden: int = 20

    @property
    def nonnegative_output(self) -> bool:
        return True

    def check(self) -> None:
        require_at_least_one(self, "model", ("temporal_window_size", "n_hidden"))


@register("nrf", config=NRFModelConfig)
class NetworkReceptiveField(nn.Module):
    """Hidden STRF units -> LayerNorm -> tanh -> per-time-step linear readout -> parametric softplus.

    (B, C_in, F, T) -> (B, N, 1, T). Parameters at F = 34, L = 9, H = 20, N = 119: hidden STRFs
    20 * 307 = 6,140, LayerNorm 40, readout 20 * 119 + 119 = 2,499, softplus 238: 8,917.
    """

    def __init__(
        self, n_bands: int, n_neurons: int, temporal_window_size: int = 9, n_hidden: int = 20, in_channels: int = 1
    ) -> None:
        super().__init__()
        check_positive(temporal_window_size=temporal_window_size, n_hidden=n_hidden, in_channels=in_channels)
        self.n_bands, self.in_channels, self.window = n_bands, in_channels, temporal_window_size
        self.hidden = HiddenSTRFs(n_bands, n_hidden, temporal_window_size, in_channels)
        self.readout = TimestepReadout(n_hidden, n_neurons)
        self.activation = ParametricSoftplus(n_neurons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_spectrogram_input(x, self.in_channels, self.n_bands, "nrf")
        return self.activation(self.readout(torch.tanh(self.hidden(x)))).unsqueeze(2)

    def stream(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` on the next chunk of a long input; state: the last L - 1 input frames (None at the start)."""
        return stream_finite(self, x, state, self.window - 1)
