"""Tests for the front-end interpretability helpers: centres, drift, magnitude responses, figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from strf_runner.analysis.filterbank import (
    filterbank_figure,
    filterbank_table,
    magnitude_responses_db,
    spectrogram_comparison_figure,
)
from strf_runner.frontends.base import FilterbankInfo
from strf_runner.frontends.gammatone import Gammatone
from strf_runner.frontends.leaf import CausalLEAF
from strf_runner.frontends.mel import MelSpectrogram
from strf_runner.frontends.native import NativeSpectrogram
from strf_runner.frontends.native_pcen import NativePCEN
from strf_runner.frontends.sincnet import SincNet
from strf_runner.frontends.spacing import erb_centres

FS, HOP, N_FFT = 48000.0, 240, 8192
BIN_HZ = FS / N_FFT


def test_untrained_learnable_banks_have_exactly_zero_drift():
    for frontend, kind in [
        (CausalLEAF(FS, HOP), "leaf"),
        (SincNet(FS, HOP), "sincnet"),
        (Gammatone(FS, HOP, learn_centres=True), "gammatone"),
    ]:
        info = frontend.filterbank_info()
        assert info.kind == kind and info.learnable
        assert info.centres_hz.shape == (34,)
        assert (info.drift == 0).all(), kind
        assert info.mean_drift == 0.0


def test_fixed_banks_are_not_learnable_and_keep_their_grid():
    for frontend, kind in [(Gammatone(FS, HOP), "gammatone"), (MelSpectrogram(FS, HOP), "mel")]:
        info = frontend.filterbank_info()
        assert info.kind == kind and not info.learnable
        np.testing.assert_array_equal(info.centres_hz, frontend.centres_hz().numpy())
        np.testing.assert_array_equal(info.initial_centres_hz, info.centres_hz)
        assert info.band_edges_hz is None


def test_frozen_leaf_filters_are_not_learnable():
    assert not CausalLEAF(FS, HOP, learn_filters=False).filterbank_info().learnable


def test_leaf_drift_follows_a_known_shift_of_its_centres():
    leaf = CausalLEAF(FS, HOP)
    factor = 1.05
    with torch.no_grad():
        leaf.centre.mul_(factor)
    info = leaf.filterbank_info()
    np.testing.assert_array_equal(info.initial_centres_hz, leaf.initial_centres_hz().numpy())
    # channel 0 (60 Hz) sits at the 0.01 rad/sample clamp (76.4 Hz) before and after the shift
    assert info.initial_centres_hz[0] == pytest.approx(0.01 * FS / (2 * np.pi))
    assert info.drift[0] == 0
    np.testing.assert_allclose(info.drift[1:], factor - 1, rtol=1e-5)
    assert info.mean_drift == pytest.approx((factor - 1) * 33 / 34, rel=1e-5)


def test_sincnet_centres_are_the_geometric_mean_of_its_edges():
    sinc = SincNet(FS, HOP)
    with torch.no_grad():
        sinc.band_hz.mul_(1.2)
    info = sinc.filterbank_info()
    edges = sinc.band_edges_hz().double().numpy()
    np.testing.assert_array_equal(info.band_edges_hz, edges)
    np.testing.assert_array_equal(info.initial_band_edges_hz, sinc.initial_band_edges_hz().double().numpy())
    np.testing.assert_allclose(info.centres_hz, np.sqrt(edges[:, 0] * edges[:, 1]))
    np.testing.assert_allclose(info.initial_centres_hz, np.sqrt(np.prod(info.initial_band_edges_hz, axis=1)))
    assert (info.drift[:-1] > 0).all()
    assert info.drift[-1] == 0  # the top band's f2 stays clamped at Nyquist


def test_spectrogram_frontends_give_none_and_their_channels_are_the_datasets_bands():
    bands = np.geomspace(500, 22627, 34)
    for frontend in (NativeSpectrogram(34), NativePCEN(34)):
        assert frontend.filterbank_info() is None
        assert magnitude_responses_db(frontend) is None
        np.testing.assert_array_equal(frontend.channel_hz(bands), bands)
        assert frontend.channel_hz(None) is None and frontend.channel_hz(bands[:10]) is None


def test_a_waveform_frontend_that_describes_nothing_has_no_filterbank_and_unknown_channels():
    from strf_runner.frontends.base import WaveformFrontend

    frontend = WaveformFrontend(4, FS, HOP)
    assert frontend.filterbank_info() is None and magnitude_responses_db(frontend) is None
    assert frontend.channel_hz(np.geomspace(500, 8000, 4)) is None


def test_a_waveform_frontends_channels_are_its_filter_centres():
    leaf = CausalLEAF(FS, HOP)
    np.testing.assert_array_equal(leaf.channel_hz(np.geomspace(500, 22627, 34)), leaf.filterbank_info().centres_hz)


@pytest.mark.parametrize(
    "frontend",
    [CausalLEAF(FS, HOP), SincNet(FS, HOP), Gammatone(FS, HOP), Gammatone(FS, HOP, learn_centres=True)],
    ids=["leaf", "sincnet", "gammatone", "gammatone_learn"],
)
def test_magnitude_responses_are_peak_normalised_on_the_fft_grid(frontend):
    freqs, db = magnitude_responses_db(frontend, N_FFT)
    assert freqs.shape == (N_FFT // 2 + 1,)
    assert freqs[0] == 0 and freqs[-1] == FS / 2
    assert db.shape == (34, N_FFT // 2 + 1)
    np.testing.assert_array_equal(db.max(axis=1), 0.0)
    assert db.min() >= -240


def test_magnitude_response_peaks_sit_at_the_centres():
    leaf = CausalLEAF(FS, HOP)
    freqs, db = magnitude_responses_db(leaf, N_FFT)
    peaks = freqs[db.argmax(axis=1)]
    np.testing.assert_allclose(peaks, leaf.filterbank_info().centres_hz, atol=BIN_HZ)

    gammatone = Gammatone(FS, HOP)
    freqs, db = magnitude_responses_db(gammatone, N_FFT)
    peaks, centres = freqs[db.argmax(axis=1)], gammatone.filterbank_info().centres_hz
    # near Nyquist the real filter's negative-frequency image (centred at fs - fc) lifts the upper
    # flank and pulls the peak up: 226 Hz for the top channel at 22.6 kHz
    low = centres < 0.4 * FS
    assert low.sum() == 32
    np.testing.assert_allclose(peaks[low], centres[low], atol=BIN_HZ)


def test_mel_responses_are_its_weights_on_its_own_bins():
    mel = MelSpectrogram(FS, HOP)
    freqs, db = magnitude_responses_db(mel, N_FFT)
    np.testing.assert_allclose(freqs, np.arange(241) * 100.0)
    assert db.shape == (34, 241)
    np.testing.assert_array_equal(db.max(axis=1), 0.0)
    weights = mel.filterbank.T.double().numpy()
    np.testing.assert_array_equal(db < -200, weights == 0)


def test_filterbank_table_lists_channels_in_order():
    leaf = CausalLEAF(FS, HOP, n_filters=5)
    with torch.no_grad():
        leaf.centre.mul_(1.1)
    info = leaf.filterbank_info()
    table = filterbank_table(info)
    assert list(table.columns) == ["channel", "initial_hz", "learned_hz", "drift"]
    assert table["channel"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(table["initial_hz"], info.initial_centres_hz)
    np.testing.assert_array_equal(table["learned_hz"], info.centres_hz)
    np.testing.assert_array_equal(table["drift"], info.drift)

    sinc = filterbank_table(SincNet(FS, HOP, n_filters=5).filterbank_info())
    edge_columns = ["initial_low_hz", "initial_high_hz", "learned_low_hz", "learned_high_hz"]
    assert list(sinc.columns) == ["channel", "initial_hz", "learned_hz", "drift", *edge_columns]
    np.testing.assert_allclose(sinc["initial_hz"], np.sqrt(sinc["initial_low_hz"] * sinc["initial_high_hz"]))
    np.testing.assert_allclose(
        sinc["initial_high_hz"].to_numpy()[:-1], sinc["initial_low_hz"].to_numpy()[1:], rtol=1e-6
    )


def test_filterbank_info_checks_shapes():
    with pytest.raises(ValueError, match="centres_hz"):
        FilterbankInfo("x", np.ones(3), np.ones(4), False)
    with pytest.raises(ValueError, match="band edges"):
        FilterbankInfo("x", np.ones(3), np.ones(3), True, band_edges_hz=np.ones((3, 3)))


def test_filterbank_figure_panels():
    sinc = SincNet(FS, HOP)
    with torch.no_grad():
        sinc.low_hz.mul_(1.1)
    info = sinc.filterbank_info()
    fig = filterbank_figure(info, magnitude_responses_db(sinc))
    assert isinstance(fig, Figure)
    centres, drift, responses = fig.axes
    assert centres.get_yscale() == "log"
    assert responses.get_xscale() == "log"
    assert responses.get_ylim() == (-60.0, 3.0)
    assert len(responses.get_lines()) == 34
    assert all(line.get_ydata().min() >= -60 for line in responses.get_lines())
    assert len(drift.patches) == 34
    np.testing.assert_allclose([p.get_height() for p in drift.patches], 100 * info.drift)
    assert f"{100 * info.mean_drift:.2f} %" in drift.get_title()
    (mean_line,) = drift.get_lines()
    assert mean_line.get_ydata()[0] == pytest.approx(100 * info.mean_drift)
    labels = centres.get_legend_handles_labels()[1]
    assert labels == ["initial", "learned", "initial band", "learned band"]


def test_filterbank_figure_without_responses_and_for_a_fixed_bank():
    fig = filterbank_figure(MelSpectrogram(FS, HOP).filterbank_info())
    assert len(fig.axes) == 2
    centres = fig.axes[0]
    assert centres.get_yscale() == "log"
    assert "fixed" in centres.get_title()
    assert "fixed" in [t.get_text() for t in centres.texts]
    with pytest.raises(ValueError, match="responses"):
        filterbank_figure(MelSpectrogram(FS, HOP).filterbank_info(), (np.arange(5.0), np.zeros((3, 5))))


def test_spectrogram_comparison_sorts_learned_channels_by_centre():
    rng = np.random.default_rng(0)
    n, t_learned, t_native, dt_ms = 6, 40, 30, 5.0
    centres = np.array([3000.0, 500.0, 12000.0, 800.0, 6000.0, 1500.0])
    learned = rng.normal(size=(n, t_learned))
    native_freqs = np.geomspace(400, 16000, 5)
    native = rng.normal(size=(5, t_native))
    fig = spectrogram_comparison_figure(learned, centres, native, native_freqs, dt_ms, title="clip 1")
    assert len(fig.axes) == 4  # two images and their colour bars
    top, bottom = fig.axes[:2]
    order = np.argsort(centres)
    np.testing.assert_array_equal(top.get_images()[0].get_array(), learned[order])
    np.testing.assert_array_equal(bottom.get_images()[0].get_array(), native)
    assert [t.get_text() for t in top.get_yticklabels()] == [f"{c:.0f}" for c in centres[order]]
    assert [t.get_text() for t in bottom.get_yticklabels()] == [f"{c:.0f}" for c in native_freqs]
    assert top.get_images()[0].get_extent()[:2] == [0.0, t_learned * dt_ms / 1000]
    assert bottom.get_images()[0].get_extent()[:2] == [0.0, t_native * dt_ms / 1000]
    assert bottom.get_xlim() == top.get_xlim() == (0.0, t_learned * dt_ms / 1000)
    assert bottom.get_xlabel() == "time (s)"
    lo, hi = np.percentile(learned, [1, 99])
    assert top.get_images()[0].get_clim() == pytest.approx((lo, hi))
    assert any("not bin-for-bin" in t.get_text() for t in top.texts)
    assert fig.get_suptitle() == "clip 1"


def test_spectrogram_comparison_labels_a_subset_of_many_channels():
    centres = np.geomspace(100, 20000, 34)[::-1]
    fig = spectrogram_comparison_figure(np.zeros((34, 10)), centres, np.zeros((34, 10)), centres, 5.0)
    top = fig.axes[0]
    ticks = top.get_yticks().astype(int)
    assert ticks[0] == 0 and ticks[-1] == 33 and len(ticks) == 8
    ascending = centres[::-1]
    assert [t.get_text() for t in top.get_yticklabels()] == [f"{ascending[i]:.0f}" for i in ticks]


def test_spectrogram_comparison_checks_shapes():
    with pytest.raises(ValueError, match="learned"):
        spectrogram_comparison_figure(np.zeros((3, 5)), np.ones(4), np.zeros((2, 5)), np.ones(2), 5.0)
    with pytest.raises(ValueError, match="dt_ms"):
        spectrogram_comparison_figure(np.zeros((3, 5)), np.ones(3), np.zeros((2, 5)), np.ones(2), 0.0)


def test_learnable_gammatone_initial_centres_are_its_erb_grid():
    gammatone = Gammatone(FS, HOP, f_min=300.0, f_max=16000.0, learn_centres=True)
    with torch.no_grad():
        gammatone.centre_logit.add_(0.1)
    info = gammatone.filterbank_info()
    np.testing.assert_allclose(info.initial_centres_hz, erb_centres(34, 300.0, 16000.0), rtol=1e-6)
    assert (info.drift > 0).all()
