"""The FIR gammatone front-end against the formula, a direct convolution and the contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F_

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.gammatone import Gammatone
from strf_runner.frontends.registry import build_frontend

FS, HOP = 48000.0, 240


def erb_rate(f):
    return 21.4 * np.log10(0.00437 * np.asarray(f, dtype=np.float64) + 1.0)


def erb_rate_inverse(e):
    return (10.0 ** (np.asarray(e, dtype=np.float64) / 21.4) - 1.0) / 0.00437


def reference_kernels(fs, n_filters=34, f_min=500.0, f_max=22627.0, ms=20.0, order=4):
    """Peak-normalised gammatone taps (F, K) and centres (F,), straight from the formula."""
    fc = erb_rate_inverse(np.linspace(erb_rate(f_min), erb_rate(f_max), n_filters))
    k_len = int(round(fs * ms / 1000))
    t = np.arange(k_len) / fs
    out = np.zeros((n_filters, k_len))
    for i, f in enumerate(fc):
        b = 1.019 * 24.7 * (0.00437 * f + 1.0)
        g = t ** (order - 1) * np.exp(-2 * np.pi * b * t) * np.cos(2 * np.pi * f * t)
        out[i] = g / np.abs(np.fft.rfft(g, max(4096, k_len))).max()
    return out, fc


def direct_forward(x, kernels, hop, pool, rectify="half", compression="log"):
    """Direct causal convolution (conv1d on the flipped taps), rectify, causal mean pool, compress."""
    k_len = kernels.shape[-1]
    y = F_.conv1d(F_.pad(x, (k_len - 1, 0)), kernels.flip(-1)[:, None])
    y = y.clamp(min=0) if rectify == "half" else y.abs()
    pooled = F_.avg_pool1d(F_.pad(y, (pool - hop, 0)), pool, stride=hop)
    return torch.log(pooled.clamp(min=1e-4)) if compression == "log" else pooled


def test_kernels_and_centres_equal_the_formula():
    ref, fc = reference_kernels(FS)
    gt = Gammatone(FS, HOP)
    assert gt.kernels().shape == (34, 960)
    np.testing.assert_allclose(gt.centres_hz().numpy(), fc, rtol=1e-6)
    np.testing.assert_allclose(gt.kernels().numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    # learnable centres start from the same kernels
    learn = Gammatone(FS, HOP, learn_centres=True)
    np.testing.assert_allclose(learn.centres_hz().numpy(), fc, rtol=1e-5)
    np.testing.assert_allclose(learn.kernels().detach().numpy(), ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_other_order_length_and_rate():
    ref, _ = reference_kernels(16000.0, n_filters=12, f_min=100.0, f_max=6000.0, ms=30.0, order=3)
    gt = Gammatone(16000.0, 80, n_filters=12, f_min=100.0, f_max=6000.0, kernel_ms=30.0, order=3)
    np.testing.assert_allclose(gt.kernels().numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_top_centre_is_capped_below_nyquist():
    assert Gammatone(FS, HOP).f_max == 22627.0  # no effect at 48 kHz
    gt = Gammatone(16000.0, 80)
    top = gt.f_max
    assert top < 8000.0
    assert top + 24.7 * (0.00437 * top + 1) / 2 == pytest.approx(8000.0)


@pytest.mark.parametrize("rectify", ["half", "full"])
def test_fft_path_equals_direct_convolution(rectify):
    torch.manual_seed(0)
    x = torch.randn(2, 1, 20 * HOP)
    gt = Gammatone(FS, HOP, rectify=rectify, compression="none")
    want = direct_forward(x.double(), gt.kernels().double(), HOP, 2 * HOP, rectify, "none")
    torch.testing.assert_close(gt(x)[:, 0].double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    log = Gammatone(FS, HOP, rectify=rectify)(x)[:, 0].double()
    want = direct_forward(x.double(), gt.kernels().double(), HOP, 2 * HOP, rectify)
    torch.testing.assert_close(log, want, rtol=1e-4, atol=1e-4)


def test_pool_window_option():
    torch.manual_seed(1)
    x = torch.randn(1, 1, 10 * HOP)
    gt = Gammatone(FS, HOP, pool_ms=15.0, compression="none")
    assert gt.pool == 720
    want = direct_forward(x.double(), gt.kernels().double(), HOP, 720, "half", "none")
    torch.testing.assert_close(gt(x)[:, 0].double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_tone_at_a_centre_peaks_in_its_channel():
    gt = Gammatone(FS, HOP)
    t = np.arange(30 * HOP) / FS
    tones = np.stack([0.1 * np.sin(2 * np.pi * f * t) for f in gt.centres_hz().numpy()])
    tones = torch.tensor(tones, dtype=torch.float32)
    out = gt(tones[:, None])[:, 0, :, 10:].mean(-1)
    assert out.argmax(dim=1).tolist() == list(range(34))


@pytest.mark.parametrize("options", [{}, {"learn_centres": True, "rectify": "full", "compression": "cuberoot"}])
def test_strict_causality_within_fft_rounding(options, jacobian_causality):
    """The filtering is an FFT over the whole input, so in floating point a later sample can reach an
    earlier output through rounding alone: in float64 we require |grad after| <= 1e-6 max|grad before|
    (it is about 1e-16 in practice) instead of exact zeros."""
    torch.manual_seed(0)
    gt = Gammatone(FS, HOP, **options).double().eval()
    jacobian_causality(gt, torch.randn(1, 1, 8 * HOP, dtype=torch.float64), HOP, exact=False)


def test_learnable_centres_get_gradients_and_stay_in_range():
    torch.manual_seed(2)
    gt = Gammatone(FS, HOP, learn_centres=True)
    assert [n for n, _ in gt.named_parameters()] == ["centre_logit"]
    x = torch.randn(2, 1, 6 * HOP)
    gt(x).mean().backward()
    grad = gt.centre_logit.grad
    assert torch.isfinite(grad).all() and (grad != 0).sum() > 30
    # push every centre hard towards either end: they stay strictly inside (0, Nyquist)
    opt = torch.optim.SGD(gt.parameters(), lr=1e4)
    for sign in (1.0, -1.0):
        for _ in range(3):
            opt.zero_grad()
            (sign * gt.centre_logit).sum().backward()
            opt.step()
        fc = gt.centres_hz()
        assert (fc > 0).all() and (fc < FS / 2).all()
        assert torch.isfinite(gt(x)).all()
    with torch.no_grad():
        gt.centre_logit.fill_(1e4)
    assert (gt.centres_hz() < FS / 2).all()


def test_centre_gradient_matches_finite_differences():
    gt = Gammatone(8000.0, 40, n_filters=3, f_min=300.0, f_max=3000.0, kernel_ms=10.0, learn_centres=True).double()
    x = torch.randn(1, 1, 6 * 40, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def loss(logit):
        with torch.no_grad():
            gt.centre_logit.copy_(logit)
        return gt(x).sum()

    logit0 = gt.centre_logit.detach().clone()
    gt.zero_grad()
    loss(logit0).backward()
    grad = gt.centre_logit.grad.clone()
    eps = 1e-6
    for i in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[i] = eps
        with torch.no_grad():
            fd = (loss(logit0 + step) - loss(logit0 - step)) / (2 * eps)
        assert grad[i].item() == pytest.approx(fd.item(), rel=1e-4, abs=1e-8)


def test_shape_batch_determinism_and_registry():
    gt = build_frontend("gammatone", audio_fs=FS, hop=HOP)
    assert isinstance(gt, Gammatone) and gt.out_channels == 34 and gt.view == "waveform"
    x = torch.randn(3, 1, 7 * HOP)
    out = gt.eval()(x)
    assert out.shape == (3, 1, 34, 7)
    assert torch.equal(out, gt(x))
    assert gt(torch.zeros(1, 1, 239_760)).shape == (1, 1, 34, 999)


def test_shape_errors():
    gt = Gammatone(FS, HOP)
    with pytest.raises(ShapeError, match="B, 1, T_audio"):
        gt(torch.zeros(1, 2, 4 * HOP))
    with pytest.raises(ShapeError, match="multiple of hop"):
        gt(torch.zeros(1, 1, 4 * HOP - 3))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"f_min": 5000.0, "f_max": 4000.0}, "f_min"),
        ({"f_min": 0.0}, "f_min"),
        ({"rectify": "square"}, "rectify"),
        ({"compression": "pcen"}, "compression"),
        ({"pool_ms": 1.0}, "pool_ms"),
        ({"kernel_ms": 0.0}, "kernel_ms"),
        ({"order": 0}, "order"),
        ({"n_filters": 0}, "n_filters"),
    ],
)
def test_config_errors(options, key):
    with pytest.raises(ConfigError, match=key):
        Gammatone(FS, HOP, **options)


@pytest.mark.parametrize("compression", ["log", "cuberoot", "log1p", "none"])
def test_finite_for_silence_clipping_and_loud_input(compression):
    gt = Gammatone(FS, HOP, compression=compression, learn_centres=True)
    n = 10 * HOP
    square = torch.sign(torch.sin(2 * torch.pi * 1000.0 * torch.arange(n) / FS))
    x = torch.stack([torch.zeros(n), square, 1e4 * torch.randn(n)])[:, None].requires_grad_(True)
    out = gt(x)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(gt.centre_logit.grad).all()


def test_parameter_counts():
    assert sum(p.numel() for p in Gammatone(FS, HOP).parameters()) == 0
    assert sum(p.numel() for p in Gammatone(FS, HOP, learn_centres=True).parameters()) == 34


def test_direct_filtering_is_exactly_causal_and_equals_the_fft_path(jacobian_causality):
    torch.manual_seed(0)
    x = torch.randn(1, 1, 8 * HOP, dtype=torch.float64)
    direct = Gammatone(FS, HOP, fir="direct").double().eval()
    jacobian_causality(direct, x, HOP, exact=True)
    fft = Gammatone(FS, HOP, fir="fft").double().eval()
    torch.testing.assert_close(direct(x), fft(x), rtol=1e-9, atol=1e-9)
