"""``gammatone``: a fixed (optionally centre-learnable) FIR gammatone filterbank, strictly causal.

See spec/frontends.md, "Gammatone (fixed, FIR)". Centres are evenly spaced in ERB-rate
(E(f) = 21.4 log10(0.00437 f + 1)) from f_min to f_max; f_max is capped so that the top filter's
ERB band [fc - ERB/2, fc + ERB/2] stays below Nyquist (no effect at 48 kHz: the cap is 22,759 Hz).
Each filter is the order-n gammatone impulse response sampled at t = k / fs, k = 0 .. K-1
(K = 20 ms of taps, 960 at 48 kHz):

    g(t) = t^(n-1) exp(-2 pi b t) cos(2 pi fc t),   b = 1.019 ERB(fc),  ERB(f) = 24.7 (0.00437 f + 1),

divided by the peak of its max(4096, K)-point spectrum magnitude (unit gain at its best frequency).

Forward: causal FIR filtering (tap 0 = the current sample; ``fir``: by FFT by default, or direct),
half-wave (or full-wave) rectification, causal average pooling (window default 2 hops, ending at
each hop boundary, stride hop), compression log(max(., 1e-4)) (or cube root / log1p / none).

Causality: frame t depends on samples < (t+1)*hop only. With the FFT (``fir="auto"`` or "fft"),
later samples reach earlier outputs through float rounding alone (about 1e-7 of their size in
float32, 1e-16 in float64); ``fir="direct"`` is exactly causal but several times slower on a CPU
for 960 taps (``strf-bench`` measures both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F_
from torch import nn

from strf_runner.config import FrontendConfig
from strf_runner.errors import ConfigError
from strf_runner.frontends.base import FilterbankInfo, WaveformFrontend, as_numpy, kernel_magnitudes
from strf_runner.frontends.ops import COMPRESSIONS, FIR_METHODS, causal_avg_pool, causal_fir, compress
from strf_runner.frontends.registry import register
from strf_runner.frontends.spacing import erb_centres

RECTIFY = ("half", "full")
CENTRE_MARGIN_HZ = 1.0  # learnable centres live in [margin, Nyquist - margin], strictly inside (0, Nyquist)
SPECTRUM_POINTS = 4096


def gammatone_top_centre(audio_fs: float) -> float:
    """The highest centre (Hz) whose ERB band ends at or below Nyquist: fc + ERB(fc)/2 = fs/2."""
    return (audio_fs / 2 - 24.7 / 2) / (1 + 24.7 * 0.00437 / 2)


@dataclass
class GammatoneFrontendConfig(FrontendConfig):
    """ERB-spaced gammatone FIR filterbank, rectification, pooling and compression."""

    name: str = "gammatone"
    n_filters: int = 34
    f_min: float = 500.0
    f_max: float = 22627.0
    order: int = 4
    kernel_ms: float = 20.0
    pool_ms: Optional[float] = None
    rectify: str = "half"
    compression: str = "log"
    learn_centres: bool = False
    fir: str = "auto"


@register("gammatone", config=GammatoneFrontendConfig)
class Gammatone(WaveformFrontend):
    """FIR gammatone filterbank + rectification + pooling + compression: (B, 1, T*hop) -> (B, 1, F, T).

    audio_fs, hop: from the dataset. n_filters: filters (= out_channels). f_min, f_max: centre range
    in Hz (f_max capped below Nyquist, see module doc). order: gammatone order (4). kernel_ms: FIR
    length in ms. pool_ms: pooling window in ms (default 2 hops; at least one hop). rectify: "half"
    or "full". compression: "log" (log(max(x, floor))), "cuberoot" (max(x, floor^3)^(1/3)),
    "log1p" or "none". fir: "auto" / "fft" / "direct", how the FIR filtering runs (``ops.causal_fir``).
    learn_centres: make the F centre frequencies learnable (F parameters, stored as logits of
    (fc - 1 Hz) / (Nyquist - 2 Hz), so they stay inside (0, Nyquist) whatever the optimiser does;
    the kernels are rebuilt from them differentiably every forward). 0 parameters otherwise.
    """

    def __init__(
        self,
        audio_fs: float,
        hop: int,
        n_filters: int = 34,
        f_min: float = 500.0,
        f_max: float = 22627.0,
        order: int = 4,
        kernel_ms: float = 20.0,
        pool_ms: float | None = None,
        rectify: str = "half",
        compression: str = "log",
        learn_centres: bool = False,
        floor: float = 1e-4,
        fir: str = "auto",
    ) -> None:
        super().__init__(n_filters, audio_fs, hop)
        if n_filters < 1:
            raise ConfigError(f"frontend.n_filters must be >= 1, got {n_filters}")
        if order < 1:
            raise ConfigError(f"frontend.order must be >= 1, got {order}")
        if rectify not in RECTIFY:
            raise ConfigError(f"frontend.rectify={rectify!r} is not one of {RECTIFY}")
        if compression not in COMPRESSIONS:
            raise ConfigError(f"frontend.compression={compression!r} is not one of {COMPRESSIONS}")
        if floor <= 0:
            raise ConfigError(f"frontend.floor must be > 0, got {floor}")
        if fir not in FIR_METHODS:
            raise ConfigError(f"frontend.fir={fir!r} is not one of {FIR_METHODS}")
        self.fir = fir
        top = gammatone_top_centre(self.audio_fs)
        f_max = min(float(f_max), top)
        if not 0 < f_min < f_max:
            raise ConfigError(
                f"frontend.f_min must satisfy 0 < f_min < f_max (capped at {top:.1f} Hz); got {f_min}, {f_max}"
            )
        n_taps = round(self.audio_fs * kernel_ms / 1000)
        if n_taps < 1:
            raise ConfigError(f"frontend.kernel_ms={kernel_ms} gives no taps at {self.audio_fs:g} Hz")
        pool = 2 * self.hop if pool_ms is None else round(self.audio_fs * pool_ms / 1000)
        if pool < self.hop:
            raise ConfigError(f"frontend.pool_ms={pool_ms} gives {pool} samples, less than one hop ({self.hop})")
        self.f_min, self.f_max, self.order = float(f_min), f_max, int(order)
        self.n_taps, self.pool = n_taps, pool
        self.rectify, self.compression, self.floor = rectify, compression, float(floor)
        self.n_spectrum = max(SPECTRUM_POINTS, n_taps)
        centres = erb_centres(n_filters, f_min, f_max)
        self._initial_centres = centres
        self.register_buffer("t", torch.arange(n_taps, dtype=torch.float32) / self.audio_fs, persistent=False)
        if learn_centres:
            ratio = (centres - CENTRE_MARGIN_HZ) / (self.audio_fs / 2 - 2 * CENTRE_MARGIN_HZ)
            self.centre_logit = nn.Parameter(torch.logit(torch.tensor(ratio, dtype=torch.float64)).float())
            self.register_buffer("fixed_kernels", None, persistent=False)
        else:
            self.centre_logit = None
            t64 = torch.arange(n_taps, dtype=torch.float64) / self.audio_fs
            kern = self._build(torch.tensor(centres, dtype=torch.float64), t64)
            self.register_buffer("fixed_kernels", kern.float(), persistent=False)

    def _build(self, fc: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Peak-normalised gammatone taps (F, K) for centres fc (F,) at times t (K,)."""
        b = 1.019 * 24.7 * (0.00437 * fc + 1.0)
        # t^(n-1) exp(-2 pi b t); scale t by 1 ms to keep the float32 values near 1 (the peak
        # normalisation cancels any constant factor)
        ts = t * 1000.0
        env = ts ** (self.order - 1) * torch.exp(-2 * math.pi * b[:, None] * t)
        g = env * torch.cos(2 * math.pi * fc[:, None] * t)
        peak = torch.fft.rfft(g, n=self.n_spectrum).abs().amax(dim=-1, keepdim=True)
        return g / peak

    def _centres(self) -> torch.Tensor:
        """Learnable centres (F,) in Hz, differentiable: margin + (Nyquist - 2 margin) sigmoid(logit)."""
        span = self.audio_fs / 2 - 2 * CENTRE_MARGIN_HZ
        return CENTRE_MARGIN_HZ + span * torch.sigmoid(self.centre_logit)

    def centres_hz(self) -> torch.Tensor:
        """Centre frequencies (F,) in Hz (low to high at initialisation; float64 when fixed), detached."""
        if self.centre_logit is None:
            return torch.from_numpy(self._initial_centres.copy())
        return self._centres().detach()

    def filterbank_info(self) -> FilterbankInfo:
        centres = as_numpy(self.centres_hz())
        if self.centre_logit is None:
            return FilterbankInfo("gammatone", centres, centres.copy(), False)
        return FilterbankInfo("gammatone", centres, self._initial_learnable_centres(), self.centre_logit.requires_grad)

    def _initial_learnable_centres(self) -> np.ndarray:
        """(F,) a learn_centres bank's centres at initialisation, bit for bit: the ERB grid passes through
        a float32 logit and a sigmoid, which a fresh bank of the same arguments (dtype, device) repeats,
        so an untrained bank has drift exactly 0."""
        fresh = Gammatone(self.audio_fs, self.hop, self.out_channels, self.f_min, self.f_max, learn_centres=True)
        return as_numpy(fresh.to(self.centre_logit).centres_hz())

    def magnitude_responses(self, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        return kernel_magnitudes(self.kernels(), self.audio_fs, n_fft)

    def kernels(self) -> torch.Tensor:
        """FIR taps (F, K): tap k multiplies the sample k steps back (tap 0 = the current sample)."""
        if self.centre_logit is None:
            return self.fixed_kernels
        fc = self._centres()
        return self._build(fc, self.t.to(fc.dtype))

    @property
    def context_frames(self) -> int:
        return self.frames_before(self.n_taps - 1 + self.pool)

    def finite(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T*hop) -> (B, F, T): the whole front-end (it has no recursive part)."""
        self.check_waveform(x)
        y = causal_fir(x, self.kernels().to(x.dtype), self.fir)
        y = F_.relu(y) if self.rectify == "half" else y.abs()
        pooled = causal_avg_pool(y, self.pool, self.hop)
        return compress(pooled, self.compression, self.floor)

    def extra_repr(self) -> str:
        return (
            f"audio_fs={self.audio_fs:g}, hop={self.hop}, n_filters={self.out_channels}, "
            f"f_min={self.f_min:g}, f_max={self.f_max:g}, order={self.order}, taps={self.n_taps}, "
            f"pool={self.pool}, rectify={self.rectify!r}, compression={self.compression!r}, "
            f"learn_centres={self.centre_logit is not None}, fir={self.fir!r}"
        )
