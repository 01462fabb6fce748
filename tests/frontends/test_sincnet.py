"""SincNet against the closed-form band-pass, a direct convolution loop, and the contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.registry import build_frontend
from strf_runner.frontends.sincnet import SincNet

FS, HOP = 48000.0, 240


def mel_edges(n_filters, f_min, f_max):
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    return 700.0 * (10.0 ** (np.linspace(mel(f_min), mel(f_max), n_filters + 1) / 2595.0) - 1.0)


def band_pass(f1, f2, fs, k_len):
    """[sin(2 pi f2 n/fs) - sin(2 pi f1 n/fs)] / (pi n), centre 2 (f2 - f1)/fs, times Hamming."""
    n = np.arange(k_len) - (k_len - 1) // 2
    h = np.empty(k_len)
    for j, m in enumerate(n):
        if m == 0:
            h[j] = 2 * (f2 - f1) / fs
        else:
            h[j] = (np.sin(2 * np.pi * f2 * m / fs) - np.sin(2 * np.pi * f1 * m / fs)) / (np.pi * m)
    return h * np.hamming(k_len)  # numpy's Hamming is 0.54 - 0.46 cos(2 pi k / (K - 1))


def reference_kernels(edges, fs, k_len):
    return np.stack([band_pass(lo, hi, fs, k_len) for lo, hi in zip(edges[:-1], edges[1:])])


def strided_loop(x, h, hop):
    """Frame t = sum_j h[j] x[t*hop - max(0, K - hop) + j] (zeros before the clip), then log(1 + |.|)."""
    k_len = h.shape[-1]
    n_frames = len(x) // hop
    out = np.zeros((h.shape[0], n_frames))
    for t in range(n_frames):
        start = t * hop - max(0, k_len - hop)
        seg = np.array([x[i] if 0 <= i < len(x) else 0.0 for i in range(start, start + k_len)])
        out[:, t] = h @ seg
    return out


def envelope_loop(x, h, hop, window):
    """|causal correlation at stride 1| averaged over [(t+1)*hop - window, (t+1)*hop)."""
    k_len = h.shape[-1]
    xp = np.concatenate([np.zeros(k_len - 1), x])
    env = np.abs(np.stack([np.convolve(xp, hf[::-1], mode="valid") for hf in h]))  # (F, T_audio)
    envp = np.concatenate([np.zeros((h.shape[0], window - hop)), env], axis=1)
    return np.stack([envp[:, t * hop : t * hop + window].mean(1) for t in range(len(x) // hop)], axis=1)


def test_initial_kernels_equal_the_closed_form():
    edges = mel_edges(34, 300.0, 24000.0)
    sinc = SincNet(FS, HOP)
    np.testing.assert_allclose(sinc.band_edges_hz().numpy(), np.stack([edges[:-1], edges[1:]], 1), rtol=1e-6)
    ref = reference_kernels(edges, FS, 251)
    np.testing.assert_allclose(sinc.kernels().detach().numpy(), ref, rtol=0, atol=1e-6)
    lin = SincNet(16000.0, 80, n_filters=10, kernel_size=101, f_min=100.0, f_max=7000.0, init="linear")
    edges = np.linspace(100.0, 7000.0, 11)
    ref = reference_kernels(edges, 16000.0, 101)
    np.testing.assert_allclose(lin.kernels().detach().numpy(), ref, rtol=0, atol=1e-6)


def test_edge_constraints():
    """f1 = clamp(|low|, 1, fs/2 - 1), f2 = min(f1 + |band|, fs/2), whatever the raw values."""
    sinc = SincNet(FS, HOP, n_filters=4)
    with torch.no_grad():
        sinc.low_hz.copy_(torch.tensor([-500.0, 0.2, 30000.0, 1000.0]))
        sinc.band_hz.copy_(torch.tensor([-200.0, 50.0, 10.0, 1e6]))
    want = np.array([[500.0, 700.0], [1.0, 51.0], [23999.0, 24000.0], [1000.0, 24000.0]])
    np.testing.assert_allclose(sinc.band_edges_hz().numpy(), want)
    ref = np.stack([band_pass(lo, hi, FS, 251) for lo, hi in want])
    np.testing.assert_allclose(sinc.kernels().detach().numpy(), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("kernel_size", "hop"), [(251, 240), (101, 240), (65, 16)])
def test_strided_output_equals_a_direct_convolution(kernel_size, hop):
    rng = np.random.default_rng(kernel_size)
    x = rng.normal(size=9 * hop)
    sinc = SincNet(FS, hop, n_filters=12, kernel_size=kernel_size).double()
    h = sinc.kernels().detach().numpy()
    y = strided_loop(x, h, hop)
    got = sinc(torch.from_numpy(x)[None, None])[0, 0].detach().numpy()
    np.testing.assert_allclose(got, np.log1p(np.abs(y)), rtol=1e-10, atol=1e-12)
    sym = SincNet(FS, hop, n_filters=12, kernel_size=kernel_size, activation="symlog").double()
    got = sym(torch.from_numpy(x)[None, None])[0, 0].detach().numpy()
    np.testing.assert_allclose(got, np.sign(y) * np.log1p(np.abs(y)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("kernel_size", "envelope_ms"), [(753, 10.0), (33, None)])
def test_envelope_mode_equals_a_direct_computation(kernel_size, envelope_ms):
    """K = 753 (the anchor arm) runs by FFT, K = 33 by direct convolution."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=8 * HOP)
    sinc = SincNet(FS, HOP, n_filters=10, kernel_size=kernel_size, envelope=True, envelope_ms=envelope_ms)
    window = 480 if envelope_ms else HOP
    assert sinc.envelope_window == window
    want = np.log1p(envelope_loop(x, sinc.kernels().detach().double().numpy(), HOP, window))
    got = sinc(torch.from_numpy(x).float()[None, None])[0, 0].detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_initial_filters_pass_their_band_and_reject_the_rest():
    sinc = SincNet(FS, HOP)
    h = sinc.kernels().detach().double().numpy()
    n_fft = 1 << 15
    freqs = np.fft.rfftfreq(n_fft, 1 / FS)
    response = np.abs(np.fft.rfft(h, n_fft))
    edges = sinc.band_edges_hz().double().numpy()
    margin = 1.75 * FS / 251  # half the Hamming transition band (3.3 fs / K) plus a little: ~335 Hz
    checked = 0
    for (f1, f2), resp in zip(edges, response):
        inside = (freqs > f1 + margin) & (freqs < f2 - margin)
        if not inside.any():
            continue  # narrower than the window's resolution at this K: no flat pass band
        checked += 1
        outside = (freqs < f1 - margin) | (freqs > f2 + margin)
        assert np.abs(resp[inside] - 1).max() < 0.01
        assert resp[outside].max() < 0.01
    assert checked >= 10
    # a narrow low filter still peaks inside its band at about unit gain once K resolves it
    long = SincNet(FS, HOP, kernel_size=4001, n_filters=34)
    f1, f2 = long.band_edges_hz()[0].tolist()
    resp = np.abs(np.fft.rfft(long.kernels()[0].detach().double().numpy(), n_fft))
    assert resp[np.argmin(np.abs(freqs - (f1 + f2) / 2))] == pytest.approx(1.0, abs=0.02)


