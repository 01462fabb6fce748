"""The compiled GRU / tanh-RNN recurrences equal torch's reference modules: outputs, final states and
every gradient (input, both weight matrices, both biases, initial state)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strf_runner.models.recurrence import compiled, recur
from strf_runner.models.statenet import StateNet


def _make(kind: str, d: int, h: int, dtype: torch.dtype) -> nn.RNNBase:
    torch.manual_seed(7)
    module = {"gru": nn.GRU, "rnn": nn.RNN, "lstm": nn.LSTM}[kind](d, h, batch_first=True)
    for p in module.parameters():  # wider than the default init, so gates saturate somewhere
        nn.init.uniform_(p, -0.8, 0.8)
    return module.to(dtype)


def _outputs_and_grads(fn, module: nn.RNNBase, x: torch.Tensor, h0: torch.Tensor | None, weights):
    """Outputs, final state and d(loss)/d(x, parameters, h0) for a loss that uses every output."""
    state = None if h0 is None else (h0 if not isinstance(module, nn.LSTM) else (h0, torch.zeros_like(h0)))
    out, final = fn(module, x, state)
    h_last = final[0] if isinstance(final, tuple) else final
    loss = (out * weights).sum() + (h_last * h_last).sum()
    wrt = [x, *module.parameters()] + ([h0] if h0 is not None else [])
    return out, h_last, torch.autograd.grad(loss, wrt)


@pytest.mark.parametrize("kind", ["gru", "rnn"])
@pytest.mark.parametrize(
    "dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("b, t, d, h, with_state", [(1, 37, 5, 4, False), (3, 2, 4, 6, True), (2, 1, 3, 3, True)])
def test_compiled_recurrence_equals_torch(kind, dtype, tol, b, t, d, h, with_state):
    module = _make(kind, d, h, dtype)
    gen = torch.Generator().manual_seed(b * 100 + t)
    x = torch.randn(b, t, d, generator=gen, dtype=dtype).mul_(2).requires_grad_()
    h0 = torch.randn(1, b, h, generator=gen, dtype=dtype).requires_grad_() if with_state else None
    weights = torch.randn(b, t, h, generator=gen, dtype=dtype)
    assert compiled(module, x)
    ref = _outputs_and_grads(lambda m, x, s: m(x, s), module, x, h0, weights)
    got = _outputs_and_grads(recur, module, x, h0, weights)
    for name, a, r in [("out", got[0], ref[0]), ("h_last", got[1], ref[1])] + [
        (f"grad {i}", a, r) for i, (a, r) in enumerate(zip(got[2], ref[2]))
    ]:
        scale = max(1.0, float(r.detach().abs().max()))
        assert float((a - r).detach().abs().max()) <= tol * scale, name


def test_a_long_clip_in_float32_stays_within_1e5_of_torch():
    """NS1's length (999 frames) and StateNet's size (70 -> 70), torch's own initialisation (the wide
    one of the other tests makes a 70-unit recurrence chaotic over 999 steps: no float32 result
    agrees with another there)."""
    torch.manual_seed(3)
    module = nn.GRU(70, 70, batch_first=True)
    x = torch.rand(1, 999, 70, generator=torch.Generator().manual_seed(1)).requires_grad_()
    weights = torch.randn(1, 999, 70, generator=torch.Generator().manual_seed(2))
    ref = _outputs_and_grads(lambda m, x, s: m(x, s), module, x, None, weights)
    got = _outputs_and_grads(recur, module, x, None, weights)
    assert float((got[0] - ref[0]).detach().abs().max()) <= 1e-5
    for a, r in zip(got[2], ref[2]):
        assert float((a - r).abs().max()) <= 1e-5 * max(1.0, float(r.abs().max()))


def test_what_is_not_compiled_runs_torchs_module():
    x = torch.randn(1, 5, 4)
    assert not compiled(nn.LSTM(4, 3, batch_first=True), x)  # torch's oneDNN LSTM is faster on the CPU
    assert not compiled(nn.RNN(4, 3, batch_first=True, nonlinearity="relu"), x)
    assert not compiled(nn.GRU(4, 3, num_layers=2, batch_first=True), x)
    assert not compiled(nn.GRU(4, 3, batch_first=True, bidirectional=True), x)
    assert not compiled(nn.GRU(4, 3, batch_first=False), x)
    assert not compiled(nn.GRU(4, 3, batch_first=True), x.double())  # parameters in another dtype
    lstm = _make("lstm", 4, 3, torch.float64)
    xs = torch.randn(2, 6, 4, dtype=torch.float64)
    out, (h, c) = recur(lstm, xs)
    ref, (h_ref, c_ref) = lstm(xs)
    assert torch.equal(out, ref) and torch.equal(h, h_ref) and torch.equal(c, c_ref)


def test_statenet_runs_the_compiled_gru_on_the_cpu_and_matches_torch():
    torch.manual_seed(0)
    model = StateNet(n_bands=34, n_neurons=5).double()
    x = torch.randn(2, 1, 34, 40, dtype=torch.float64)
    features = model.features(x)
    assert compiled(model.recurrence, features)
    fast = model(x)
    states, _ = model.recurrence(features)
    ref = model.activation(model.readout(states.transpose(1, 2))).unsqueeze(2)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
