"""The causal mel spectrogram against a plain per-frame numpy loop, plus the front-end contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.mel import MelSpectrogram
from strf_runner.frontends.registry import build_frontend

FS, HOP = 48000.0, 240


def htk_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def htk_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def reference_mel(x, fs, hop, n_filters=34, f_min=500.0, f_max=22627.0, window_ms=10.0):
    """Mel magnitudes (F, T) by a loop over frames: frame t is the n_fft samples ending at (t+1)*hop - 1."""
    n_fft = int(round(fs * window_ms / 1000))
    f_max = min(f_max, fs / 2)
    hann = np.array([0.5 - 0.5 * np.cos(2 * np.pi * n / (n_fft - 1)) for n in range(n_fft)])
    points = htk_hz(np.linspace(htk_mel(f_min), htk_mel(f_max), n_filters + 2))
    weights = np.zeros((n_filters, n_fft // 2 + 1))
    for i in range(n_filters):
        lo, mid, hi = points[i], points[i + 1], points[i + 2]
        for k in range(n_fft // 2 + 1):
            f = k * fs / n_fft
            if lo < f <= mid:
                weights[i, k] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                weights[i, k] = (hi - f) / (hi - mid)
    n_frames = len(x) // hop
    out = np.zeros((n_filters, n_frames))
    for t in range(n_frames):
        end = (t + 1) * hop
        frame = np.array([x[j] if j >= 0 else 0.0 for j in range(end - n_fft, end)])
        out[:, t] = weights @ np.abs(np.fft.rfft(frame * hann))
    return out


def test_matches_a_per_frame_numpy_loop_float64():
    """In float64 (the window and filter weights are stored in float32, hence rtol 1e-6)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=12 * HOP)
    mel = MelSpectrogram(FS, HOP, compression="none").double()
    got = mel(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, reference_mel(x, FS, HOP), rtol=1e-6, atol=1e-9)


