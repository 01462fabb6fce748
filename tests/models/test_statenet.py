"""The StateNet readout: parameter count, brute-force encoder and recurrence, causality, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strf_runner.errors import ConfigError, ShapeError
from strf_runner.frontends.native import NativeSpectrogram
from strf_runner.models import build_readout
from strf_runner.models.blocks import ChannelLayerNorm, ParametricSoftplus
from strf_runner.models.encoding import EncodingModel, build_encoding_model
from strf_runner.models.statenet import StateNet

RNNS = ["gru", "lstm", "rnn"]

NEWEST = {"encoder_norm": "layer", "output": "softplus"}  # the newest version of the reference (not the default)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """The recurrence is many tiny matrix products: on a loaded machine a thread pool makes them ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_parameter_count_matches_the_anchor():
    model = EncodingModel(NativeSpectrogram(34), StateNet(n_bands=34, n_neurons=119, **NEWEST))
    assert model.n_params() == 39_081


def test_parameter_count_formula_for_another_geometry():
    n_bands, n_neurons, kernel, stride, channels, hidden, c_in = 20, 5, 5, 2, 3, 16, 2
    positions = (n_bands - kernel) // stride + 1
    features = channels * positions
    expected = (
        positions * channels * c_in * kernel + features  # LC weights + biases
        + 2 * channels  # LayerNorm
        + 4 * (features * hidden + hidden * hidden + 2 * hidden)  # LSTM
        + hidden * n_neurons + n_neurons  # readout
        + 2 * n_neurons  # parametric softplus
    )
    model = StateNet(n_bands, n_neurons, kernel, stride, channels, "lstm", hidden, c_in, **NEWEST)
    assert n_params(model) == expected == 3_053


def brute_force_lc(model: StateNet, x: np.ndarray) -> np.ndarray:
    """(B, C_in, F, T) -> (B, C_out, P, T) by explicit loops over positions, channels and taps."""
    w = model.encoder.weight.detach().numpy()  # (P, C_out, C_in, K)
    bias = model.encoder.bias.detach().numpy()  # (C_out, P)
    n_pos, c_out, c_in, kernel = w.shape
    stride = model.encoder.stride
    batch, _, _, t_len = x.shape
    out = np.zeros((batch, c_out, n_pos, t_len))
    for b in range(batch):
        for o in range(c_out):
            for p in range(n_pos):
                for t in range(t_len):
                    acc = bias[o, p]
                    for c in range(c_in):
                        for k in range(kernel):
                            acc += w[p, o, c, k] * x[b, c, p * stride + k, t]
                    out[b, o, p, t] = acc
    return out