def test_two_f_parameters_with_gradients_and_edge_reporting():
    sinc = SincNet(FS, HOP)
    assert sum(p.numel() for p in sinc.parameters()) == 68
    assert sorted(n for n, _ in sinc.named_parameters()) == ["band_hz", "low_hz"]
    torch.manual_seed(0)
    sinc(torch.randn(2, 1, 5 * HOP)).mean().backward()
    for p in sinc.parameters():
        assert torch.isfinite(p.grad).all() and (p.grad != 0).sum() >= 33  # the top f2 sits on the Nyquist clamp
    initial = sinc.initial_band_edges_hz()
    assert initial.shape == (34, 2)
    torch.testing.assert_close(sinc.band_edges_hz(), initial)
    with torch.no_grad():
        sinc.low_hz.add_(100.0)
    assert (sinc.band_edges_hz()[:, 0] - initial[:, 0]).abs().min() > 99
    torch.testing.assert_close(sinc.initial_band_edges_hz(), initial)


def test_strict_causality_strided_exact(jacobian_causality):
    """Strided mode is a plain left-padded conv1d: the gradient after a frame's end is exactly 0."""
    torch.manual_seed(0)
    for options in ({}, {"kernel_size": 101, "activation": "symlog"}, {"envelope": True, "kernel_size": 33}):
        jacobian_causality(SincNet(FS, HOP, **options).eval(), torch.randn(1, 1, 8 * HOP), HOP, exact=True)


