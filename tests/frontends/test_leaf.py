"""CausalLEAF against its direct-convolution definition, the causality contract and the spec's sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F_
from hypothesis import given, settings
from hypothesis import strategies as st

from strf_runner.bench.reference import DirectLEAF
from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.leaf import CausalLEAF
from strf_runner.frontends.registry import build_frontend, frontend_class
from strf_runner.frontends.spacing import erb_bandwidth, mel_centres
from strf_runner.models.linear import LinearSTRF

FS, HOP = 48000, 240


def direct_leaf(model: CausalLEAF, x: torch.Tensor) -> torch.Tensor:
    """The definition, term by term (``DirectLEAF``: conv1d with the K-tap Gabor kernels, envelope,
    strided pooling conv1d, the model's own PCEN), sharing the model's parameters."""
    return DirectLEAF(model)(x)


def perturbed(model: CausalLEAF, seed: int = 0) -> CausalLEAF:
    """Move every parameter off its initial value, so the comparison is not at a special point."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype) * p.abs().clamp(min=0.1))
    return model


def relerr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the reference's largest magnitude, floored at 1e-9: a gradient
    that is zero in exact arithmetic (PCEN's smoother on a one-frame clip; the centre on a one-sample
    clip, where |kernel tap| does not depend on it) comes out as float64 rounding, 1e-18 to 1e-14."""
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-9)).item()


def test_sizes_and_initial_values_follow_the_spec():
    m = CausalLEAF(FS, HOP)
    assert (m.kernel_size, m.pool_size, m.hop, m.out_channels) == (721, 960, 240, 34)
    assert sum(p.numel() for p in m.parameters()) == 238
    readout = LinearSTRF(n_bands=34, n_neurons=119)
    assert sum(p.numel() for p in readout.parameters()) == 36_771
    total = sum(p.numel() for p in [*m.parameters(), *readout.parameters()] if p.requires_grad)
    assert total == 37_009
    fc = mel_centres(34, 60.0, 22627.0)
    np.testing.assert_allclose(m.centre.detach().numpy(), 2 * np.pi * fc / FS, rtol=1e-6)
    # 60 Hz is 0.00785 rad/sample, under the forward's 0.01 floor: it acts at 76.4 Hz
    want_hz = np.maximum(fc, 0.01 * FS / (2 * np.pi))
    np.testing.assert_allclose(m.centres_hz().numpy(), want_hz, rtol=1e-5)
    np.testing.assert_allclose(m.initial_centres_hz().numpy(), m.centres_hz().numpy())
    sigma = m.gabor_widths().detach().numpy()
    assert sigma[0] == pytest.approx(245, abs=1) and sigma[-1] == pytest.approx(3.1, abs=0.05)
    np.testing.assert_allclose(m.bandwidths_hz().numpy(), erb_bandwidth(fc), rtol=1e-4)
    torch.testing.assert_close(m.pool_widths().detach(), torch.full((34,), 240.0))
    sp = F_.softplus
    torch.testing.assert_close(sp(m.pcen.alpha_raw), torch.full((34,), 0.96))
    torch.testing.assert_close(sp(m.pcen.delta_raw), torch.full((34,), 2.0))
    torch.testing.assert_close(sp(m.pcen.root_raw), torch.full((34,), 0.5))
    torch.testing.assert_close(m.pcen.smooth.detach(), torch.full((34,), 0.04))


def test_f_max_is_capped_at_nyquist_and_options_are_checked():
    m = CausalLEAF(16000, 80)
    assert m.f_max == 8000.0 and m.centres_hz()[-1].item() == pytest.approx(8000.0, rel=1e-5)
    assert (m.kernel_size, m.pool_size) == (241, 320)  # 240 forced odd; 4 hops
    assert CausalLEAF(8000, 160).kernel_size == 161  # max(hop, 120) = 160, forced odd
    bad_options = [{"n_filters": 0}, {"f_min": 0.0}, {"f_min": 30000.0}, {"gabor_ms": 0.0}, {"pool_ms": -1}, {"eps": 0.0}]
    for bad in bad_options:
        with pytest.raises(ConfigError, match="frontend\\."):
            CausalLEAF(FS, HOP, **bad)
    with pytest.raises(ConfigError):
        CausalLEAF(FS, 0)


def test_kernels_and_pooling_taps_match_the_formulas():
    m = perturbed(CausalLEAF(FS, HOP).double())
    n = np.arange(721) - 360.0
    w = np.clip(m.centre.detach().numpy(), 0.01, np.pi)[:, None]
    sigma = np.maximum(np.log1p(np.exp(m.gabor_width_raw.detach().numpy())), 1.0)[:, None]
    g = np.exp(-0.5 * (n / sigma) ** 2)
    g /= g.sum(-1, keepdims=True)
    ir = m.impulse_responses()
    assert ir.shape == (34, 721) and ir.is_complex()
    np.testing.assert_allclose(ir.real.numpy(), np.cos(w * n) * g, atol=1e-12)
    np.testing.assert_allclose(ir.imag.numpy(), np.sin(w * n) * g, atol=1e-12)
    np.testing.assert_allclose(ir.abs().sum(-1).numpy(), 1.0)  # unit-DC-gain Gaussian
    taps = m.pooling_weights().detach()
    assert taps.shape == (34, 960)
    np.testing.assert_allclose(taps.sum(-1).numpy(), 1.0)
    assert (taps.argmax(-1) == 959).all()  # the newest sample weighs most
    sp = np.maximum(np.log1p(np.exp(m.pool_width_raw.detach().numpy())), 0.5)[:, None]
    d = np.arange(959, -1, -1.0)
    want = np.exp(-0.5 * (d / sp) ** 2)
    np.testing.assert_allclose(taps.numpy(), want / want.sum(-1, keepdims=True), rtol=1e-12)


def compare_with_direct(model: CausalLEAF, n_frames: int, batch: int = 2, seed: int = 0) -> None:
    """Output and gradients (centre, Gabor width, pooling width, PCEN, input) equal to the direct
    convolution in float64, to 1e-4 relative (in practice ~1e-14)."""
    model = perturbed(model.double(), seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, n_frames * model.hop, generator=g, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(batch, 1, model.out_channels, n_frames, generator=g, dtype=torch.float64)
    params = [p for p in model.parameters()] + [x]
    fast = model(x)
    slow = direct_leaf(model, x)
    assert fast.shape == (batch, 1, model.out_channels, n_frames)
    assert relerr(fast, slow) <= 1e-4
    g_fast = torch.autograd.grad((fast * probe).sum(), params)
    g_slow = torch.autograd.grad((slow * probe).sum(), params)
    for a, b in zip(g_fast, g_slow):
        assert relerr(a, b) <= 1e-4


def test_equals_direct_convolution_at_48k():
    compare_with_direct(CausalLEAF(FS, HOP), n_frames=12)


def test_kernel_gradient_blocks_cover_the_whole_clip():
    """The kernel gradient's long-block correlation at NS1's geometry spans 14 frames a block:
    31 frames make two full blocks and a partial one, for each of two clips in the batch."""
    model = CausalLEAF(FS, HOP)
    assert model.correlation_geometry == (4096, 14 * HOP)
    compare_with_direct(model, n_frames=31, batch=2, seed=4)


@settings(max_examples=25, deadline=None)
@given(
    hop=st.integers(1, 40),
    gabor_ms=st.floats(0.2, 12.0),
    pool_ms=st.floats(0.1, 8.0),
    n_frames=st.integers(1, 9),
    n_filters=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_equals_direct_convolution_for_any_geometry(hop, gabor_ms, pool_ms, n_frames, n_filters, seed):
    """Kernels shorter or longer than a hop, pooling windows that are not whole hops, one frame."""
    model = CausalLEAF(8000, hop, n_filters=n_filters, f_min=100.0, gabor_ms=gabor_ms, pool_ms=pool_ms)
    compare_with_direct(model, n_frames=n_frames, batch=1 + seed % 2, seed=seed)


def compare_training_path_with_direct(model: CausalLEAF, n_frames: int, batch: int, seed: int) -> None:
    """Training mode on data that needs no gradient takes the long-block path: output and parameter
    gradients equal to the direct convolution to 1e-4 relative (in float64, in practice ~1e-14)."""
    model = perturbed(model.double(), seed).train()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, n_frames * model.hop, generator=g, dtype=torch.float64)
    probe = torch.randn(batch, 1, model.out_channels, n_frames, generator=g, dtype=torch.float64)
    params = list(model.parameters())
    fast = model(x)
    slow = direct_leaf(model, x)
    assert relerr(fast, slow) <= 1e-4
    for a, b in zip(torch.autograd.grad((fast * probe).sum(), params), torch.autograd.grad((slow * probe).sum(), params)):
        assert relerr(a, b) <= 1e-4


def test_training_mode_uses_long_blocks_and_equals_the_definition(monkeypatch):
    from strf_runner.frontends import leaf as leaf_module

    calls = []
    original = leaf_module._LongBlockGaborEnvelopePool.apply
    monkeypatch.setattr(leaf_module._LongBlockGaborEnvelopePool, "apply", lambda *a: calls.append(1) or original(*a))
    compare_training_path_with_direct(CausalLEAF(FS, HOP), n_frames=31, batch=2, seed=5)  # 3 blocks, the last partial
    assert calls, "training mode did not take the long-block path"
    calls.clear()
    model = CausalLEAF(FS, HOP).eval()
    model(torch.randn(1, 1, 4 * HOP))
    model.train()
    model(torch.randn(1, 1, 4 * HOP, requires_grad=True))  # an input gradient wanted: the exact path
    assert not calls


@settings(max_examples=15, deadline=None)
@given(hop=st.integers(1, 40), gabor_ms=st.floats(0.2, 12.0), pool_ms=st.floats(0.1, 8.0),
       n_frames=st.integers(1, 40), seed=st.integers(0, 1000))
def test_training_path_equals_the_definition_for_any_geometry(hop, gabor_ms, pool_ms, n_frames, seed):
    model = CausalLEAF(8000, hop, n_filters=3, f_min=100.0, gabor_ms=gabor_ms, pool_ms=pool_ms)
    compare_training_path_with_direct(model, n_frames=n_frames, batch=1 + seed % 2, seed=seed)


def test_training_and_eval_paths_agree_in_float32():
    torch.manual_seed(6)
    model = perturbed(CausalLEAF(FS, HOP))
    x = 0.1 * torch.randn(1, 1, 40 * HOP)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
    assert relerr(train_out, eval_out) <= 1e-5


def test_block_filtering_gives_eval_mode_the_long_blocks_only_inside_it(monkeypatch):
    """The fitter's validation pass runs inside ``block_filtering``: eval mode, long blocks, the exact
    path's numbers to float rounding; outside it eval mode is frame-exact again."""
    from strf_runner.frontends import leaf as leaf_module
    from strf_runner.frontends.base import block_filtering
    from strf_runner.models.encoding import EncodingModel

    calls = []
    original = leaf_module._LongBlockGaborEnvelopePool.apply
    monkeypatch.setattr(leaf_module._LongBlockGaborEnvelopePool, "apply", lambda *a: calls.append(1) or original(*a))
    torch.manual_seed(7)
    model = EncodingModel(perturbed(CausalLEAF(FS, HOP)), LinearSTRF(34, 3)).eval()
    x = 0.1 * torch.randn(1, 1, 40 * HOP)
    with torch.no_grad():
        exact = model.frontend(x)
        with block_filtering(model):
            blocks = model.frontend(x)
            assert calls and not model.frontend.training
        calls.clear()
        again = model.frontend(x)
    assert not calls and torch.equal(again, exact)
    assert relerr(blocks, exact) <= 1e-5
    with block_filtering(model):
        model.frontend(x.clone().requires_grad_())  # an input gradient wanted: still the exact path
    assert not calls


def test_float32_long_signal_matches_float64():
    torch.manual_seed(3)
    m64 = perturbed(CausalLEAF(FS, HOP).double())
    m32 = CausalLEAF(FS, HOP)
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    x = 0.1 * torch.randn(1, 1, 200 * HOP, dtype=torch.float64)
    assert relerr(m32(x.float()).double(), m64(x)) <= 1e-4


def jacobian_rows(model, x):
    """Input gradient of every output frame's channel sum."""
    x = x.clone().requires_grad_(True)
    y = model(x)
    return [torch.autograd.grad(y[..., t].sum(), x, retain_graph=True)[0][0, 0] for t in range(y.shape[-1])]


@pytest.mark.parametrize("fs, hop", [(FS, HOP), (16000, 80)])
def test_causal_jacobian_exact_zeros(fs, hop):
    """Frame t's input gradient is exactly zero from sample (t+1)*hop on. No tolerance: the FFT
    blocks are the frames themselves (a transform covers a frame and the one before it), so no
    later sample ever enters a transform that frame t uses."""
    torch.manual_seed(0)
    model = perturbed(CausalLEAF(fs, hop)).eval()
    x = 0.1 * torch.randn(1, 1, 8 * hop)
    for t, g in enumerate(jacobian_rows(model, x)):
        assert (g[(t + 1) * hop :] == 0).all(), f"frame {t} depends on later samples"
        assert g[: (t + 1) * hop].abs().sum() > 0


def test_forward_is_bitwise_causal():
    """Changing later samples leaves every earlier frame bit-for-bit unchanged."""
    torch.manual_seed(1)
    model = CausalLEAF(FS, HOP).eval()
    x = 0.1 * torch.randn(2, 1, 10 * HOP)
    with torch.no_grad():
        y = model(x)
        for t in (0, 3, 8):
            x2 = x.clone()
            x2[..., (t + 1) * HOP :] = torch.randn_like(x2[..., (t + 1) * HOP :])
            y2 = model(x2)
            assert torch.equal(y[..., : t + 1], y2[..., : t + 1])
            assert not torch.equal(y[..., t + 1 :], y2[..., t + 1 :])


def test_shape_determinism_and_errors():
    model = build_frontend("leaf", audio_fs=FS, hop=HOP).eval()
    assert frontend_class("leaf") is CausalLEAF and model.view == "waveform"
    x = torch.randn(3, 1, 5 * HOP)
    y = model(x)
    assert y.shape == (3, 1, 34, 5)
    assert torch.equal(y, model(x))
    # batch items are independent
    torch.testing.assert_close(model(x[1:2]), y[1:2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match="rank|expects"):
        model(torch.randn(5 * HOP))
    with pytest.raises(ShapeError):
        model(torch.randn(1, 2, 5 * HOP))
    with pytest.raises(ShapeError, match="multiple of hop"):
        model(torch.randn(1, 1, 5 * HOP + 7))
    assert model(torch.zeros(2, 1, 0)).shape == (2, 1, 34, 0)


@pytest.mark.parametrize(
    "name, make",
    [
        ("silence", lambda t: torch.zeros(1, 1, t)),
        ("square wave", lambda t: torch.sign(torch.sin(2 * math.pi * 440 * torch.arange(t) / FS)).view(1, 1, t)),
        ("loud noise", lambda t: 1e4 * torch.randn(1, 1, t)),
    ],
)
def test_extreme_inputs_stay_finite(name, make):
    model = CausalLEAF(FS, HOP)
    x = make(40 * HOP)
    y = model(x)
    assert torch.isfinite(y).all(), name
    (y * torch.randn_like(y)).sum().backward()
    for p in model.parameters():
        assert torch.isfinite(p.grad).all(), name


def test_parameters_stay_valid_after_large_steps():
    torch.manual_seed(2)
    model = CausalLEAF(FS, HOP)
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    x = 0.1 * torch.randn(1, 1, 20 * HOP)
    target = torch.randn(1, 1, 34, 20)
    for _ in range(5):
        opt.zero_grad()
        y = model(x)
        assert torch.isfinite(y).all()
        ((y - target) ** 2).mean().backward()
        opt.step()
    hz = model.centres_hz()
    assert (hz > 0).all() and (hz <= FS / 2 + 1e-3).all()
    assert (model.gabor_widths() >= 1.0).all() and (model.pool_widths() >= 0.5).all()
    assert (model.bandwidths_hz() > 0).all()
    assert torch.isfinite(model(x)).all()


def test_freezing_switches():
    assert sum(p.numel() for p in CausalLEAF(FS, HOP, learn_filters=False).parameters()) == 170
    assert sum(p.numel() for p in CausalLEAF(FS, HOP, learn_pooling=False).parameters()) == 204
    assert sum(p.numel() for p in CausalLEAF(FS, HOP, learn_pcen=False).parameters()) == 102
    frozen = CausalLEAF(FS, HOP, learn_filters=False, learn_pooling=False, learn_pcen=False)
    assert not list(frozen.parameters())
    x = torch.randn(1, 1, 4 * HOP)
    torch.testing.assert_close(frozen(x), CausalLEAF(FS, HOP)(x))
    # a frozen model still gives input gradients (waveform gradient maps)
    x.requires_grad_(True)
    frozen(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_state_dict_round_trip():
    a = perturbed(CausalLEAF(FS, HOP))
    b = CausalLEAF(FS, HOP)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 1, 6 * HOP)
    assert torch.equal(a(x), b(x))
    torch.testing.assert_close(b.initial_centres_hz(), CausalLEAF(FS, HOP).initial_centres_hz())
