"""Gradient maps: the linear closed form, mode restoration, causality, mass span, WAV writing, figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy.io import wavfile

from strf_runner.analysis.gradmaps import (
    mass_span_ms,
    receptive_field_figure,
    strf_gradmap,
    strf_gradmap_figure,
    waveform_gradmap,
    write_wav,
)
from strf_runner.frontends.leaf import CausalLEAF
from strf_runner.frontends.mel import MelSpectrogram
from strf_runner.frontends.native import NativeSpectrogram
from strf_runner.models.encoding import EncodingModel
from strf_runner.models.linear import LinearSTRF

FS, HOP, N_BANDS, N_NEURONS, WINDOW = 8000.0, 40, 6, 3, 4


def randomise_norm(readout: LinearSTRF) -> None:
    """Give the readout's batch norm non-trivial running statistics and affine terms."""
    with torch.no_grad():
        readout.norm.running_mean.uniform_(-1, 1)
        readout.norm.running_var.uniform_(0.3, 3)
        readout.norm.weight.uniform_(0.5, 2)
        readout.norm.bias.uniform_(-1, 1)


def spectrogram_model() -> EncodingModel:
    torch.manual_seed(0)
    model = EncodingModel(NativeSpectrogram(N_BANDS), LinearSTRF(N_BANDS, N_NEURONS, temporal_window_size=WINDOW))
    randomise_norm(model.readout)
    return model


def waveform_model(frontend: str = "mel") -> EncodingModel:
    torch.manual_seed(0)
    if frontend == "mel":
        front = MelSpectrogram(FS, HOP, n_filters=N_BANDS, f_min=100.0, f_max=4000.0, window_ms=10.0)
    else:
        front = CausalLEAF(FS, HOP, n_filters=N_BANDS, f_min=100.0, f_max=4000.0, gabor_ms=5.0, pool_ms=5.0)
    model = EncodingModel(front, LinearSTRF(N_BANDS, N_NEURONS, temporal_window_size=WINDOW))
    randomise_norm(model.readout)
    return model


def closed_form(readout: LinearSTRF) -> np.ndarray:
    """W[n, 0] * gamma_n / sqrt(running_var_n + eps), (N, F, L)."""
    bn = readout.norm
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    return readout.conv.weight.detach().numpy()[:, 0] * scale[:, None, None]


@pytest.mark.parametrize("start_training", [True, False])
def test_strf_gradmap_is_the_linear_closed_form_and_restores_the_mode(start_training):
    model = spectrogram_model()
    model.train(start_training)
    model.frontend.train(not start_training)  # a mixed state must come back exactly
    maps = strf_gradmap(model)
    assert maps.shape == (N_NEURONS, N_BANDS, WINDOW)
    np.testing.assert_allclose(maps, closed_form(model.readout), rtol=1e-5, atol=1e-7)
    assert model.training is start_training and model.readout.norm.training is start_training
    assert model.frontend.training is not start_training
    assert all(p.grad is None for p in model.parameters())


