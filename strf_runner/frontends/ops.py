"""Causal building blocks shared by the waveform front-ends: FFT filtering, pooling, compression.

All are strictly causal: output at time t uses input at times <= t only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_

from strf_runner.errors import ConfigError


def _fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (sizes the FFT is fast for)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def causal_fft_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Causal FIR filtering by FFT: y[b, f, t] = sum_k kernels[f, k] x[b, t - k] (zeros before 0).

    x: (B, 1, T) or (B, F, T) (one signal per filter); kernels: (F, K). Returns (B, F, T), equal to
    the direct convolution up to float rounding, in O(T log T) per filter instead of O(T K).
    Causal in exact arithmetic; in floating point a later sample reaches an earlier output only
    through FFT rounding (about 1e-7 of its size in float32), which causality tests must allow for.
    """
    t_len, k_len = x.shape[-1], kernels.shape[-1]
    n = _fast_len(t_len + k_len - 1)
    spec = torch.fft.rfft(x, n=n) * torch.fft.rfft(kernels, n=n)
    return torch.fft.irfft(spec, n=n)[..., :t_len]


FIR_METHODS = ("auto", "fft", "direct")
FFT_MIN_TAPS = 160  # "auto" filters by FFT above this many taps (measured crossover on 2 CPU cores)


def causal_fir(x: torch.Tensor, kernels: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Causal FIR filter bank: y[b, f, t] = sum_k kernels[f, k] x[b, t - k]; x (B, 1, T) -> (B, F, T).

    method: "direct" (conv1d on the left-padded input: exactly causal, fast for short kernels and on
    GPUs), "fft" (``causal_fft_conv``: O(T log T), causal up to rounding) or "auto" (FFT above
    ``FFT_MIN_TAPS`` taps).
    """
    if method not in FIR_METHODS:
        raise ConfigError(f"fir={method!r} is not one of {FIR_METHODS}")
    k_len = kernels.shape[-1]
    if method == "fft" or (method == "auto" and k_len > FFT_MIN_TAPS):
        return causal_fft_conv(x, kernels)
    return F_.conv1d(F_.pad(x, (k_len - 1, 0)), kernels.flip(-1)[:, None])


def causal_avg_pool(x: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Mean over the last ``window`` samples at the end of every hop: (B, F, T*hop) -> (B, F, T).

    Frame t averages samples [(t+1)*hop - window, (t+1)*hop), zero-padded on the left.
    """
    if window < hop:
        raise ConfigError(f"pooling window ({window} samples) must be >= hop ({hop})")
    return F_.avg_pool1d(F_.pad(x, (window - hop, 0)), kernel_size=window, stride=hop)


COMPRESSIONS = ("log", "cuberoot", "log1p", "none")


def compress(x: torch.Tensor, kind: str, floor: float = 1e-4) -> torch.Tensor:
    """Amplitude compression of a non-negative spectrogram: log(max(x, floor)), max(x, floor^3)^(1/3),
    log(1+x), x. The cube root is floored like the log: its gradient at 0 is infinite, which would
    turn silence into NaN gradients for every parameter upstream."""
    if kind == "log":
        return torch.log(x.clamp(min=floor))
    if kind == "cuberoot":
        return x.clamp(min=floor**3).pow(1.0 / 3.0)
    if kind == "log1p":
        return torch.log1p(x.clamp(min=0))
    if kind == "none":
        return x
    raise ConfigError(f"compression={kind!r} is not one of {COMPRESSIONS}")
