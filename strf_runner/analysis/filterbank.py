"""Interpretability of the waveform front-ends: where their filters sit, how far training moved them,
what each filter passes, and how a learned spectrogram compares with the native one.

A front-end describes its own filters (``Frontend.filterbank_info``, ``Frontend.magnitude_responses``;
None where it has none), so a new front-end needs nothing here. ``filterbank_table`` lists the
centres per channel, ``magnitude_responses_db`` puts the responses in dB, and the two figure
builders plot them. Figures are built on ``matplotlib.figure.Figure`` directly (no
pyplot); write them with ``strf_runner.atomic.save_png``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from strf_runner.frontends.base import FilterbankInfo, Frontend

DB_FLOOR = 1e-12  # |H| floor before the log: -240 dB
PLOT_FLOOR_DB = -60.0
_N_HZ_TICKS = 8


def filterbank_table(info: FilterbankInfo) -> pd.DataFrame:
    """One row per channel, in channel order: channel, initial_hz, learned_hz, drift (relative, not %),
    and for SincNet initial_low_hz, initial_high_hz, learned_low_hz, learned_high_hz."""
    table = pd.DataFrame(
        {
            "channel": np.arange(info.n_channels),
            "initial_hz": info.initial_centres_hz,
            "learned_hz": info.centres_hz,
            "drift": info.drift,
        }
    )
    if info.band_edges_hz is not None and info.initial_band_edges_hz is not None:
        table["initial_low_hz"], table["initial_high_hz"] = info.initial_band_edges_hz.T
        table["learned_low_hz"], table["learned_high_hz"] = info.band_edges_hz.T
    return table


def _to_db(magnitude: np.ndarray) -> np.ndarray:
    """(F, K) 20 log10(max(|H|, 1e-12)), shifted so that each row's peak is 0 dB."""
    db = 20 * np.log10(np.maximum(magnitude, DB_FLOOR))
    return db - db.max(axis=1, keepdims=True)


def magnitude_responses_db(frontend: Frontend, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray] | None:
    """``frontend.magnitude_responses`` in dB, each channel's peak at 0 dB: (freqs_hz (K,), dB (F, K)),
    or None for a front-end without filter kernels."""
    responses = frontend.magnitude_responses(n_fft)
    return None if responses is None else (responses[0], _to_db(responses[1]))


def filterbank_figure(info: FilterbankInfo, responses: tuple[np.ndarray, np.ndarray] | None = None) -> Figure:
    """Centres, drift and (optionally) magnitude responses of one front-end's filterbank.

    Panels, stacked: (1) centre frequency per channel on a log-Hz axis, initial (hollow) and learned
    (filled) joined per channel, SincNet's band edges as vertical bars (initial left, learned right);
    a fixed bank shows its grid and a "fixed" note; (2) relative drift per channel in %, the mean as
    a horizontal line and in the title; (3) with ``responses`` = (freqs_hz (K,), magnitude_db (F, K))
    from ``magnitude_responses``, every channel's response in dB (clipped at -60) on a log-Hz axis,
    coloured by channel index. Raises ValueError when ``responses`` does not have F rows.
    """
    if responses is not None and responses[1].shape != (info.n_channels, len(responses[0])):
        raise ValueError(
            f"responses must be freqs (K,) and magnitude_db ({info.n_channels}, K); "
            f"got {responses[0].shape} and {responses[1].shape}"
        )
    n_panels = 2 if responses is None else 3
    fig = Figure(figsize=(9, 3.2 * n_panels), layout="constrained")
    axes = fig.subplots(n_panels, 1)
    _centres_panel(axes[0], info)
    _drift_panel(axes[1], info)
    if responses is not None:
        _responses_panel(axes[2], *responses)
    return fig


def _centres_panel(ax: Axes, info: FilterbankInfo) -> None:
    """Initial vs learned centre per channel on a log-Hz axis (see ``filterbank_figure``)."""
    channels = np.arange(info.n_channels)
    if info.learnable:
        ax.vlines(channels, info.initial_centres_hz, info.centres_hz, color="grey", linewidth=1)
        ax.plot(
            channels,
            info.initial_centres_hz,
            "o--",
            color="tab:blue",
            markerfacecolor="none",
            linewidth=0.8,
            label="initial",
        )
        ax.plot(channels, info.centres_hz, "o-", color="tab:orange", linewidth=0.8, label="learned")
        title = f"{info.kind}: centre frequencies, initial vs learned"
    else:
        ax.plot(channels, info.centres_hz, "o-", color="tab:blue", linewidth=0.8, label="centre")
        ax.text(
            0.02,
            0.95,
            "fixed",
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "grey", "pad": 2},
        )
        title = f"{info.kind}: centre frequencies (fixed)"
    if info.band_edges_hz is not None and info.initial_band_edges_hz is not None:
        ax.vlines(
            channels - 0.15,
            *info.initial_band_edges_hz.T,
            color="tab:blue",
            alpha=0.4,
            linewidth=3,
            label="initial band",
        )
        ax.vlines(
            channels + 0.15, *info.band_edges_hz.T, color="tab:orange", alpha=0.4, linewidth=3, label="learned band"
        )
    ax.set_yscale("log")
    ax.set_xlabel("channel")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")


