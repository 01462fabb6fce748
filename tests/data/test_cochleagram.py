"""The native cochleagram against independent, deliberately naive computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strf_runner.data.cochleagram import (
    band_centres,
    hamming,
    log_triangular_filterbank,
    native_cochleagram,
)
from strf_runner.errors import DatasetError, ShapeError

FS = 48000.0
HOP = 240


def _triangle_weight(f: float, lo: float, mid: float, hi: float) -> float:
    """One triangle weight, written out from the definition (log-frequency axis)."""
    if f <= 0:
        return 0.0
    lf = math.log(f)
    if math.log(lo) < lf <= math.log(mid):
        return (lf - math.log(lo)) / (math.log(mid) - math.log(lo))
    if math.log(mid) < lf < math.log(hi):
        return (math.log(hi) - lf) / (math.log(hi) - math.log(mid))
    return 0.0


def _brute_force(x: np.ndarray, fs: float, hop: int, floor_db: float = -70.0) -> np.ndarray:
    """Frame by frame with explicit loops: causal frames, MATLAB Hamming, np.fft, explicit triangles."""
    win, n_fft = 2 * hop, 8 * hop
    n = np.arange(win)
    window = 0.54 - 0.46 * np.cos(2 * np.pi * n / (win - 1))
    centres = [500.0 * 2 ** (k / 6) for k in range(34)]
    step = 2 ** (1 / 6)
    ext = [centres[0] / step] + centres + [centres[-1] * step]
    freqs = np.arange(n_fft // 2 + 1) * fs / n_fft
    fb = np.zeros((34, n_fft // 2 + 1))
    for i in range(34):
        for k, f in enumerate(freqs):
            fb[i, k] = _triangle_weight(f, ext[i], ext[i + 1], ext[i + 2])
        if fb[i].sum() == 0:  # the documented guard: nearest bin, weight 1
            fb[i, int(np.argmin(np.abs(freqs - centres[i])))] = 1.0
        fb[i] /= fb[i].sum()
    n_frames = len(x) // hop
    out = np.zeros((34, n_frames))
    for t in range(n_frames):
        end = (t + 1) * hop
        frame = np.zeros(win)
        for j in range(win):
            src = end - win + j
            if src >= 0:
                frame[j] = x[src]
        mag = np.abs(np.fft.fft(frame * window, n_fft))[: n_fft // 2 + 1]
        for i in range(34):
            v = float(fb[i] @ mag)
            out[i, t] = max(20 * math.log10(v), floor_db) if v > 0 else floor_db
    return out


def test_band_centres():
    c = band_centres()
    assert c.shape == (34,)
    assert c[0] == 500.0
    assert c[-1] == pytest.approx(22627.417, abs=1e-3)
    np.testing.assert_allclose(c[1:] / c[:-1], 2 ** (1 / 6))


def test_hamming_matches_matlab_definition():
    w = hamming(480)
    assert w[0] == pytest.approx(0.08) and w[-1] == pytest.approx(0.08)
    np.testing.assert_allclose(w, w[::-1])  # symmetric, not periodic
    assert w.max() < 1.0  # even length: no sample exactly at the peak


def test_matches_brute_force_loop():
    rng = np.random.default_rng(1)
    t_bins = 12
    x = rng.normal(scale=0.05, size=t_bins * HOP)
    x[5 * HOP : 6 * HOP] = 0.0  # a silent stretch
    x += 0.1 * np.sin(2 * np.pi * 700.0 * np.arange(x.size) / FS)
    got = native_cochleagram(x.astype(np.float32), FS)
    want = _brute_force(x.astype(np.float32).astype(np.float64), FS, HOP)
    assert got.shape == (34, t_bins) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_matches_brute_force_at_16khz():
    rng = np.random.default_rng(2)
    x = rng.normal(scale=0.1, size=6 * 80)
    got = native_cochleagram(x, 16000.0)
    want = _brute_force(x, 16000.0, 80)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("band", [0, 7, 20, 33])
def test_pure_tone_peaks_in_its_band(band):
    f = band_centres()[band]
    x = 0.1 * np.sin(2 * np.pi * f * np.arange(40 * HOP) / FS)
    x = np.concatenate([np.zeros(2 * HOP), x])  # a silent start
    coch = native_cochleagram(x, FS)
    assert np.all(coch[:, 3:].argmax(axis=0) == band)
    assert np.all(coch[:, :2] == -70.0)


def test_frame_count_and_causality():
    rng = np.random.default_rng(3)
    t_bins = 10
    x = rng.normal(size=t_bins * HOP)
    base = native_cochleagram(x, FS)
    assert base.shape == (34, t_bins)
    for t in range(t_bins):
        later = x.copy()
        later[(t + 1) * HOP :] = rng.normal(size=x.size - (t + 1) * HOP)
        if t + 1 < t_bins:
            later[(t + 1) * HOP] += 5.0  # the first sample after bin t changes for sure
        changed = native_cochleagram(later, FS)
        np.testing.assert_array_equal(changed[:, : t + 1], base[:, : t + 1])
        if t + 1 < t_bins:
            assert np.any(changed[:, t + 1] != base[:, t + 1])
        # a change inside frame t (which covers samples [(t + 1) * hop - 2 * hop, (t + 1) * hop)) shows in frame t
        for j in ((t + 1) * HOP - 1, max(0, (t + 1) * HOP - 2 * HOP) + 3):
            inside = x.copy()
            inside[j] += 1.0
            assert np.any(native_cochleagram(inside, FS)[:, t] != base[:, t])


def test_silence_is_exactly_the_floor():
    coch = native_cochleagram(np.zeros(7 * HOP, dtype=np.float32), FS)
    assert np.all(coch == -70.0)
    coch = native_cochleagram(np.zeros(7 * HOP), FS, floor_db=-50.0)
    assert np.all(coch == -50.0)


def test_filterbank_rows_sum_to_one_and_are_triangles():
    fb = log_triangular_filterbank(band_centres(), 1920, FS)
    assert fb.shape == (34, 961)
    np.testing.assert_allclose(fb.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(fb >= 0) and np.all(fb[:, 0] == 0)
    assert np.all((fb > 0).sum(axis=1) >= 4)  # every native band covers several 25 Hz bins
    freqs = np.arange(961) * 25.0
    peaks = freqs[fb.argmax(axis=1)]
    assert np.all(np.abs(np.log2(peaks / band_centres())) < 1 / 12)


def test_filterbank_guard_for_a_band_without_bins():
    centres = np.array([100.0, 101.0, 102.0, 4000.0])  # 1 Hz apart: below a 25 Hz bin spacing
    fb = log_triangular_filterbank(centres, 1920, FS)
    np.testing.assert_allclose(fb.sum(axis=1), 1.0)
    guarded = np.flatnonzero((fb > 0).sum(axis=1) == 1)
    assert guarded.size >= 1
    for i in guarded:
        assert fb[i].argmax() == round(centres[i] / 25.0)  # the bin nearest the centre, weight 1
        assert fb[i].max() == 1.0


def test_bad_lengths_raise():
    with pytest.raises(DatasetError, match="241"):
        native_cochleagram(np.zeros(241), FS)
    with pytest.raises(DatasetError, match="0 samples"):
        native_cochleagram(np.zeros(0), FS)
    with pytest.raises(DatasetError, match="whole number"):
        native_cochleagram(np.zeros(480), 44100.0, dt_ms=5.0)  # 220.5 samples per bin
    with pytest.raises(ShapeError):
        native_cochleagram(np.zeros((2, 480)), FS)
