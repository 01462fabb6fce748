"""LN, NRF and DNet against plain loops of their definitions, and the contract every readout keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.models.dnet import DNet, decay_kernels
from strf_runner.models.ln import LinearNonlinear
from strf_runner.models.nrf import NetworkReceptiveField
from strf_runner.models.registry import READOUTS, build_readout


def softplus_np(x: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return alpha * np.log1p(np.exp(beta * x)) / beta


def strf_loop(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x (F, T), w (H, F, L), b (H,) -> (H, T): output t sums input frames t-L+1 .. t (zeros before 0)."""
    n_h, n_f, lags = w.shape
    out = np.zeros((n_h, x.shape[1]))
    for h in range(n_h):
        for t in range(x.shape[1]):
            acc = b[h]
            for f in range(n_f):
                for k in range(lags):
                    src = t - (lags - 1) + k
                    if src >= 0:
                        acc += w[h, f, k] * x[f, src]
            out[h, t] = acc
    return out


def layer_norm_loop(h: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """h (H, T): normalise over H at every t."""
    out = np.empty_like(h)
    for t in range(h.shape[1]):
        col = h[:, t]
        out[:, t] = (col - col.mean()) / np.sqrt(col.var() + eps) * weight + bias
    return out


def randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter off its initial value so no check passes at a special point."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def test_parameter_counts():
    counts = {name: sum(p.numel() for p in build_readout(name, n_bands=34, n_neurons=119).parameters())
              for name in ("linear", "ln", "nrf", "dnet")}
    assert counts == {"linear": 36_771, "ln": 37_009, "nrf": 8_917, "dnet": 8_699}


def test_ln_is_linear_then_a_per_neuron_parametric_softplus():
    torch.manual_seed(0)
    model = randomised(LinearNonlinear(5, 3, temporal_window_size=4).double()).eval()
    x = torch.randn(1, 1, 5, 12, dtype=torch.float64)
    out = model(x).detach().numpy()[0, :, 0]
    w, b = model.conv.weight.detach().numpy()[:, 0], model.conv.bias.detach().numpy()
    bn = model.norm
    lin = strf_loop(x.numpy()[0, 0], w, b)
    lin = (lin - bn.running_mean.numpy()[:, None]) / np.sqrt(bn.running_var.numpy()[:, None] + bn.eps)
    lin = lin * bn.weight.detach().numpy()[:, None] + bn.bias.detach().numpy()[:, None]
    alpha = model.activation.log_alpha.detach().exp().numpy()[:, None]
    beta = model.activation.log_beta.detach().exp().numpy()[:, None]
    np.testing.assert_allclose(out, softplus_np(lin, alpha, beta), rtol=1e-10, atol=1e-12)
    assert (out > 0).all()


def test_nrf_equals_its_definition():
    torch.manual_seed(1)
    model = randomised(NetworkReceptiveField(5, 3, temporal_window_size=3, n_hidden=4).double()).eval()
    x = torch.randn(1, 1, 5, 10, dtype=torch.float64)
    out = model(x).detach().numpy()[0, :, 0]
    hid = model.hidden
    h = strf_loop(x.numpy()[0, 0], hid.weight.detach().numpy()[:, 0], hid.bias.detach().numpy())
    h = np.tanh(layer_norm_loop(h, hid.norm.norm.weight.detach().numpy(), hid.norm.norm.bias.detach().numpy()))
    lin = model.readout.linear
    y = lin.weight.detach().numpy() @ h + lin.bias.detach().numpy()[:, None]
    alpha = model.activation.log_alpha.detach().exp().numpy()[:, None]
    beta = model.activation.log_beta.detach().exp().numpy()[:, None]
    np.testing.assert_allclose(out, softplus_np(y, alpha, beta), rtol=1e-10, atol=1e-12)


def test_dnet_decay_equals_a_leaky_integrator_loop_with_replicated_start():
    torch.manual_seed(2)
    model = randomised(DNet(5, 3, temporal_window_size=3, n_hidden=4, tau=2.0).double()).eval()
    assert model.decay_length == 14
    x = torch.randn(1, 1, 5, 20, dtype=torch.float64)
    out = model(x).detach().numpy()[0, :, 0]
    hid = model.hidden
    h = strf_loop(x.numpy()[0, 0], hid.weight.detach().numpy()[:, 0], hid.bias.detach().numpy())
    h = 1 / (1 + np.exp(-layer_norm_loop(h, hid.norm.norm.weight.detach().numpy(), hid.norm.norm.bias.detach().numpy())))
    d = model.d.detach().numpy()
    a = 1 - 1 / (1 + d**2)
    k_len = 14
    dec = np.zeros_like(h)
    for u in range(h.shape[0]):
        for t in range(h.shape[1]):
            for j in range(k_len):  # j frames back, replicating frame 0 before the clip
                dec[u, t] += a[u] ** j * (1 - a[u]) * h[u, max(t - j, 0)]
    lin = model.readout.linear
    want = lin.weight.detach().numpy() @ dec + lin.bias.detach().numpy()[:, None]
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)


def test_dnet_decay_kernels_and_initialisation():
    d = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    k = decay_kernels(d, 14)
    a = 1 - 1 / (1 + d**2)
    assert torch.allclose(k.sum(-1), 1 - a**14)  # a truncated leaky integrator with unit DC gain
    assert torch.allclose(k[:, -1], 1 - a)  # the current frame weighs 1 - a
    torch.manual_seed(0)
    assert DNet(34, 2, n_hidden=4000, tau=2.0).d.mean().item() == pytest.approx(1.0, abs=0.06)  # Exp(rate 1)
    with pytest.raises(ConfigError, match="model.tau"):
        DNet(34, 2, tau=1.0)


# --- the contract of every registered readout --------------------------------------------------


@pytest.mark.parametrize("name", READOUTS.names())
def test_readout_contract_shape_causality_errors(name):
    torch.manual_seed(3)
    model = build_readout(name, n_bands=12, n_neurons=4).double()
    with torch.no_grad():  # a few training-mode passes so batch norms hold non-trivial running stats
        for _ in range(3):
            model(torch.randn(2, 1, 12, 16, dtype=torch.float64))
    model.eval()
    t_len = 11
    x = torch.randn(2, 1, 12, t_len, dtype=torch.float64)
    out = model(x)
    assert out.shape == (2, 4, 1, t_len) and torch.isfinite(out).all()
    assert torch.equal(model(x), out)  # deterministic in eval mode
    for t in range(t_len):  # Jacobian test: exactly zero after t, not all zero up to t
        xi = x[:1].clone().requires_grad_(True)
        model(xi)[..., t].sum().backward()
        grad = xi.grad[0, 0]
        assert (grad[:, t + 1 :] == 0).all(), f"{name}: frame {t} depends on the future"
        assert grad[:, : t + 1].abs().sum() > 0, f"{name}: frame {t} ignores its input"
    with pytest.raises(ShapeError):
        model(torch.randn(1, 1, 11, t_len, dtype=torch.float64))
    with pytest.raises(ShapeError):
        model(torch.randn(1, 12, t_len, dtype=torch.float64))
