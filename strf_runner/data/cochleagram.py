"""The native cochleagram: Rahman et al.'s log-frequency spectrogram, recomputed from a waveform.

This is the 34-band, 5 ms "native spectrogram" view of NS1 (``X_nfht``), recomputed from the audio
when the precomputed file is absent, and the native view of the synthetic dataset. Recipe (after
Rahman et al. 2019, ``cochleagram_spec_log`` + voicebox ``melbankm`` with options ``'lusc'``):

1. Grid. ``hop = audio_fs * dt_ms / 1000`` samples (must be a whole number; 240 at 48 kHz, 5 ms).
   A waveform of ``T_audio = T * hop`` samples gives exactly ``T`` frames.
2. Window: **Hamming**, symmetric like MATLAB's ``hamming(N)``:
   ``w[k] = 0.54 - 0.46 cos(2 pi k / (N - 1))``, ``N = 2 * hop`` (10 ms), because the original
   MATLAB code calls ``spectrogram`` with an integer window length, which means Hamming. (The
   reference library's text says Hann; we follow the code.)
3. Framing, **strictly causal**: the waveform is left-padded with ``N - hop`` zeros and frame ``t``
   covers audio samples ``[(t + 1) * hop - N, (t + 1) * hop)``. So frame ``t`` never sees audio after
   the end of time bin ``t`` and the cochleagram is grid-locked to the response bins (sample ``j``
   belongs to bin ``j // hop``). MATLAB's ``spectrogram`` starts at sample 0 without padding and
   yields ``T - 1`` frames; its frame k is our frame k + 1, so ours adds one leading half-empty
   frame and pins the count to exactly ``T``.
4. FFT length ``4 * N`` (the frame is zero-padded at the end, as MATLAB does); **unscaled**
   magnitude ``|STFT|`` of the one-sided spectrum, as MATLAB's ``spectrogram`` returns it (no division
   by the window sum, no doubling of the one-sided bins).
5. Filterbank: triangles on a log-frequency axis (``log_triangular_filterbank``), centres
   ``500 * 2**(k/6)`` Hz, k = 0..33. The original passes ``f_max = 22627`` Hz and spaces the centres
   evenly in log between 500 and 22,627 Hz; ``500 * 2**(33/6) = 22627.4`` differs from that by less
   than 2e-5 relative, far below an FFT bin.
6. ``X = max(20 log10(filterbank @ |STFT|), floor_db)`` with ``floor_db = -70`` dB; a filter output
   of exactly 0 (silence) maps to ``floor_db`` (no ``log(0)`` warning).

Output: (F, T) float32, F = 34 bands. Computation is vectorised: one strided view of all frames, one
real FFT over all of them, one matrix product with the filterbank; float64 inside.
"""

from __future__ import annotations

import decimal
import functools

import numpy as np
import scipy.fft

from strf_runner.data.schema import hop_samples
from strf_runner.errors import ConfigError, DatasetError, ShapeError

__all__ = ["band_centres", "hamming", "log_triangular_filterbank", "native_cochleagram"]


def band_centres(n_bands: int = 34, f_lo: float = 500.0, bands_per_octave: int = 6) -> np.ndarray:
    """Centre frequencies in Hz, (n_bands,) float64: ``f_lo * 2**(k / bands_per_octave)``, k = 0..n_bands-1.

    The defaults give the native 34 bands, 500 to 22,627 Hz at 1/6-octave spacing. Computed in
    40-digit decimal arithmetic and rounded once to float64, so the values are the correctly rounded
    ones on every machine (numpy's float64 power may differ in the last bit between versions and CPUs,
    and these frequencies are stored in dataset files).
    """
    if n_bands < 1 or f_lo <= 0 or bands_per_octave <= 0:
        raise ConfigError(
            f"band_centres: need n_bands >= 1, f_lo > 0 and bands_per_octave > 0; "
            f"got n_bands={n_bands}, f_lo={f_lo}, bands_per_octave={bands_per_octave}"
        )
    return np.array(_exact_centres(int(n_bands), float(f_lo), float(bands_per_octave)))


@functools.lru_cache(maxsize=32)
def _exact_centres(n_bands: int, f_lo: float, bands_per_octave: float) -> tuple[float, ...]:
    with decimal.localcontext(decimal.Context(prec=40)):
        lo, per = decimal.Decimal(f_lo), decimal.Decimal(bands_per_octave)
        return tuple(float(lo * decimal.Decimal(2) ** (decimal.Decimal(k) / per)) for k in range(n_bands))


def hamming(n: int) -> np.ndarray:
    """Symmetric Hamming window of length n, (n,) float64, as MATLAB's ``hamming(n)``."""
    if n == 1:
        return np.ones(1)
    k = np.arange(n)
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * k / (n - 1))


