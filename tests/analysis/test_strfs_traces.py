"""Tests for the STRF analysis (ground-truth STRFs, summaries, grid figure) and the prediction traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import PathCollection, QuadMesh
from matplotlib.figure import Figure

from strf_runner.analysis.strfs import strf_grid_figure, strf_summary, true_strfs
from strf_runner.analysis.traces import pick_neurons, prediction_traces_figure, traces_table
from strf_runner.models.linear import LinearSTRF

FREQS = 500.0 * 2.0 ** (np.arange(12) / 4)  # 500 Hz .. ~3.4 kHz, 1/4-octave spacing
DT_MS = 5.0


def make_truth() -> dict[str, np.ndarray]:
    """Two neurons: 0 at 1 kHz with a sideband at 2 kHz; 1 at 700 Hz without one. Kernels over 6 lags."""
    kernels = np.zeros((2, 2, 6), dtype=np.float32)
    kernels[0, 0] = [0.0, 0.5, 1.0, 0.3, -0.2, 0.0]  # excitatory peak at lag 2
    kernels[0, 1] = [0.0, 0.0, -0.2, -0.6, -0.1, 0.0]  # inhibitory trough at lag 3
    kernels[1, 0] = [0.2, 1.0, 0.4, 0.0, 0.0, 0.0]  # peak at lag 1
    return {
        "centre_hz": np.array([1000.0, 700.0], dtype=np.float32),
        "bandwidth_oct": np.array([0.5, 1.0], dtype=np.float32),
        "inhib_centre_hz": np.array([2000.0, np.nan], dtype=np.float32),
        "inhib_bandwidth_oct": np.array([0.5, np.nan], dtype=np.float32),
        "temporal_kernels": kernels,
    }


def test_true_strfs_peak_band_and_lag() -> None:
    truth = make_truth()
    strfs = true_strfs(truth, FREQS, n_lags=8)
    assert strfs.shape == (2, FREQS.size, 8)
    log_f = np.log2(FREQS)
    for i, (centre, lag) in enumerate([(1000.0, 2), (700.0, 1)]):
        band, index = np.unravel_index(strfs[i].argmax(), strfs[i].shape)
        assert band == np.abs(log_f - np.log2(centre)).argmin()
        assert index == 8 - 1 - lag
    # the sideband: negative weights at its band, at its trough lag
    band, index = np.unravel_index(strfs[0].argmin(), strfs[0].shape)
    assert FREQS[band] == pytest.approx(2000.0) and index == 8 - 1 - 3
    assert strfs[0, band, index] < 0
    # no sideband and a non-negative kernel: no negative weights
    assert strfs[1].min() >= 0.0
    # lags beyond L_true are zero; a shorter window keeps lags 0..L-1
    assert np.all(strfs[:, :, :2] == 0)
    short = true_strfs(truth, FREQS, n_lags=3)
    np.testing.assert_allclose(short, strfs[:, :, -3:])


def test_true_strfs_fwhm() -> None:
    fine = 1000.0 * 2.0 ** np.linspace(-2, 2, 801)  # 1/200-octave grid
    truth = make_truth()
    strfs = true_strfs(truth, fine, n_lags=6)
    profile = strfs[1, :, 6 - 1 - 1] / truth["temporal_kernels"][1, 0, 1]  # neuron 1: 1-octave FWHM at 700 Hz
    log_f = np.log2(fine / 700.0)
    peak = profile.max()
    for side in (-0.5, 0.5):
        assert profile[np.abs(log_f - side).argmin()] == pytest.approx(0.5 * peak, abs=0.01)


def test_true_strfs_lag_convention_matches_linear_strf() -> None:
    """Loaded into LinearSTRF, a true STRF's impulse response at lag k is the kernel at lag k."""
    truth = make_truth()
    strfs = true_strfs(truth, FREQS, n_lags=6)
    model = LinearSTRF(n_bands=FREQS.size, n_neurons=2, temporal_window_size=6, batch_norm=False).eval()
    with torch.no_grad():
        model.conv.weight.copy_(torch.as_tensor(strfs[:, None], dtype=torch.float32))
        model.conv.bias.zero_()
    np.testing.assert_allclose(model.strfs().numpy(), strfs, rtol=1e-6)
    band = int(np.abs(FREQS - 1000.0).argmin())
    x = torch.zeros(1, 1, FREQS.size, 20)
    x[0, 0, band, 5] = 1.0
    with torch.no_grad():
        y = model(x)[0, 0, 0].numpy()
    np.testing.assert_allclose(y[5:11], strfs[0, band, ::-1], rtol=1e-5, atol=1e-7)
    assert y[5 + 2] == pytest.approx(strfs[0, band].max(), rel=1e-5)  # the kernel peaks at lag 2
    assert np.all(y[:5] == 0)


def test_strf_summary() -> None:
    strfs = np.zeros((2, 3, 4))
    strfs[0, 1, 3] = 2.0  # lag 0 at 1 kHz
    strfs[0, 2, 0] = -0.5
    strfs[1, 0, 1] = 0.4
    strfs[1, 2, 2] = -1.5  # lag 1 at 4 kHz
    table = strf_summary(strfs, np.array([500.0, 1000.0, 4000.0]), dt_ms=5.0)
    assert list(table.columns) == ["best_frequency_hz", "peak_lag_ms", "excitatory_peak", "inhibitory_peak"]
    np.testing.assert_allclose(table["best_frequency_hz"], [1000.0, 4000.0])
    np.testing.assert_allclose(table["peak_lag_ms"], [0.0, 5.0])
    np.testing.assert_allclose(table["excitatory_peak"], [2.0, 0.4])
    np.testing.assert_allclose(table["inhibitory_peak"], [-0.5, -1.5])


