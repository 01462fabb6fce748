"""Shared front-end pieces against plain loops: FFT filtering, pooling, PCEN, scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strf_runner.errors import ConfigError
from strf_runner.frontends import spacing
from strf_runner.frontends.ops import _fast_len, causal_avg_pool, causal_fft_conv, compress
from strf_runner.frontends.pcen import PCEN, inverse_softplus


def test_fft_conv_equals_direct_causal_convolution():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 300, dtype=torch.float64)
    h = torch.randn(3, 41, dtype=torch.float64)
    y = causal_fft_conv(x, h)
    expected = np.zeros((2, 3, 300))
    xs, hs = x.numpy()[:, 0], h.numpy()
    for b in range(2):
        for f in range(3):
            for t in range(300):
                expected[b, f, t] = sum(hs[f, k] * xs[b, t - k] for k in range(41) if t - k >= 0)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("k_len", [5, 300])
def test_causal_fir_methods_agree(k_len):
    from strf_runner.frontends.ops import causal_fir

    torch.manual_seed(k_len)
    x = torch.randn(2, 1, 1000, dtype=torch.float64)
    h = torch.randn(4, k_len, dtype=torch.float64)
    direct = causal_fir(x, h, "direct")
    torch.testing.assert_close(causal_fir(x, h, "fft"), direct, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(causal_fir(x, h, "auto"), direct, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(direct, causal_fft_conv(x, h), rtol=1e-9, atol=1e-9)
    with pytest.raises(ConfigError, match="fir"):
        causal_fir(x, h, "winograd")


def test_fast_len():
    for n in (1, 7, 999, 1998, 240_000):
        m = _fast_len(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1


def test_causal_avg_pool_frames_end_at_their_bin():
    x = torch.arange(12, dtype=torch.float64).reshape(1, 1, 12)
    y = causal_avg_pool(x, window=6, hop=3)
    # frame t averages samples (t+1)*3-6 .. (t+1)*3-1, zeros before 0
    expected = [(0 + 0 + 0 + 0 + 1 + 2) / 6, (0 + 1 + 2 + 3 + 4 + 5) / 6, sum(range(3, 9)) / 6, sum(range(6, 12)) / 6]
    np.testing.assert_allclose(y[0, 0].numpy(), expected)
    with pytest.raises(ConfigError):
        causal_avg_pool(x, window=2, hop=3)


def test_pcen_equals_the_recursion(pcen_loop):
    torch.manual_seed(1)
    pcen = PCEN(4).double()
    with torch.no_grad():
        pcen.smooth_logit.copy_(torch.tensor([-3.0, -1.0, 0.0, 2.0]))
        pcen.alpha_raw.uniform_(-1, 1)
    e = torch.rand(1, 4, 200, dtype=torch.float64) * 5
    got = pcen(e)[0].detach().numpy()
    sp = torch.nn.functional.softplus
    want = pcen_loop(
        e[0].numpy(),
        sp(pcen.alpha_raw).detach().numpy(),
        sp(pcen.delta_raw).detach().numpy(),
        sp(pcen.root_raw).detach().numpy(),
        pcen.smooth.detach().numpy(),
        pcen.eps,
    )
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_pcen_float32_long_clip_matches_float64():
    e = torch.rand(1, 34, 999, dtype=torch.float64)
    p64 = PCEN(34).double()
    p32 = PCEN(34)
    np.testing.assert_allclose(p32(e.float()).detach().numpy(), p64(e).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_pcen_initial_values_parameters_and_silence():
    pcen = PCEN(3)
    assert sum(p.numel() for p in pcen.parameters()) == 12
    sp = torch.nn.functional.softplus
    torch.testing.assert_close(sp(pcen.alpha_raw), torch.full((3,), 0.96))
    torch.testing.assert_close(pcen.smooth, torch.full((3,), 0.04))
    out = pcen(torch.zeros(2, 3, 50))
    assert torch.isfinite(out).all() and (out == 0).all()
    loud = pcen(torch.full((1, 3, 50), 1e8))
    assert torch.isfinite(loud).all()
    fixed = PCEN(3, learnable=False)
    assert not list(fixed.parameters())


def test_pcen_is_causal():
    pcen = PCEN(2)
    e = torch.rand(1, 2, 30, requires_grad=True)
    for t in range(30):
        (g,) = torch.autograd.grad(pcen(e)[..., t].sum(), e)
        assert (g[..., t + 1 :] == 0).all() and g[..., : t + 1].abs().sum() > 0


def test_inverse_softplus():
    for y in (1e-3, 0.5, 2.0, 30.0):
        assert torch.nn.functional.softplus(torch.tensor(inverse_softplus(y), dtype=torch.float64)).item() == pytest.approx(y)


def test_compressions():
    x = torch.tensor([0.0, 1e-6, 1.0, 8.0])
    torch.testing.assert_close(compress(x, "log"), torch.log(torch.tensor([1e-4, 1e-4, 1.0, 8.0])))
    torch.testing.assert_close(compress(x, "cuberoot"), torch.tensor([1e-4, 0.01, 1.0, 2.0]), rtol=1e-5, atol=1e-6)
    silent = torch.zeros(3, requires_grad=True)
    compress(silent, "cuberoot").sum().backward()
    assert torch.isfinite(silent.grad).all()
    torch.testing.assert_close(compress(x, "log1p"), torch.log1p(x))
    assert compress(x, "none") is x
    with pytest.raises(ConfigError, match="compression"):
        compress(x, "sqrt")


def test_scales_round_trip_and_known_values():
    f = np.array([60.0, 500.0, 1000.0, 22627.0])
    np.testing.assert_allclose(spacing.mel_to_hz(spacing.hz_to_mel(f)), f)
    np.testing.assert_allclose(spacing.erb_rate_to_hz(spacing.hz_to_erb_rate(f)), f)
    assert spacing.hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    assert spacing.erb_bandwidth(1000.0) == pytest.approx(24.7 * 5.37)
    c = spacing.mel_centres(34, 60.0, 22627.0)
    assert c[0] == pytest.approx(60.0) and c[-1] == pytest.approx(22627.0) and np.all(np.diff(c) > 0)
    e = spacing.erb_centres(34, 500.0, 22627.0)
    np.testing.assert_allclose(np.diff(spacing.hz_to_erb_rate(e)), np.diff(spacing.hz_to_erb_rate(e))[0])


@pytest.mark.parametrize("t_len", [1, 2, 5, 31, 100, 999])
def test_exp_smooth_equals_the_recursion(t_len):
    from strf_runner.frontends.pcen import exp_smooth

    torch.manual_seed(t_len)
    x = torch.rand(2, 3, t_len, dtype=torch.float64)
    s = torch.tensor([0.01, 0.3, 0.97], dtype=torch.float64)
    init = torch.rand(2, 3, dtype=torch.float64)
    got = exp_smooth(x, s, init)
    m = init.clone()
    for t in range(t_len):
        m = (1 - s) * m + s * x[..., t]
        torch.testing.assert_close(got[..., t], m, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("option, value", [("alpha", 0.0), ("delta", -1.0), ("root", 0.0), ("smooth", 1.0), ("eps", 0.0)])
def test_pcen_rejects_invalid_initial_values(option, value):
    with pytest.raises(ConfigError, match=f"frontend.{option}"):
        PCEN(3, **{option: value})
