"""The Linear STRF readout and the encoding model: parameter count, brute-force equality, causality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.native import NativeSpectrogram
from strf_runner.models.encoding import EncodingModel
from strf_runner.models.linear import LinearSTRF


def test_parameter_count_matches_the_anchor():
    model = EncodingModel(NativeSpectrogram(34), LinearSTRF(n_bands=34, n_neurons=119, temporal_window_size=9))
    assert model.n_params() == 36_771


def test_output_equals_a_brute_force_loop():
    torch.manual_seed(0)
    n_bands, n_neurons, lags, t_len = 5, 3, 4, 11
    readout = LinearSTRF(n_bands, n_neurons, lags).double()
    with torch.no_grad():
        readout.norm.running_mean.uniform_(-1, 1)
        readout.norm.running_var.uniform_(0.5, 2)
        readout.norm.weight.uniform_(0.5, 2)
        readout.norm.bias.uniform_(-1, 1)
    readout.eval()
    x = torch.randn(2, 1, n_bands, t_len, dtype=torch.float64)
    out = readout(x).detach().numpy()
    w = readout.conv.weight.detach().numpy()[:, 0]  # (N, F, L)
    b = readout.conv.bias.detach().numpy()
    bn = readout.norm
    xs = x.numpy()[:, 0]
    expected = np.zeros((2, n_neurons, 1, t_len))
    for batch in range(2):
        for n in range(n_neurons):
            for t in range(t_len):
                acc = b[n]
                for f in range(n_bands):
                    for k in range(lags):
                        src = t - (lags - 1) + k
                        if src >= 0:
                            acc += w[n, f, k] * xs[batch, f, src]
                mean, var = bn.running_mean[n].item(), bn.running_var[n].item()
                expected[batch, n, 0, t] = (acc - mean) / np.sqrt(var + bn.eps) * bn.weight[n].item() + bn.bias[n].item()
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)


def test_strictly_causal_in_eval_mode():
    """Jacobian test: output frame t has zero gradient w.r.t. input frames after t, nonzero before."""
    torch.manual_seed(1)
    model = EncodingModel(NativeSpectrogram(6), LinearSTRF(6, 4, temporal_window_size=3)).eval()
    t_len = 8
    for t in range(t_len):
        x = torch.randn(1, 1, 6, t_len, requires_grad=True)
        model(x)[..., t].sum().backward()
        grad = x.grad[0, 0]
        assert (grad[:, t + 1 :] == 0).all(), f"frame {t} depends on the future"
        assert grad[:, max(0, t - 2) : t + 1].abs().sum() > 0
        assert (grad[:, : max(0, t - 2)] == 0).all(), "window is exactly temporal_window_size frames"


def test_output_shape_and_strfs():
    readout = LinearSTRF(7, 5, 9)
    assert readout(torch.randn(3, 1, 7, 20)).shape == (3, 5, 1, 20)
    assert readout.strfs().shape == (5, 7, 9)


def test_activation_is_per_neuron_layout():
    readout = LinearSTRF(4, 3, 2, activation="softplus")
    assert (readout(torch.randn(2, 1, 4, 10)) > 0).all()


def test_bad_input_shape_names_it():
    with pytest.raises(ShapeError, match=r"got \(2, 1, 5, 10\)"):
        LinearSTRF(4, 3, 2)(torch.randn(2, 1, 5, 10))
    with pytest.raises(ShapeError, match="native front-end"):
        NativeSpectrogram(4)(torch.randn(2, 4, 10))


def test_bad_options():
    with pytest.raises(ConfigError, match="temporal_window_size"):
        LinearSTRF(4, 3, 0)
    with pytest.raises(ConfigError, match="activation"):
        LinearSTRF(4, 3, 2, activation="gelu")