def brute_force_features(model: StateNet, x: np.ndarray) -> np.ndarray:
    """LC -> LayerNorm over channels -> sigmoid, flattened channel-major: (B, T, C * P)."""
    y = brute_force_lc(model, x)
    ln = model.norm.norm
    mean = y.mean(axis=1, keepdims=True)
    var = y.var(axis=1, keepdims=True)
    y = (y - mean) / np.sqrt(var + ln.eps)
    y = y * ln.weight.detach().numpy()[None, :, None, None] + ln.bias.detach().numpy()[None, :, None, None]
    y = 1 / (1 + np.exp(-y))
    batch, c, p, t_len = y.shape
    return y.transpose(0, 3, 1, 2).reshape(batch, t_len, c * p)


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def manual_recurrence(model: StateNet, rnn: str, feats: np.ndarray) -> np.ndarray:
    """Step-by-step textbook GRU / LSTM / tanh-RNN equations on the model's weights: (B, T, D) -> (B, T, H)."""
    r = model.recurrence
    w_ih, w_hh = r.weight_ih_l0.detach().numpy(), r.weight_hh_l0.detach().numpy()
    b_ih, b_hh = r.bias_ih_l0.detach().numpy(), r.bias_hh_l0.detach().numpy()
    batch, t_len, _ = feats.shape
    hidden = w_hh.shape[1]
    h = np.zeros((batch, hidden))
    cell = np.zeros((batch, hidden))
    out = np.zeros((batch, t_len, hidden))
    for t in range(t_len):
        gi = feats[:, t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if rnn == "gru":
            i_r, i_z, i_n = np.split(gi, 3, axis=1)
            h_r, h_z, h_n = np.split(gh, 3, axis=1)
            reset, update = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
            candidate = np.tanh(i_n + reset * h_n)
            h = (1 - update) * candidate + update * h
        elif rnn == "lstm":
            g_i, g_f, g_g, g_o = np.split(gi + gh, 4, axis=1)
            cell = sigmoid(g_f) * cell + sigmoid(g_i) * np.tanh(g_g)
            h = sigmoid(g_o) * np.tanh(cell)
        else:
            h = np.tanh(gi + gh)
        out[:, t] = h
    return out


def random_model(rnn: str, in_channels: int = 1) -> StateNet:
    model = StateNet(13, 4, kernel_size=4, stride=3, channels=3, rnn=rnn, hidden_size=6, in_channels=in_channels, **NEWEST)
    model = model.double()
    with torch.no_grad():
        model.norm.norm.weight.uniform_(0.5, 2)
        model.norm.norm.bias.uniform_(-1, 1)
        model.activation.log_alpha.uniform_(-0.5, 0.5)
        model.activation.log_beta.uniform_(-0.5, 0.5)
    return model.eval()


def test_lc_encoder_equals_a_brute_force_loop():
    torch.manual_seed(0)
    model = random_model("gru", in_channels=2)
    x = torch.randn(2, 2, 13, 5, dtype=torch.float64)
    assert model.encoder.positions == 4
    expected = brute_force_lc(model, x.numpy())
    np.testing.assert_allclose(model.encoder(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        model.features(x).detach().numpy(), brute_force_features(model, x.numpy()), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("rnn", RNNS)
def test_output_equals_an_independent_step_by_step_recurrence(rnn):
    torch.manual_seed(1)
    model = random_model(rnn)
    x = torch.randn(2, 1, 13, 9, dtype=torch.float64)
    states = manual_recurrence(model, rnn, brute_force_features(model, x.numpy()))  # (B, T, H)
    lin = model.readout.linear
    pre = states @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()  # (B, T, N)
    alpha = model.activation.log_alpha.exp().detach().numpy()
    beta = model.activation.log_beta.exp().detach().numpy()
    expected = (alpha * np.log1p(np.exp(beta * pre)) / beta).transpose(0, 2, 1)[:, :, None, :]
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rnn", RNNS)
def test_strictly_causal_in_eval_mode(rnn):
    """Jacobian test: output frame t has zero gradient w.r.t. input frames after t, nonzero at every frame <= t."""
    torch.manual_seed(2)
    model = EncodingModel(NativeSpectrogram(10), StateNet(10, 3, kernel_size=4, stride=2, channels=2, rnn=rnn, **NEWEST)).eval()
    t_len = 7
    for t in range(t_len):
        x = torch.randn(1, 1, 10, t_len, requires_grad=True)
        model(x)[..., t].sum().backward()
        grad = x.grad[0, 0]
        assert (grad[:, t + 1 :] == 0).all(), f"frame {t} depends on the future"
        assert (grad[:, : t + 1].abs().sum(dim=0) > 0).all(), f"frame {t} misses part of its past"


def test_output_shape_and_positive_rates():
    torch.manual_seed(3)
    readout = StateNet(34, 5, **NEWEST)
    out = readout(torch.randn(2, 1, 34, 13))
    assert out.shape == (2, 5, 1, 13)
    assert (out > 0).all()


def test_registered_under_its_config_name():
    assert isinstance(build_readout("statenet", n_bands=12, n_neurons=3, rnn="lstm"), StateNet)


def test_bad_input_shape_names_it():
    with pytest.raises(ShapeError, match=r"statenet.*got \(2, 1, 33, 10\)"):
        StateNet(34, 3)(torch.randn(2, 1, 33, 10))
    with pytest.raises(ShapeError, match=r"got \(2, 34, 10\)"):
        StateNet(34, 3)(torch.randn(2, 34, 10))
    with pytest.raises(ShapeError, match=r"C_in=1"):
        StateNet(34, 3)(torch.randn(2, 2, 34, 10))


@pytest.mark.parametrize(
    "options, key",
    [
        ({"kernel_size": 35}, "model.kernel_size"),
        ({"kernel_size": 0}, "model.kernel_size"),
        ({"stride": 0}, "model.stride"),
        ({"channels": 0}, "model.channels"),
        ({"hidden_size": 0}, "model.hidden_size"),
        ({"rnn": "mamba"}, "model.rnn"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError, match=key):
        StateNet(34, 3, **options)


def test_training_reduces_the_error():
    torch.manual_seed(4)
    n_bands, n_neurons = 12, 4
    x = torch.randn(8, 1, n_bands, 30)
    filters = torch.randn(n_neurons, n_bands) / n_bands**0.5
    target = torch.relu(torch.einsum("nf,bft->bnt", filters, x[:, 0])).unsqueeze(2)
    model = StateNet(n_bands, n_neurons, kernel_size=4, stride=2, channels=4, **NEWEST)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(30):
        loss = torch.mean((model(x) - target) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# ------------------------------------------------------------------------------------------------
# the earlier reference version: batch norm over the encoder's channels, no output nonlinearity


def test_variant_parameter_counts():
    counts = {(norm, out): sum(p.numel() for p in StateNet(34, 119, encoder_norm=norm, output=out).parameters())
              for norm in ("layer", "batch") for out in ("softplus", "linear")}
    assert counts == {("layer", "softplus"): 39081, ("batch", "softplus"): 39081,
                      ("layer", "linear"): 38843, ("batch", "linear"): 38843}


def test_batch_norm_variant_equals_its_definition_in_both_modes():
    """Training mode: the channels normalised with statistics over batch, positions and time (biased
    variance); eval mode: with the running statistics; then sigmoid, GRU and the linear readout alone."""
    torch.manual_seed(4)
    model = StateNet(13, 4, kernel_size=4, stride=3, channels=3, hidden_size=6, encoder_norm="batch",
                     output="linear").double()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 2)
        model.norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 1, 13, 9, dtype=torch.float64)
    lc = brute_force_lc(model, x.numpy())  # (B, C, P, T)
    lin = model.readout.linear
    gamma, beta = model.norm.weight.detach().numpy(), model.norm.bias.detach().numpy()

    def expected(mean, var):
        y = (lc - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + model.norm.eps)
        y = sigmoid(y * gamma[None, :, None, None] + beta[None, :, None, None])
        b, c, p, t = y.shape
        states = manual_recurrence(model, "gru", y.transpose(0, 3, 1, 2).reshape(b, t, c * p))
        return (states @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()).transpose(0, 2, 1)[:, :, None, :]

    batch_mean, batch_var = lc.mean(axis=(0, 2, 3)), lc.var(axis=(0, 2, 3))
    np.testing.assert_allclose(model.train()(x).detach().numpy(), expected(batch_mean, batch_var), rtol=1e-10, atol=1e-12)
    running_mean, running_var = model.norm.running_mean.numpy(), model.norm.running_var.numpy()
    np.testing.assert_allclose(model.eval()(x).detach().numpy(), expected(running_mean, running_var),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm, out", [("batch", "linear"), ("batch", "softplus"), ("layer", "linear")])
def test_variants_are_strictly_causal_in_eval_mode(norm, out):
    torch.manual_seed(5)
    model = EncodingModel(NativeSpectrogram(10), StateNet(10, 3, kernel_size=4, stride=2, channels=2,
                                                          encoder_norm=norm, output=out))
    model(torch.randn(2, 1, 10, 12))  # one training-mode pass moves batch norm's running statistics
    model.eval()
    t_len = 6
    for t in range(t_len):
        x = torch.randn(1, 1, 10, t_len, requires_grad=True)
        model(x)[..., t].sum().backward()
        assert (x.grad[0, 0][:, t + 1 :] == 0).all(), f"frame {t} depends on the future"


def test_a_run_saved_before_the_variants_existed_rebuilds_as_the_version_it_trained():
    """model.json of earlier runs lacks encoder_norm and output: they rebuild as the version those runs
    trained (per-frame LayerNorm, softplus), not as today's default (batch norm, linear output)."""
    spec = {"frontend": {"name": "native", "n_bands": 34}, "readout": {"name": "statenet", "n_bands": 34, "n_neurons": 5}}
    old = build_encoding_model(spec).readout
    assert isinstance(old.activation, ParametricSoftplus) and isinstance(old.norm, ChannelLayerNorm)
    today = StateNet(34, 5)
    assert isinstance(today.activation, torch.nn.Identity) and isinstance(today.norm, torch.nn.BatchNorm1d)


@pytest.mark.parametrize("options, key", [({"encoder_norm": "group"}, "model.encoder_norm"),
                                          ({"output": "relu"}, "model.output")])
def test_bad_variant_names_the_key(options, key):
    with pytest.raises(ConfigError, match=key):
        StateNet(34, 5, **options)