def log_triangular_filterbank(centres: np.ndarray, n_fft: int, audio_fs: float) -> np.ndarray:
    """Triangular filters on a log-frequency axis, (F, n_fft // 2 + 1) float64, one row per band.

    Band i is a triangle in log frequency with its peak at ``centres[i]`` and its feet at the
    neighbouring centres ``centres[i - 1]`` and ``centres[i + 1]``; the first and last bands get an
    extra neighbour one step of the same log ratio beyond the ends. FFT bin k sits at
    ``k * audio_fs / n_fft`` Hz (the DC bin has weight 0 in every band); the weight of bin k in band i
    is ``max(0, 1 - |log f_k - log c_i| / step)`` with the step on that side of the peak. Parts of a
    triangle beyond Nyquist are cut off. Each row is then divided by its sum, so its weights sum to 1
    over the one-sided spectrum (voicebox ``melbankm`` options ``'lusc'``).

    Guard: a band that covers no FFT bin (a very narrow band, a short FFT, or a centre far above
    Nyquist) falls back to the single FFT bin nearest its centre frequency in Hz, with weight 1, so
    every row still sums to 1 and no band is silently all-zero. At the native settings (48 kHz,
    n_fft = 1920, 25 Hz bins) every band covers at least 4 bins and the guard never applies.
    """
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ShapeError(f"log_triangular_filterbank: centres must be 1-D with >= 2 bands; got shape {c.shape}")
    if np.any(c <= 0) or np.any(np.diff(c) <= 0):
        raise ConfigError("log_triangular_filterbank: centres must be positive and strictly increasing")
    if n_fft < 2 or audio_fs <= 0:
        raise ConfigError(f"log_triangular_filterbank: need n_fft >= 2 and audio_fs > 0; got {n_fft}, {audio_fs}")
    log_c = np.log(c)
    log_edges = np.concatenate([[2 * log_c[0] - log_c[1]], log_c, [2 * log_c[-1] - log_c[-2]]])
    lower, centre, upper = log_edges[:-2, None], log_edges[1:-1, None], log_edges[2:, None]
    n_bins = n_fft // 2 + 1
    freqs = np.arange(n_bins) * (audio_fs / n_fft)
    log_f = np.full(n_bins, -np.inf)
    log_f[1:] = np.log(freqs[1:])
    rising = (log_f[None, :] - lower) / (centre - lower)
    falling = (upper - log_f[None, :]) / (upper - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    sums = weights.sum(axis=1)
    for i in np.flatnonzero(sums <= 0):
        weights[i, :] = 0.0
        weights[i, int(np.argmin(np.abs(freqs - c[i])))] = 1.0
        sums[i] = 1.0
    return weights / sums[:, None]


def native_cochleagram(
    waveform: np.ndarray,
    audio_fs: float,
    dt_ms: float = 5.0,
    n_bands: int = 34,
    f_lo: float = 500.0,
    bands_per_octave: int = 6,
    floor_db: float = -70.0,
    quantum_db: float | None = None,
) -> np.ndarray:
    """The native log-frequency cochleagram of one mono waveform, (F, T) float32, in dB.

    waveform: (T_audio,) with ``T_audio = T * hop``, ``hop = audio_fs * dt_ms / 1000`` samples.
    Frame t covers samples ``[(t + 1) * hop - 2 * hop, (t + 1) * hop)`` (zeros before the start), so
    frame t depends only on audio up to the end of time bin t. Raises DatasetError if hop is not a
    whole number or T_audio is not a positive multiple of hop, ShapeError if the waveform is not 1-D.
    See the module docstring for the full recipe.

    quantum_db: if given (> 0), the dB values are rounded to multiples of it in float64, before the
    float32 cast. The FFT, the filterbank product (BLAS) and log10 may differ in the last bits between
    machines and library versions; a grid far coarser than those errors (e.g. 2**-13 dB, exact in
    float32) makes the stored float32 values, and their bytes, the same everywhere.
    """
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ShapeError(f"native_cochleagram: waveform must be 1-D (T_audio,); got shape {x.shape}")
    hop = hop_samples(audio_fs, dt_ms, "native_cochleagram")
    n_audio = x.shape[0]
    if n_audio == 0 or n_audio % hop:
        raise DatasetError(
            f"native_cochleagram: waveform has {n_audio} samples, not a positive multiple of "
            f"hop={hop} (audio_fs={audio_fs} Hz, dt_ms={dt_ms}); T_audio must equal T * hop"
        )
    win = 2 * hop
    n_fft = 4 * win
    padded = np.concatenate([np.zeros(win - hop), x.astype(np.float64)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop]  # (T, win), a view
    spectrum = scipy.fft.rfft(frames * hamming(win), n=n_fft, axis=-1)  # (T, n_fft // 2 + 1)
    fbank = log_triangular_filterbank(band_centres(n_bands, f_lo, bands_per_octave), n_fft, audio_fs)
    bands = (np.abs(spectrum) @ fbank.T).T  # (F, T); this orientation is the faster BLAS call
    tiny = np.finfo(np.float64).tiny
    db = np.maximum(20.0 * np.log10(np.maximum(bands, tiny)), floor_db)
    if quantum_db is not None:
        if not quantum_db > 0:
            raise ConfigError(f"native_cochleagram: quantum_db must be > 0 dB; got {quantum_db}")
        db = np.rint(db / quantum_db) * quantum_db + 0.0  # + 0.0: no -0.0
    return db.astype(np.float32)
