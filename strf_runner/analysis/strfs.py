"""STRF analysis: ground-truth STRFs of the synthetic neurons, per-neuron STRF summaries, and a grid figure
of the best-predicted neurons' STRFs (optionally beside their ground truth).

STRF arrays are (N, F, L) in the layout of ``LinearSTRF.strfs()``: lag index L-1 is lag 0 (the current
frame), index L-1-k is lag k bins. Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_NEURONS_PER_ROW = 4
_CMAP = "RdBu_r"


def true_strfs(truth: dict[str, np.ndarray], freqs_hz: np.ndarray, n_lags: int) -> np.ndarray:
    """Ground-truth STRFs of the synthetic neurons on the frequency grid ``freqs_hz``, (N, F, L) float64.

    ``truth`` holds the ``SynthNeurons`` fields ``centre_hz``, ``bandwidth_oct``, ``inhib_centre_hz``,
    ``inhib_bandwidth_oct`` (N,) and ``temporal_kernels`` (N, 2, L_true) at lags 0..L_true-1 bins (input 0 =
    excitatory band, input 1 = inhibitory sideband). Per input, the spectral profile is a Gaussian in log2
    frequency with the input's FWHM (octaves) and peak 1 at its centre, times the input's temporal kernel at
    lags 0..min(L, L_true)-1; the two inputs are summed, NaN sidebands skipped. Lags follow
    ``LinearSTRF.strfs()``: index L-1 is lag 0 (the current frame); lags beyond L_true are zero.

    This is a separable, linear sketch of a nonlinear neuron: the synthetic neurons' adaptive gain control,
    compressive root and output nonlinearity are not in it, nor their band filters' frequency floor
    (``MIN_FWHM_HZ`` is already in the stored bandwidths) or the envelope extraction. It shows where in
    frequency and lag a neuron's inputs sit and with which sign, not the weights a linear model should learn.
    """
    freqs_hz = np.asarray(freqs_hz, dtype=float)
    if freqs_hz.ndim != 1 or not (freqs_hz > 0).all():
        raise ValueError(f"freqs_hz must be a 1-D array of positive frequencies, got shape {freqs_hz.shape}")
    if n_lags < 1:
        raise ValueError(f"n_lags must be >= 1, got {n_lags}")
    kernels = np.asarray(truth["temporal_kernels"], dtype=float)
    n_neurons = kernels.shape[0]
    n_used = min(n_lags, kernels.shape[2])
    log_f = np.log2(freqs_hz)
    out = np.zeros((n_neurons, freqs_hz.size, n_lags))
    inputs = (("centre_hz", "bandwidth_oct"), ("inhib_centre_hz", "inhib_bandwidth_oct"))
    for k, (centre_key, width_key) in enumerate(inputs):
        centre = np.asarray(truth[centre_key], dtype=float)
        sigma = np.asarray(truth[width_key], dtype=float) / _FWHM_PER_SIGMA
        present = np.isfinite(centre) & np.isfinite(sigma)
        profile = np.zeros((n_neurons, freqs_hz.size))
        z = (log_f[None, :] - np.log2(centre[present])[:, None]) / sigma[present][:, None]
        profile[present] = np.exp(-0.5 * z**2)
        lagged = kernels[:, k, :n_used][:, ::-1]  # lag n_used-1 .. 0
        out[:, :, n_lags - n_used:] += profile[:, :, None] * lagged[:, None, :]
    return out


def strf_summary(strfs: np.ndarray, freqs_hz: np.ndarray, dt_ms: float) -> pd.DataFrame:
    """Per-neuron summary of STRFs (N, F, L) (lag index L-1 = lag 0), one row per neuron in order.

    Columns: ``best_frequency_hz`` and ``peak_lag_ms`` (frequency and lag of the largest |weight|, lag 0 =
    the current frame; the first such weight on ties), ``excitatory_peak`` (max weight) and
    ``inhibitory_peak`` (min weight).
    """
    strfs = np.asarray(strfs, dtype=float)
    freqs_hz = np.asarray(freqs_hz, dtype=float)
    _check_strfs(strfs, freqs_hz)
    n_neurons, _, n_lags = strfs.shape
    flat = np.abs(strfs).reshape(n_neurons, -1).argmax(axis=1)
    band, lag_index = np.unravel_index(flat, strfs.shape[1:])
    return pd.DataFrame(
        {
            "best_frequency_hz": freqs_hz[band],
            "peak_lag_ms": (n_lags - 1 - lag_index) * dt_ms,
            "excitatory_peak": strfs.max(axis=(1, 2)),
            "inhibitory_peak": strfs.min(axis=(1, 2)),
        }
    )


def strf_grid_figure(
    strfs: np.ndarray,
    freqs_hz: np.ndarray,
    dt_ms: float,
    neuron_ids: list[str],
    scores: np.ndarray,
    n_show: int = 12,
    truth: np.ndarray | None = None,
) -> Figure:
    """Grid of the STRFs (N, F, L) (lag index L-1 = lag 0) of the ``n_show`` best-predicted neurons.

    Neurons are ordered by ``scores`` (N,) (test cc_norm), highest first, NaN scores last. Each panel is an
    image of frequency (log y, ticks in Hz / kHz; ``freqs_hz`` (F,) positive and increasing) by lag in ms
    (x, lag 0 = the current frame at the left), diverging colormap with limits symmetric about 0 per panel,
    titled ``"<id>  cc_norm 0.xx"``. With ``truth`` (N, F, L), e.g. from ``true_strfs``, each neuron gets two
    panels side by side, true then learned, titled ``"<id>  true"`` and ``"<id>  cc_norm 0.xx  learned"``.
    Raises ValueError on mismatched shapes or non-increasing frequencies.
    """
    strfs = np.asarray(strfs, dtype=float)
    freqs_hz = np.asarray(freqs_hz, dtype=float)
    scores = np.asarray(scores, dtype=float)
    _check_strfs(strfs, freqs_hz)
    n_neurons = strfs.shape[0]
    if not (np.diff(freqs_hz) > 0).all():
        raise ValueError("freqs_hz must be strictly increasing")
    if scores.shape != (n_neurons,) or len(neuron_ids) != n_neurons:
        raise ValueError(
            f"scores {scores.shape} and neuron_ids ({len(neuron_ids)}) must have one entry per neuron ({n_neurons})"
        )
    if truth is not None:
        truth = np.asarray(truth, dtype=float)
        if truth.shape != strfs.shape:
            raise ValueError(f"truth has shape {truth.shape}, strfs {strfs.shape}: they must match")
    if n_show < 1:
        raise ValueError(f"n_show must be >= 1, got {n_show}")

    order = np.argsort(np.where(np.isfinite(scores), -scores, np.inf), kind="stable")[:n_show]
    per_neuron = 1 if truth is None else 2
    per_row = min(_NEURONS_PER_ROW, order.size)
    nrows = math.ceil(order.size / per_row)
    ncols = per_row * per_neuron
    fig = Figure(figsize=(3.2 * ncols, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    freq_edges = _log_edges(freqs_hz)
    lag_edges = (np.arange(strfs.shape[2] + 1) - 0.5) * dt_ms
    for slot, i in enumerate(order):
        row, col = divmod(slot, per_row)
        title = f"{neuron_ids[i]}  cc_norm {scores[i]:.2f}"
        panels = [(strfs[i], title)] if truth is None else [(truth[i], f"{neuron_ids[i]}  true"),
                                                             (strfs[i], f"{title}  learned")]
        for k, (strf, panel_title) in enumerate(panels):
            _strf_panel(fig, axes[row, col * per_neuron + k], strf, freq_edges, lag_edges, panel_title)
    for ax in axes.flat[order.size * per_neuron:]:
        ax.set_axis_off()
    return fig


def _check_strfs(strfs: np.ndarray, freqs_hz: np.ndarray) -> None:
    """Raise ValueError unless ``strfs`` is (N, F, L) with F = len(freqs_hz) and N, L >= 1."""
    if strfs.ndim != 3 or freqs_hz.shape != (strfs.shape[1],) or 0 in strfs.shape:
        raise ValueError(f"strfs must be (N, F, L) with F = len(freqs_hz) = {freqs_hz.size}; got {strfs.shape}")


def _log_edges(freqs_hz: np.ndarray) -> np.ndarray:
    """Band edges (F+1,) halfway between centres (F,) in log2 frequency; outer edges half a step out."""
    log_f = np.log2(freqs_hz)
    step = np.diff(log_f) if log_f.size > 1 else np.ones(1)
    inner = 0.5 * (log_f[1:] + log_f[:-1])
    return 2.0 ** np.concatenate([[log_f[0] - 0.5 * step[0]], inner, [log_f[-1] + 0.5 * step[-1]]])


def _hz_label(value: float, _pos: int | None = None) -> str:
    """A frequency tick label: ``500 Hz``, ``2 kHz``, ``1.5 kHz``."""
    return f"{value / 1000:g} kHz" if value >= 1000 else f"{value:g} Hz"


def _strf_panel(
    fig: Figure, ax: Axes, strf: np.ndarray, freq_edges: np.ndarray, lag_edges: np.ndarray, title: str
) -> None:
    """One STRF (F, L) (lag index L-1 = lag 0) as an image, lag 0 at the left, symmetric colour limits."""
    limit = float(np.nanmax(np.abs(strf))) if np.isfinite(strf).any() else 0.0
    limit = limit or 1.0
    mesh = ax.pcolormesh(lag_edges, freq_edges, strf[:, ::-1], cmap=_CMAP, vmin=-limit, vmax=limit)
    ax.set_yscale("log")
    ax.set_ylim(freq_edges[0], freq_edges[-1])
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(_hz_label))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelsize=7)
    ax.set_xlabel("lag (ms, 0 = current frame)", fontsize=7)
    ax.set_ylabel("frequency", fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.colorbar(mesh, ax=ax, shrink=0.8).ax.tick_params(labelsize=6)
