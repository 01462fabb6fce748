"""native_pcen: dB -> linear magnitude -> the shared learnable PCEN, exactly causal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.native_pcen import NativePCEN
from strf_runner.frontends.registry import build_frontend, frontend_class


def test_registry_view_and_parameter_count():
    model = build_frontend("native_pcen", n_bands=34)
    assert frontend_class("native_pcen") is NativePCEN and model.view == "spectrogram"
    assert model.out_channels == 34
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 136
    assert not list(NativePCEN(34, learnable=False).parameters())


def test_equals_hand_computation(pcen_loop):
    torch.manual_seed(0)
    model = NativePCEN(5).double()
    with torch.no_grad():  # distinct per-band values, away from the initial ones
        model.pcen.alpha_raw.uniform_(-1, 2)
        model.pcen.delta_raw.uniform_(-1, 2)
        model.pcen.root_raw.uniform_(-2, 1)
        model.pcen.smooth_logit.uniform_(-4, 1)
    db = torch.empty(2, 1, 5, 60, dtype=torch.float64).uniform_(-70, 40)
    db[0, 0, 1, :10] = -70.0
    got = model(db).detach().numpy()
    sp = lambda v: np.log1p(np.exp(v.detach().numpy()))  # noqa: E731
    p = model.pcen
    for b in range(2):
        linear = 10.0 ** (db[b, 0].numpy() / 20.0)
        want = pcen_loop(linear, sp(p.alpha_raw), sp(p.delta_raw), sp(p.root_raw), p.smooth.detach().numpy(), p.eps)
        np.testing.assert_allclose(got[b, 0], want, rtol=1e-10, atol=1e-12)


def test_causal_jacobian_exact_zeros():
    torch.manual_seed(1)
    model = NativePCEN(34).eval()
    x = torch.empty(1, 1, 34, 12).uniform_(-70, 30).requires_grad_(True)
    y = model(x)
    assert y.shape == (1, 1, 34, 12)
    for t in range(12):
        (g,) = torch.autograd.grad(y[..., t].sum(), x, retain_graph=True)
        assert (g[..., t + 1 :] == 0).all(), f"frame {t} depends on later frames"
        assert g[..., : t + 1].abs().sum() > 0


def test_floor_and_extremes_stay_finite():
    model = NativePCEN(34)
    floor = torch.full((2, 1, 34, 50), -70.0, requires_grad=True)
    y = model(floor)
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(floor.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    loud = model(torch.full((1, 1, 34, 50), 150.0))
    assert torch.isfinite(loud).all()
    torch.testing.assert_close(model(floor), model(floor))  # deterministic


def test_shape_errors_and_options():
    model = NativePCEN(34)
    with pytest.raises(ShapeError, match="native_pcen"):
        model(torch.zeros(1, 34, 10))
    with pytest.raises(ShapeError, match="F=34"):
        model(torch.zeros(1, 1, 33, 10))
    with pytest.raises(ShapeError):
        model(torch.zeros(1, 2, 34, 10))
    with pytest.raises(ConfigError, match="n_bands"):
        NativePCEN(0)
    with pytest.raises(ConfigError, match="frontend.smooth"):
        NativePCEN(34, smooth=1.5)