def _grid_inputs(n: int = 6) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    strfs = rng.normal(size=(n, FREQS.size, 5))
    strfs[:, 0, 0] += 3.0  # asymmetric values: the colour limits must still be symmetric
    ids = [f"n{i}" for i in range(n)]
    scores = np.array([0.1, np.nan, 0.7, 0.4, np.nan, 0.55])[:n]
    return strfs, ids, scores


def _titled_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_title()]


def test_strf_grid_figure_order_nan_and_limits() -> None:
    strfs, ids, scores = _grid_inputs()
    fig = strf_grid_figure(strfs, FREQS, DT_MS, ids, scores, n_show=5)
    axes = _titled_axes(fig)
    titles = [ax.get_title() for ax in axes]
    assert titles == ["n2  cc_norm 0.70", "n5  cc_norm 0.55", "n3  cc_norm 0.40", "n0  cc_norm 0.10",
                      "n1  cc_norm nan"]
    for ax in axes:
        (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
        low, high = mesh.get_clim()
        assert low == -high and high > 0
        assert ax.get_yscale() == "log"
        assert "0 = current frame" in ax.get_xlabel()
    np.testing.assert_allclose(axes[0].collections[0].get_clim()[1], np.abs(strfs[2]).max())
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert any(label.endswith(" kHz") for label in labels) and any(label.endswith(" Hz") for label in labels)
    fig.canvas.draw()  # renders (layout, ticks, colorbars) without error


def test_strf_grid_figure_with_truth() -> None:
    strfs, ids, scores = _grid_inputs()
    truth = -strfs
    fig = strf_grid_figure(strfs, FREQS, DT_MS, ids, scores, n_show=3, truth=truth)
    titles = [ax.get_title() for ax in _titled_axes(fig)]
    assert titles == ["n2  true", "n2  cc_norm 0.70  learned", "n5  true", "n5  cc_norm 0.55  learned",
                      "n3  true", "n3  cc_norm 0.40  learned"]
    true_mesh = _titled_axes(fig)[0].collections[0]
    np.testing.assert_allclose(true_mesh.get_array().reshape(FREQS.size, 5), truth[2][:, ::-1])  # lag 0 left
    with pytest.raises(ValueError, match="truth"):
        strf_grid_figure(strfs, FREQS, DT_MS, ids, scores, truth=truth[:, :, :2])


def test_pick_neurons() -> None:
    scores = np.array([0.3, np.nan, 0.9, 0.1, 0.5, np.nan, 0.45])
    assert pick_neurons(scores) == {"best": 2, "median": 6, "worst": 3}  # median of finite = 0.45
    with pytest.raises(ValueError, match="finite"):
        pick_neurons(np.array([np.nan, np.nan]))


def _trace_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(2)
    responses = rng.poisson(0.4, size=(4, 5, 30)).astype(float)
    responses[0, 1] = np.nan  # a missing repeat
    responses[0, :, 7] = np.nan  # a bin missing in every repeat
    prediction = rng.uniform(0, 1, size=(4, 30))
    scores = np.array([0.8, np.nan, 0.2, 0.5])
    return responses, prediction, scores, ["a", "b", "c", "d"]


def test_prediction_traces_figure() -> None:
    responses, prediction, scores, ids = _trace_inputs()
    fig = prediction_traces_figure(responses, prediction, scores, ids, DT_MS)
    rasters = _titled_axes(fig)
    assert [ax.get_title() for ax in rasters] == ["best: a  cc_norm 0.80", "median: d  cc_norm 0.50",
                                                  "worst: c  cc_norm 0.20"]
    raster = rasters[0]
    (dots,) = [c for c in raster.collections if isinstance(c, PathCollection)]
    offsets = np.asarray(dots.get_offsets())
    repeat, bins = np.nonzero(responses[0] > 0)
    assert len(offsets) == len(repeat) == np.sum(np.nan_to_num(responses[0]) > 0)
    np.testing.assert_allclose(offsets[:, 0], bins * DT_MS / 1000.0)
    np.testing.assert_allclose(offsets[:, 1], repeat)
    assert 1 not in offsets[:, 1]  # the missing repeat has no dots
    traces = fig.axes[fig.axes.index(raster) + 1]
    psth_line, prediction_line = traces.get_lines()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(responses[0], axis=0)
    np.testing.assert_allclose(psth_line.get_ydata(), expected, equal_nan=True)
    np.testing.assert_allclose(prediction_line.get_ydata(), prediction[0])
    fig.canvas.draw()


def test_traces_table() -> None:
    responses, prediction, scores, ids = _trace_inputs()
    picks = pick_neurons(scores)
    table = traces_table(responses, prediction, picks, ids, DT_MS)
    assert isinstance(table, pd.DataFrame)
    assert table.shape == (3 * 30, 5)
    assert list(table.columns) == ["label", "neuron", "time_s", "psth", "prediction"]
    best = table[table["label"] == "best"]
    assert set(best["neuron"]) == {"a"}
    assert np.isnan(best["psth"].iloc[7])
    np.testing.assert_allclose(best["time_s"].iloc[:2], [0.0, 0.005])
    np.testing.assert_allclose(best["prediction"], prediction[0])
    with pytest.raises(ValueError, match="pick"):
        traces_table(responses, prediction, {"x": 9}, ids, DT_MS)