def test_strict_causality_envelope_fft_within_rounding(jacobian_causality):
    """Envelope mode with K > 160 filters by FFT over the whole input, so a later sample can reach an
    earlier output through float rounding alone: in float64 we require |grad after| <= 1e-6
    max|grad before| (about 1e-16 in practice) instead of exact zeros."""
    torch.manual_seed(0)
    sinc = SincNet(FS, HOP, kernel_size=753, envelope=True, envelope_ms=10.0).double().eval()
    jacobian_causality(sinc, torch.randn(1, 1, 8 * HOP, dtype=torch.float64), HOP, exact=False)


def test_shape_batch_determinism_and_registry():
    sinc = build_frontend("sincnet", audio_fs=FS, hop=HOP)
    assert isinstance(sinc, SincNet) and sinc.out_channels == 34 and sinc.view == "waveform"
    x = torch.randn(3, 1, 7 * HOP)
    out = sinc.eval()(x)
    assert out.shape == (3, 1, 34, 7)
    assert torch.equal(out, sinc(x))
    assert sinc(torch.zeros(1, 1, 239_760)).shape == (1, 1, 34, 999)
    env = SincNet(FS, HOP, envelope=True, kernel_size=753).eval()
    assert env(x).shape == (3, 1, 34, 7) and torch.equal(env(x), env(x))


def test_shape_errors():
    sinc = SincNet(FS, HOP)
    with pytest.raises(ShapeError, match="B, 1, T_audio"):
        sinc(torch.zeros(4 * HOP))
    with pytest.raises(ShapeError, match="multiple of hop"):
        sinc(torch.zeros(1, 1, 4 * HOP + 7))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"f_min": 5000.0, "f_max": 4000.0}, "f_min"),
        ({"f_min": 30000.0}, "f_min"),
        ({"kernel_size": 250}, "kernel_size"),
        ({"kernel_size": 1}, "kernel_size"),
        ({"activation": "relu"}, "activation"),
        ({"init": "log"}, "init"),
        ({"envelope": True, "envelope_ms": 1.0}, "envelope_ms"),
        ({"n_filters": 0}, "n_filters"),
    ],
)
def test_config_errors(options, key):
    with pytest.raises(ConfigError, match=key):
        SincNet(FS, HOP, **options)


@pytest.mark.parametrize("options", [{}, {"activation": "symlog"}, {"envelope": True, "kernel_size": 753}])
def test_finite_for_silence_clipping_and_loud_input(options):
    sinc = SincNet(FS, HOP, **options)
    n = 10 * HOP
    square = torch.sign(torch.sin(2 * torch.pi * 1000.0 * torch.arange(n) / FS))
    x = torch.stack([torch.zeros(n), square, 1e4 * torch.randn(n)])[:, None].requires_grad_(True)
    out = sinc(x)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in sinc.parameters())


def test_envelope_direct_filtering_is_exactly_causal_and_equals_the_fft_path(jacobian_causality):
    torch.manual_seed(0)
    x = torch.randn(1, 1, 8 * HOP, dtype=torch.float64)
    options = dict(kernel_size=753, envelope=True, envelope_ms=10.0)
    direct = SincNet(FS, HOP, fir="direct", **options).double().eval()
    jacobian_causality(direct, x, HOP, exact=True)
    fft = SincNet(FS, HOP, fir="fft", **options).double().eval()
    torch.testing.assert_close(direct(x), fft(x), rtol=1e-9, atol=1e-9)