def test_log_output_float32_matches_reference_to_1e_4():
    rng = np.random.default_rng(1)
    x = rng.normal(size=12 * HOP) * 0.1
    ref = reference_mel(x, FS, HOP)
    mel = MelSpectrogram(FS, HOP, compression="none")
    got = mel(torch.from_numpy(x).float()[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.max())
    log = MelSpectrogram(FS, HOP)(torch.from_numpy(x).float()[None, None])[0, 0].numpy()
    np.testing.assert_allclose(log, np.log(np.maximum(ref, 1e-4)), atol=1e-4)


@pytest.mark.parametrize(
    ("fs", "hop", "n_filters", "f_min", "f_max", "window_ms"),
    [(16000.0, 80, 20, 100.0, 22627.0, 25.0), (48000.0, 240, 8, 300.0, 8000.0, 2.0)],
)
def test_other_rates_and_windows_shorter_than_hop(fs, hop, n_filters, f_min, f_max, window_ms):
    rng = np.random.default_rng(2)
    x = rng.normal(size=7 * hop)
    options = {"n_filters": n_filters, "f_min": f_min, "f_max": f_max, "window_ms": window_ms}
    mel = MelSpectrogram(fs, hop, compression="none", **options)
    got = mel.double()(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, reference_mel(x, fs, hop, n_filters, f_min, f_max, window_ms), rtol=1e-6, atol=1e-9)


def test_999_frames_for_a_stimulus_and_batch_shape():
    assert MelSpectrogram(FS, HOP)(torch.zeros(1, 1, 239_760)).shape == (1, 1, 34, 999)
    assert MelSpectrogram(FS, HOP, n_filters=20)(torch.randn(3, 1, 5 * HOP)).shape == (3, 1, 20, 5)


def test_pure_tone_at_a_filter_centre_peaks_in_that_channel():
    mel = MelSpectrogram(FS, HOP)
    centres = htk_hz(np.linspace(htk_mel(500.0), htk_mel(22627.0), 36))[1:-1]
    np.testing.assert_allclose(mel.centres_hz(), centres)
    t = np.arange(40 * HOP) / FS
    tones = torch.tensor(np.stack([0.5 * np.sin(2 * np.pi * fc * t) for fc in centres]), dtype=torch.float32)
    out = mel(tones[:, None])[:, 0, :, 2:].mean(-1)  # (tone, channel), skip the onset frames
    assert out.argmax(dim=1).tolist() == list(range(34))


@pytest.mark.parametrize("options", [{}, {"compression": "pcen", "learnable_gain": True}, {"compression": "cuberoot"}])
def test_strict_causality_exact_zeros(options, jacobian_causality):
    """Framing + per-frame rfft: no sample after a frame's end enters it, so the gradient is exactly 0."""
    torch.manual_seed(0)
    mel = MelSpectrogram(FS, HOP, **options).eval()
    jacobian_causality(mel, torch.randn(1, 1, 8 * HOP), HOP, exact=True)


def test_deterministic_in_eval_mode():
    mel = MelSpectrogram(FS, HOP, compression="pcen").eval()
    x = torch.randn(2, 1, 6 * HOP)
    assert torch.equal(mel(x), mel(x))


def test_shape_errors():
    mel = MelSpectrogram(FS, HOP)
    with pytest.raises(ShapeError, match="B, 1, T_audio"):
        mel(torch.zeros(1, 4 * HOP))
    with pytest.raises(ShapeError, match="multiple of hop"):
        mel(torch.zeros(1, 1, 4 * HOP + 1))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"f_min": 5000.0, "f_max": 4000.0}, "f_min"),
        ({"f_min": 30000.0}, "f_min"),  # above the Nyquist cap on f_max
        ({"compression": "sqrt"}, "compression"),
        ({"window_ms": 0.01}, "window_ms"),
        ({"n_filters": 0}, "n_filters"),
        ({"n_filters": 200}, "n_filters"),  # filters narrower than an FFT bin
        ({"floor": 0.0}, "floor"),
    ],
)
def test_config_errors(options, key):
    with pytest.raises(ConfigError, match=key):
        MelSpectrogram(FS, HOP, **options)


@pytest.mark.parametrize("compression", ["log", "cuberoot", "log1p", "none", "pcen"])
def test_finite_for_silence_clipping_and_loud_input(compression):
    mel = MelSpectrogram(FS, HOP, compression=compression, learnable_gain=True)
    n = 10 * HOP
    square = torch.sign(torch.sin(2 * torch.pi * 1000.0 * torch.arange(n) / FS))
    x = torch.stack([torch.zeros(n), square, 1e4 * torch.randn(n)])[:, None].requires_grad_(True)
    out = mel(x)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mel.parameters())


def test_parameter_counts_and_gain():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(MelSpectrogram(FS, HOP)) == 0
    assert count(MelSpectrogram(FS, HOP, learnable_gain=True)) == 34
    assert count(MelSpectrogram(FS, HOP, compression="pcen")) == 4 * 34
    assert count(MelSpectrogram(FS, HOP, compression="pcen", learnable_gain=True)) == 5 * 34
    # the gain is exp(log_gain) per channel, applied before compression
    mel = MelSpectrogram(FS, HOP, learnable_gain=True, compression="none")
    x = torch.randn(1, 1, 4 * HOP)
    plain = mel(x)
    with torch.no_grad():
        mel.log_gain.copy_(torch.linspace(-1, 1, 34))
    torch.testing.assert_close(mel(x), plain * torch.linspace(-1, 1, 34).exp()[:, None])


def test_registered_as_mel():
    mel = build_frontend("mel", audio_fs=FS, hop=HOP)
    assert isinstance(mel, MelSpectrogram) and mel.out_channels == 34 and mel.view == "waveform"
    assert mel.n_fft == 480
    # f_max is capped at Nyquist
    assert MelSpectrogram(16000.0, 80).f_max == 8000.0