def test_strf_gradmap_longer_window_pads_with_zeros_and_bypasses_a_waveform_frontend():
    model = waveform_model()
    maps = strf_gradmap(model, n_frames=WINDOW + 3)
    assert maps.shape == (N_NEURONS, N_BANDS, WINDOW + 3)
    np.testing.assert_array_equal(maps[:, :, :3], 0)
    np.testing.assert_allclose(maps[:, :, 3:], closed_form(model.readout), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("frontend", ["mel", "leaf"])
@pytest.mark.parametrize("reduce", ["last", "sum", "peak"])
def test_waveform_gradmap_is_causal(frontend, reduce):
    model = waveform_model(frontend)
    n_frames = 12
    stim = torch.randn(n_frames * HOP, generator=torch.Generator().manual_seed(1))
    for frame in (2, 7, n_frames - 1):
        grad = waveform_gradmap(model, stim, reduce=reduce, frame=frame)
        assert grad.shape == (n_frames * HOP,)
        end = (frame + 1) * HOP
        assert np.all(grad[end:] == 0)
        assert np.abs(grad[:end]).max() > 0
        if frame == n_frames - 1:
            np.testing.assert_array_equal(grad, waveform_gradmap(model, stim.reshape(1, 1, -1), reduce=reduce))


def test_waveform_gradmap_neurons_add_up_and_mode_is_restored():
    model = waveform_model()
    model.train()
    stim = torch.randn(10 * HOP, generator=torch.Generator().manual_seed(2))
    total = waveform_gradmap(model, stim)
    parts = sum(waveform_gradmap(model, stim, neuron=n) for n in range(N_NEURONS))
    np.testing.assert_allclose(total, parts, rtol=1e-4, atol=1e-6 * np.abs(total).max())
    assert model.training and model.readout.norm.training


def test_waveform_gradmap_errors():
    stim = torch.randn(10 * HOP)
    with pytest.raises(ValueError, match="needs a waveform front-end.*NativeSpectrogram"):
        waveform_gradmap(spectrogram_model(), stim)
    model = waveform_model()
    with pytest.raises(ValueError, match="reduce='mean' is not one of last, sum, peak"):
        waveform_gradmap(model, stim, reduce="mean")
    with pytest.raises(ValueError, match="neuron=3 is out of range"):
        waveform_gradmap(model, stim, neuron=N_NEURONS)
    with pytest.raises(ValueError, match="frame=10 is out of range"):
        waveform_gradmap(model, stim, frame=10)
    with pytest.raises(ValueError, match=r"\(T_audio,\) or \(1, 1, T_audio\)"):
        waveform_gradmap(model, stim.reshape(2, -1))


def test_mass_span_of_a_box_tail():
    grad = np.zeros(480)
    grad[-48:] = 1.0
    # 0.99 * 48 = 47.52 -> the span needs all 48 samples = 1.0 ms at 48 kHz
    assert mass_span_ms(grad, 48000.0) == pytest.approx(1.0)
    assert mass_span_ms(-grad, 48000.0) == pytest.approx(1.0)
    # mass 0.5 -> 24 samples
    assert mass_span_ms(grad, 48000.0, mass=0.5) == pytest.approx(0.5)


def test_mass_span_of_an_exponential_decay():
    fs, n, r = 16000.0, 4000, 0.995
    grad = r ** np.arange(n)[::-1]  # 1 at the last sample, decaying backwards
    # sum of the last d samples = (1 - r^d) / (1 - r) >= 0.99 (1 - r^n) / (1 - r)
    d = math.log(1 - 0.99 * (1 - r**n)) / math.log(r)
    assert abs(mass_span_ms(grad, fs) - d / fs * 1000) <= 1000 / fs


def test_mass_span_of_zero_is_nan():
    assert math.isnan(mass_span_ms(np.zeros(100), 8000.0))


def test_write_wav_round_trip(tmp_path):
    audio = np.sin(np.linspace(0, 20, 1001)) * 0.01
    audio[500] = -0.3
    path = write_wav(tmp_path / "sub" / "grad.wav", audio, 7999.6)
    rate, data = wavfile.read(path)
    assert rate == 8000 and data.dtype == np.int16 and data.shape == (1001,)
    assert np.abs(data).max() == round(0.99 * 32767) == -data[500]
    silent = write_wav(tmp_path / "silent.wav", np.zeros(50), 8000)
    np.testing.assert_array_equal(wavfile.read(silent)[1], 0)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["grad.wav", "silent.wav"]


def test_receptive_field_figure():
    fs = 8000.0
    rng = np.random.default_rng(0)
    stim, grad = rng.normal(size=4000), rng.normal(size=4000)
    fig = receptive_field_figure(grad, stim, fs, span_ms=30.0, title="u0")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        x = ax.lines[0].get_xdata()
        assert len(x) == 1600 and x[-1] < 0 and x[0] == pytest.approx(-200.0)
    assert receptive_field_figure(np.zeros(400), stim[:400], fs, span_ms=math.nan).axes[0].lines[0].get_xdata().size


def test_strf_gradmap_figure_has_symmetric_limits():
    maps = strf_gradmap(spectrogram_model())
    freqs = np.geomspace(500, 8000, N_BANDS)
    fig = strf_gradmap_figure(maps, freqs, 5.0, ["u0", "u1", "u2"], [0, 2])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4  # two panels, each with its colour bar
    for ax, n in zip(fig.axes[::2], [0, 2], strict=True):
        assert ax.get_title() == f"u{n}"
        vmin, vmax = ax.collections[0].get_clim()
        assert vmin == -vmax == pytest.approx(-np.abs(maps[n]).max())
        # lag 0 (left-most column) is the evaluated frame
        np.testing.assert_allclose(
            np.asarray(ax.collections[0].get_array()).reshape(N_BANDS, WINDOW)[:, 0], maps[n, :, -1]
        )
    with pytest.raises(ValueError, match="neurons"):
        strf_gradmap_figure(maps, freqs, 5.0, ["u0", "u1", "u2"], [3])