def _drift_panel(ax: Axes, info: FilterbankInfo) -> None:
    """Relative drift per channel in %, the mean as a horizontal line."""
    mean = 100 * info.mean_drift
    ax.bar(np.arange(info.n_channels), 100 * info.drift, color="tab:orange")
    ax.axhline(mean, color="black", linestyle="--", linewidth=1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("channel")
    ax.set_ylabel("|c - c0| / c0 (%)")
    ax.set_title(f"relative centre drift (dashed: mean {mean:.2f} %)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _responses_panel(ax: Axes, freqs_hz: np.ndarray, magnitude_db: np.ndarray) -> None:
    """Every channel's magnitude response (dB, clipped at -60) on a log-Hz axis, DC left out."""
    positive = freqs_hz > 0
    cmap = colormaps["viridis"]
    n = len(magnitude_db)
    for i, row in enumerate(magnitude_db):
        ax.plot(
            freqs_hz[positive], np.maximum(row[positive], PLOT_FLOOR_DB), color=cmap(i / max(n - 1, 1)), linewidth=0.8
        )
    ax.set_xscale("log")
    ax.set_ylim(PLOT_FLOOR_DB, 3)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("magnitude (dB re peak)")
    ax.set_title("filter magnitude responses (colour: channel index, dark = 0)", fontsize=10)
    ax.grid(alpha=0.3, which="both")


def spectrogram_comparison_figure(
    learned: np.ndarray,
    learned_centres_hz: np.ndarray,
    native: np.ndarray,
    native_freqs_hz: np.ndarray,
    dt_ms: float,
    title: str = "",
) -> Figure:
    """A learned front-end's spectrogram above the dataset's native one, on a shared time axis.

    learned: (F, T) front-end output (one clip, the (B, 1) axes dropped); learned_centres_hz: (F,)
    its channels' centres (e.g. ``FilterbankInfo.centres_hz``). native: (F', T') with band
    frequencies native_freqs_hz (F',). dt_ms: bin width; frame t spans [t, t + 1) * dt_ms / 1000 s.
    Each panel's rows are sorted by frequency (ascending, bottom to top) and labelled with those
    frequencies in Hz; colour limits are the panel's own 1st and 99th percentiles. Axes: the learned
    image, the native image, then their colour bars. Raises ValueError on mismatched shapes or dt_ms <= 0.
    """
    for name, image, freqs in (("learned", learned, learned_centres_hz), ("native", native, native_freqs_hz)):
        if image.ndim != 2 or freqs.shape != (image.shape[0],):
            raise ValueError(f"{name} must be (F, T) with {name} frequencies (F,); got {image.shape}, {freqs.shape}")
    if dt_ms <= 0:
        raise ValueError(f"dt_ms must be > 0, got {dt_ms}")
    fig = Figure(figsize=(10, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    spectrogram_panel(top, learned, learned_centres_hz, dt_ms, "learned channel centre (Hz, sorted)")
    spectrogram_panel(bottom, native, native_freqs_hz, dt_ms, "native band (Hz)")
    top.text(
        0.01,
        1.02,
        "frequency axes are not bin-for-bin comparable: each panel is labelled in its own Hz",
        transform=top.transAxes,
        ha="left",
        va="bottom",
        fontsize=7,
        color="dimgrey",
    )
    bottom.set_xlim(0, max(learned.shape[1], native.shape[1]) * dt_ms / 1000)
    bottom.set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return fig


def spectrogram_panel(ax: Axes, image: np.ndarray, freqs_hz: np.ndarray, dt_ms: float, ylabel: str) -> None:
    """``image`` (F, T) with rows sorted by ``freqs_hz`` bottom to top, Hz tick labels, a colour bar."""
    order = np.argsort(freqs_hz, kind="stable")
    rows, freqs = image[order], freqs_hz[order]
    vmin, vmax = np.nanpercentile(rows, [1, 99])
    n_rows, n_frames = rows.shape
    shown = ax.imshow(
        rows,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        vmin=vmin,
        vmax=vmax,
        extent=(0.0, n_frames * dt_ms / 1000, -0.5, n_rows - 0.5),
    )
    ticks = np.unique(np.linspace(0, n_rows - 1, min(n_rows, _N_HZ_TICKS)).round().astype(int))
    ax.set_yticks(ticks, [f"{freqs[i]:.0f}" for i in ticks])
    ax.set_ylabel(ylabel)
    ax.figure.colorbar(shown, ax=ax, pad=0.01)
