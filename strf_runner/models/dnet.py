"""``dnet``: the NRF with learnable exponential decay per hidden unit (Rahman et al. 2019)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F_
from torch import nn

from strf_runner.config import ModelConfig, require_at_least_one
from strf_runner.errors import ConfigError
from strf_runner.models.blocks import TimestepReadout, check_positive, check_spectrogram_input, stream_finite
from strf_runner.models.nrf import HiddenSTRFs
from strf_runner.models.registry import register
from strf_runner.stream import with_context


def decay_kernels(d: torch.Tensor, length: int) -> torch.Tensor:
    """(H, K) causal leaky-integrator taps, tap k (K-1 = the current frame) weighing
    a^(K-1-k) (1 - a) with a = 1 - 1/(1 + d^2): the truncated impulse response of
    y[t] = a y[t-1] + (1 - a) x[t]. d: (H,) learnable decay parameters."""
    a = 1.0 - 1.0 / (1.0 + d**2)
    powers = torch.arange(length - 1, -1, -1, dtype=d.dtype, device=d.device)
    return a[:, None] ** powers / (1.0 + d[:, None] ** 2)


@dataclass
class DNetModelConfig(ModelConfig):
    """NRF with a learnable exponential decay per hidden unit over round(7 tau) frames."""

    name: str = "dnet"
    temporal_window_size: int = 9
    n_hidden: int = 20
    tau: float = 2.0

    def check(self) -> None:
        require_at_least_one(self, "model", ("temporal_window_size", "n_hidden"))


@register("dnet", config=DNetModelConfig)
class DNet(nn.Module):
    """Hidden STRF units -> LayerNorm -> sigmoid -> per-unit exponential decay -> linear readout.

    (B, C_in, F, T) -> (B, N, 1, T), identity output activation. The decay is a causal depthwise
    filter of K = round(7 tau) taps (``decay_kernels``) on the hidden activity left-padded by
    replicating its first frame (so the start of a clip is not read as a silent past). Its
    parameters d start from an exponential distribution with rate 1 / sqrt(tau - 1) (mean 1 at
    tau = 2). Parameters at F = 34, L = 9, H = 20, N = 119: 6,140 + 40 + 20 + 2,499 = 8,699.
    """

    def __init__(
        self,
        n_bands: int,
        n_neurons: int,
        temporal_window_size: int = 9,
        n_hidden: int = 20,
        tau: float = 2.0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        check_positive(temporal_window_size=temporal_window_size, n_hidden=n_hidden, in_channels=in_channels)
        if not tau > 1:
            raise ConfigError(f"model.tau must be > 1 (frames), got {tau}")
        self.n_bands, self.in_channels, self.window = n_bands, in_channels, temporal_window_size
        self.decay_length = max(1, round(7 * tau))
        self.hidden = HiddenSTRFs(n_bands, n_hidden, temporal_window_size, in_channels)
        self.d = nn.Parameter(torch.empty(n_hidden).exponential_(1.0 / math.sqrt(tau - 1.0)))
        self.readout = TimestepReadout(n_hidden, n_neurons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_spectrogram_input(x, self.in_channels, self.n_bands, "dnet")
        h = torch.sigmoid(self.hidden(x))  # (B, H, T)
        return self._decay_readout(F_.pad(h, (self.decay_length - 1, 0), mode="replicate"))

    def _decay_readout(self, padded: torch.Tensor) -> torch.Tensor:
        """Decay and readout of hidden activity preceded by K - 1 frames of history: (B, H, K-1+T) -> (B, N, 1, T)."""
        kernels = decay_kernels(self.d, self.decay_length).to(padded.dtype)
        decayed = F_.conv1d(padded, kernels[:, None], groups=padded.shape[1])
        return self.readout(decayed).unsqueeze(2)

    def stream(
        self, x: torch.Tensor, state: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``forward`` on the next chunk (B, C_in, F, T >= 1) of a long input. state (None at the start):
        the last L - 1 input frames and the last K - 1 frames of hidden activity, which at the start
        are the first frame replicated, as in ``forward``."""
        check_spectrogram_input(x, self.in_channels, self.n_bands, "dnet")
        state = state or {"input": None, "hidden": None}
        h, inputs = stream_finite(self.hidden, x, state["input"], self.window - 1)
        h = torch.sigmoid(h)
        past = state["hidden"]
        if past is None:
            past = h[..., :1].expand(*h.shape[:-1], self.decay_length - 1)
        full, _, hidden = with_context(h, past, self.decay_length - 1)
        return self._decay_readout(full), {"input": inputs, "hidden": hidden}
