"""``sincnet``: learnable band-pass sinc filters (Ravanelli & Bengio 2018), made strictly causal.

See spec/frontends.md, "SincNet". Parameters: 2F (low edges and band widths, in Hz).
f1 = clamp(|low|, 1, fs/2 - 1), f2 = min(f1 + |band|, fs/2). The kernel on the centred grid
n = -(K-1)/2 .. (K-1)/2 is the ideal band-pass

    h[n] = [sin(2 pi f2 n / fs) - sin(2 pi f1 n / fs)] / (pi n),   h[0] = 2 (f2 - f1) / fs,

times a Hamming window 0.54 - 0.46 cos(2 pi k / (K - 1)), k = 0 .. K-1. This is the unit-gain
normalisation (pass-band magnitude ~1); the reference variant that differs by a factor fs is not
used.

Causality: every convolution is left-padded so its output at sample t reads x[t - K + 1 .. t]
only. Because the sinc kernel is centred in its K taps, its response is delayed by (K - 1) / 2
samples (2.6 ms for K = 251 at 48 kHz): the price of causality, not a look-ahead.

- Strided mode (default): left-pad max(0, K - hop), convolve with stride hop. Frame t is the
  filter output at sample (t+1)*hop - 1 for K >= hop (for K < hop, as the spec says, no padding:
  frame t reads samples [t*hop, t*hop + K)). Exactly causal.
- Envelope mode: left-pad K - 1, convolve at stride 1 (``fir="auto"``: by FFT for K > 160, where the
  direct convolution is slower on a CPU; later samples then reach earlier outputs only through float
  rounding; ``fir="direct"`` is exact),
  absolute value, causal average pooling over ``envelope_ms`` ending at each hop boundary.
Then the activation: "logabs" log(1 + |x|) or "symlog" sign(x) log(1 + |x|).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F_
from torch import nn

from strf_runner.config import FrontendConfig
from strf_runner.errors import ConfigError
from strf_runner.frontends.base import FilterbankInfo, WaveformFrontend, as_numpy, kernel_magnitudes
from strf_runner.frontends.ops import FIR_METHODS, causal_avg_pool, causal_fir
from strf_runner.frontends.registry import register
from strf_runner.frontends.spacing import hz_to_mel, mel_to_hz

ACTIVATIONS = ("logabs", "symlog")
INITS = ("mel", "linear")


@dataclass
class SincNetFrontendConfig(FrontendConfig):
    """SincNet: learnable band-pass edges (sinc filters) on the waveform."""

    name: str = "sincnet"
    n_filters: int = 34
    kernel_size: int = 251
    f_min: float = 300.0
    f_max: Optional[float] = None
    init: str = "mel"
    activation: str = "logabs"
    envelope: bool = False
    envelope_ms: Optional[float] = None
    fir: str = "auto"


@register("sincnet", config=SincNetFrontendConfig)
class SincNet(WaveformFrontend):
    """Learnable sinc band-pass filterbank: (B, 1, T * hop) -> (B, 1, n_filters, T).

    audio_fs, hop: from the dataset. n_filters: filters (= out_channels). kernel_size: K taps (odd).
    f_min, f_max: range of the F + 1 initial band edges (f_max defaults to and is capped at
    Nyquist). init: "mel" (edges evenly spaced on the HTK mel scale) or "linear". activation:
    "logabs" or "symlog". envelope: rectify and average-pool the stride-1 output instead of sampling
    it every hop; envelope_ms: pooling window (default: one hop). fir: "auto" / "fft" / "direct",
    how envelope mode filters (``ops.causal_fir``).
    """

    def __init__(
        self,
        audio_fs: float,
        hop: int,
        n_filters: int = 34,
        kernel_size: int = 251,
        f_min: float = 300.0,
        f_max: float | None = None,
        init: str = "mel",
        activation: str = "logabs",
        envelope: bool = False,
        envelope_ms: float | None = None,
        fir: str = "auto",
    ) -> None:
        super().__init__(n_filters, audio_fs, hop)
        if n_filters < 1:
            raise ConfigError(f"frontend.n_filters must be >= 1, got {n_filters}")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ConfigError(f"frontend.kernel_size must be odd and >= 3, got {kernel_size}")
        if init not in INITS:
            raise ConfigError(f"frontend.init={init!r} is not one of {INITS}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"frontend.activation={activation!r} is not one of {ACTIVATIONS}")
        if fir not in FIR_METHODS:
            raise ConfigError(f"frontend.fir={fir!r} is not one of {FIR_METHODS}")
        self.fir = fir
        nyquist = self.audio_fs / 2
        f_max = nyquist if f_max is None else min(float(f_max), nyquist)
        if not 0 <= f_min < f_max:
            raise ConfigError(
                f"frontend.f_min must satisfy 0 <= f_min < f_max (capped at Nyquist {nyquist:g}); got {f_min}, {f_max}"
            )
        window = self.hop if envelope_ms is None else round(self.audio_fs * envelope_ms / 1000)
        if envelope and window < self.hop:
            raise ConfigError(
                f"frontend.envelope_ms={envelope_ms} gives {window} samples, less than one hop ({self.hop})"
            )
        self.kernel_size = int(kernel_size)
        self.f_min, self.f_max = float(f_min), f_max
        self.init, self.activation = init, activation
        self.envelope, self.envelope_window = bool(envelope), int(window)

        if init == "mel":
            edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_filters + 1))
        else:
            edges = np.linspace(f_min, f_max, n_filters + 1)
        self.low_hz = nn.Parameter(torch.tensor(edges[:-1], dtype=torch.float32))
        self.band_hz = nn.Parameter(torch.tensor(np.diff(edges), dtype=torch.float32))
        half = (self.kernel_size - 1) // 2
        k = torch.arange(self.kernel_size, dtype=torch.float64)
        hamming = 0.54 - 0.46 * torch.cos(2 * torch.pi * k / (self.kernel_size - 1))
        self.register_buffer("taps", (k - half).float(), persistent=False)  # centred grid n
        self.register_buffer("hamming", hamming.float(), persistent=False)
        with torch.no_grad():
            self.register_buffer("initial_edges", self._edges().clone(), persistent=False)

    def _edges(self) -> torch.Tensor:
        """Constrained (f1, f2) per filter, differentiable: (F, 2) in Hz."""
        nyquist = self.audio_fs / 2
        f1 = self.low_hz.abs().clamp(1.0, nyquist - 1.0)
        f2 = (f1 + self.band_hz.abs()).clamp(max=nyquist)
        return torch.stack([f1, f2], dim=1)

    def band_edges_hz(self) -> torch.Tensor:
        """Current (learned) band edges (f1, f2) per filter, (F, 2) in Hz, detached."""
        return self._edges().detach().clone()

    def initial_band_edges_hz(self) -> torch.Tensor:
        """Band edges at construction, (F, 2) in Hz (for measuring how far training moved them)."""
        return self.initial_edges.clone()

    def filterbank_info(self) -> FilterbankInfo:
        """Centres are each band's geometric mean sqrt(f1 f2); the edges come along."""
        edges, initial = as_numpy(self.band_edges_hz()), as_numpy(self.initial_band_edges_hz())
        learnable = self.low_hz.requires_grad or self.band_hz.requires_grad
        return FilterbankInfo("sincnet", np.sqrt(edges.prod(axis=1)), np.sqrt(initial.prod(axis=1)), learnable,
                              edges, initial)

    def magnitude_responses(self, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        return kernel_magnitudes(self.kernels(), self.audio_fs, n_fft)

    def kernels(self) -> torch.Tensor:
        """The windowed band-pass kernels on the centred grid, (F, K), tap k at n = k - (K-1)/2."""
        edges = self._edges()
        f1, f2 = edges[:, :1], edges[:, 1:]
        n = self.taps
        safe_n = torch.where(n == 0, torch.ones_like(n), n)
        w = 2 * torch.pi * n / self.audio_fs
        side = (torch.sin(f2 * w) - torch.sin(f1 * w)) / (torch.pi * safe_n)
        centre = 2 * (f2 - f1) / self.audio_fs
        return torch.where(n == 0, centre, side) * self.hamming

    @property
    def context_frames(self) -> int:
        if self.envelope:
            return self.frames_before(self.kernel_size - 1 + self.envelope_window)
        return self.frames_before(self.kernel_size)

    def finite(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T*hop) -> (B, F, T): the whole front-end (it has no recursive part)."""
        self.check_waveform(x)
        h = self.kernels()
        k_len = self.kernel_size
        if not self.envelope:
            y = F_.conv1d(F_.pad(x, (max(0, k_len - self.hop), 0)), h[:, None], stride=self.hop)
        else:
            # the centred kernel as causal taps: tap k multiplies x[t - k]
            y = causal_fir(x, h.flip(-1), self.fir)
            y = causal_avg_pool(y.abs(), self.envelope_window, self.hop)
        out = torch.log1p(y.abs())
        return torch.sign(y) * out if self.activation == "symlog" else out

    def extra_repr(self) -> str:
        return (
            f"audio_fs={self.audio_fs:g}, hop={self.hop}, n_filters={self.out_channels}, "
            f"kernel_size={self.kernel_size}, init={self.init!r}, activation={self.activation!r}, "
            f"envelope={self.envelope}, envelope_window={self.envelope_window}"
        )
