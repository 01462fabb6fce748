"""``mel``: a fixed, strictly causal mel spectrogram (the Rahman cochleagram recipe).

See spec/frontends.md, "Causal mel spectrogram". At 48 kHz with hop 240 (5 ms) and the defaults:
window = n_fft = 480 samples (10 ms), symmetric Hann, 34 HTK triangular filters 500-22,627 Hz over
the 241 FFT bins (peak weight 1, no area normalisation), left-pad window - hop = 240 zeros, frames
at stride hop without centring, magnitude, mel projection, log(max(mel, 1e-4)).

Frame t covers samples [(t+1)*hop - window, (t+1)*hop): it ends at sample (t+1)*hop - 1, so it
depends on nothing later (exactly: each frame's FFT sees only its own samples). For 239,760
samples the output has 999 frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F_
from torch import nn

from strf_runner.config import FrontendConfig
from strf_runner.errors import ConfigError
from strf_runner.frontends.base import FilterbankInfo, WaveformFrontend, as_numpy
from strf_runner.frontends.ops import COMPRESSIONS, compress
from strf_runner.frontends.pcen import PCEN
from strf_runner.frontends.registry import register
from strf_runner.frontends.spacing import hz_to_mel, mel_to_hz

MEL_COMPRESSIONS = (*COMPRESSIONS, "pcen")


def mel_filterbank(n_filters: int, n_fft: int, audio_fs: float, f_min: float, f_max: float) -> np.ndarray:
    """HTK triangular mel filters over the n_fft/2 + 1 FFT bins: (n_filters, n_fft // 2 + 1).

    n_filters + 2 points evenly spaced on the HTK mel scale from f_min to f_max; filter i rises
    linearly (in Hz) from point i to a peak of 1 at point i + 1 and falls to 0 at point i + 2.
    Bin k sits at k * audio_fs / n_fft Hz. No area normalisation.
    """
    points = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_filters + 2))
    bins = np.arange(n_fft // 2 + 1) * audio_fs / n_fft
    lo, mid, hi = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (bins[None, :] - lo) / (mid - lo)
    falling = (hi - bins[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


@dataclass
class MelFrontendConfig(FrontendConfig):
    """Causal mel spectrogram on the waveform; optional learnable gains or PCEN compression."""

    name: str = "mel"
    n_filters: int = 34
    f_min: float = 500.0
    f_max: float = 22627.0
    window_ms: float = 10.0
    compression: str = "log"
    learnable_gain: bool = False


@register("mel", config=MelFrontendConfig)
class MelSpectrogram(WaveformFrontend):
    """Causal mel spectrogram: (B, 1, T * hop) -> (B, 1, n_filters, T).

    audio_fs, hop: from the dataset. n_filters: mel bands (= out_channels). f_min, f_max: band
    range in Hz (f_max capped at Nyquist). window_ms: STFT window = FFT size, in ms (rounded to
    samples). compression: "log" (log(max(x, floor))), "cuberoot" (max(x, floor^3)^(1/3)), "log1p",
    "none" or "pcen" (the shared learnable PCEN, 4F parameters). learnable_gain: a per-channel gain
    exp(log_gain) (F parameters, initially 1) applied to the mel magnitudes before compression.

    The STFT is a strided framing (unfold) + rfft: no Python loop over frames. Fixed with "log"
    it has no parameters. Causality is exact (gradient of frame t w.r.t. later samples is 0).
    """

    def __init__(
        self,
        audio_fs: float,
        hop: int,
        n_filters: int = 34,
        f_min: float = 500.0,
        f_max: float = 22627.0,
        window_ms: float = 10.0,
        compression: str = "log",
        learnable_gain: bool = False,
        floor: float = 1e-4,
    ) -> None:
        super().__init__(n_filters, audio_fs, hop)
        if n_filters < 1:
            raise ConfigError(f"frontend.n_filters must be >= 1, got {n_filters}")
        if compression not in MEL_COMPRESSIONS:
            raise ConfigError(f"frontend.compression={compression!r} is not one of {MEL_COMPRESSIONS}")
        if floor <= 0:
            raise ConfigError(f"frontend.floor must be > 0, got {floor}")
        nyquist = self.audio_fs / 2
        f_max = min(float(f_max), nyquist)
        if not 0 <= f_min < f_max:
            raise ConfigError(
                f"frontend.f_min must satisfy 0 <= f_min < f_max (capped at Nyquist {nyquist:g}); got {f_min}, {f_max}"
            )
        n_fft = round(self.audio_fs * window_ms / 1000)
        if n_fft < 2:
            raise ConfigError(
                f"frontend.window_ms={window_ms} gives {n_fft} samples at {self.audio_fs:g} Hz; need >= 2"
            )
        bank = mel_filterbank(n_filters, n_fft, self.audio_fs, float(f_min), f_max)
        empty = np.flatnonzero(bank.sum(axis=1) == 0)
        if empty.size:
            raise ConfigError(
                f"frontend.n_filters={n_filters}: mel filters {empty.tolist()} cover no FFT bin "
                f"(bin spacing {self.audio_fs / n_fft:g} Hz); use fewer filters or a longer window_ms"
            )
        self.n_fft = n_fft
        self.f_min, self.f_max = float(f_min), f_max
        self.compression = compression
        self.floor = float(floor)
        # symmetric Hann: 0.5 - 0.5 cos(2 pi n / (N - 1)), n = 0 .. N-1
        hann = torch.hann_window(n_fft, periodic=False, dtype=torch.float64).float()
        self.register_buffer("window", hann, persistent=False)
        self.register_buffer("filterbank", torch.from_numpy(bank.T.copy()).float(), persistent=False)  # (bins, F)
        self.log_gain = nn.Parameter(torch.zeros(n_filters)) if learnable_gain else None
        self.pcen = PCEN(n_filters) if compression == "pcen" else None

    def centres_hz(self) -> torch.Tensor:
        """Filter peak frequencies (F,) in Hz, low to high (float64)."""
        points = mel_to_hz(np.linspace(hz_to_mel(self.f_min), hz_to_mel(self.f_max), self.out_channels + 2))
        return torch.from_numpy(points[1:-1])

    def filterbank_info(self) -> FilterbankInfo:
        centres = as_numpy(self.centres_hz())
        return FilterbankInfo("mel", centres, centres.copy(), False)

    def magnitude_responses(self, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Its triangular weights on its own FFT bins (``n_fft`` is not used: the bins are the window's)."""
        return np.arange(self.n_fft // 2 + 1) * self.audio_fs / self.n_fft, as_numpy(self.filterbank).T

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T * hop) -> windowed frames (B, T, n_fft); frame t ends at sample (t+1)*hop - 1."""
        pad = self.n_fft - self.hop
        x = F_.pad(x, (pad, 0)) if pad >= 0 else x[..., -pad:]
        return x[:, 0].unfold(-1, self.n_fft, self.hop) * self.window

    def magnitude_mel(self, x: torch.Tensor) -> torch.Tensor:
        """Mel-projected STFT magnitude before gain and compression: (B, 1, T*hop) -> (B, F, T)."""
        self.check_waveform(x)
        spec = torch.fft.rfft(self.frames(x), dim=-1).abs()  # complex abs: zero (not NaN) gradient at 0
        return (spec @ self.filterbank).transpose(1, 2)

    @property
    def context_frames(self) -> int:
        return self.frames_before(self.n_fft)

    def finite(self, x: torch.Tensor) -> torch.Tensor:
        """Mel magnitudes times the gain, compressed unless PCEN follows: (B, 1, T*hop) -> (B, F, T)."""
        mel = self.magnitude_mel(x)
        if self.log_gain is not None:
            mel = mel * self.log_gain.exp()[:, None]
        return mel if self.pcen is not None else compress(mel, self.compression, self.floor)

    def extra_repr(self) -> str:
        return (
            f"audio_fs={self.audio_fs:g}, hop={self.hop}, n_filters={self.out_channels}, "
            f"f_min={self.f_min:g}, f_max={self.f_max:g}, n_fft={self.n_fft}, compression={self.compression!r}"
        )
