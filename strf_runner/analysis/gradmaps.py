"""Gradient maps of a fitted encoding model: what input drives each neuron's prediction.

- ``strf_gradmap``: the spectrogram-space receptive field, the gradient of each neuron's output at the last
  frame with respect to a null spectrogram (the front-end bypassed); for a linear readout in eval mode it is
  the STRF scaled by the batch norm.
- ``waveform_gradmap``: the gradient of the outputs with respect to the audio samples of a real stimulus,
  through a waveform front-end; ``mass_span_ms`` measures how far back its mass reaches.
- ``write_wav`` writes such a gradient (or any signal) as an audible WAV file; ``receptive_field_figure``
  and ``strf_gradmap_figure`` plot the maps.

Both gradient functions force eval mode (batch norm on running statistics, no dropout) and restore every
submodule's previous train/eval flag afterwards (the spec's DECIDE). They use ``torch.autograd.grad``, so
parameters' ``.grad`` are left untouched. Figures are built on ``matplotlib.figure.Figure`` (no pyplot).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.io import wavfile
from torch import nn

from strf_runner.atomic import atomic_path
from strf_runner.errors import ShapeError
from strf_runner.models.encoding import EncodingModel

DEFAULT_STRF_FRAMES = 20
"""T_eff of ``strf_gradmap`` for a readout without a ``window`` attribute (e.g. DNet, NRF, StateNet)."""

REDUCES = ("last", "sum", "peak")
_FIGURE_WINDOW_MS = 200.0
_WAV_PEAK = 0.99


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode; afterwards restore each submodule's own training flag."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter or buffer (CPU float32 if it has none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def strf_gradmap(model: EncodingModel, n_frames: int | None = None) -> np.ndarray:
    """Spectrogram-space gradient map (spec "STRF gradient map"), shape (N, F, T_eff).

    N null stimuli, zeros (N, 1, F, T_eff) with F = ``model.frontend.out_channels``, go straight into
    ``model.readout`` (the front-end bypassed, so waveform models get a spectrogram-space map too); the
    objective is sum_n out[n, n, 0, -1]: batch item n drives only neuron n, at the last frame. Index T_eff - 1
    of the result is that evaluated frame, index T_eff - 1 - k lag k. T_eff = ``n_frames``, else the
    readout's ``window`` (its temporal window), else ``DEFAULT_STRF_FRAMES``. Computed in eval mode.
    """
    t_eff = n_frames if n_frames is not None else getattr(model.readout, "window", DEFAULT_STRF_FRAMES)
    if t_eff < 1:
        raise ValueError(f"strf_gradmap: n_frames must be >= 1, got {t_eff}")
    device, dtype = _device_dtype(model)
    shape = (1, model.frontend.out_channels, t_eff)
    with _eval_mode(model), torch.enable_grad():
        with torch.no_grad():
            n_neurons = model.readout(torch.zeros((1, *shape), device=device, dtype=dtype)).shape[1]
        null = torch.zeros((n_neurons, *shape), device=device, dtype=dtype, requires_grad=True)
        out = model.readout(null)  # (N, N, 1, T_eff)
        idx = torch.arange(n_neurons, device=device)
        (grad,) = torch.autograd.grad(out[idx, idx, 0, -1].sum(), null)
    return grad[:, 0].detach().cpu().numpy()


def waveform_gradmap(
    model: EncodingModel,
    stim: torch.Tensor,
    neuron: int | None = None,
    reduce: str = "last",
    frame: int | None = None,
) -> np.ndarray:
    """Gradient of the model's output with respect to the audio samples (spec "Waveform gradient map").

    stim: (T_audio,) or (1, 1, T_audio), T_audio a multiple of the front-end's hop; use a real stimulus,
    not silence (PCEN is ill-conditioned at zero energy). neuron: one neuron's index, or None for all.
    frame: evaluate output frames 0 .. ``frame`` only (default: all T frames, i.e. frame T - 1).
    reduce: the objective, summed over the selected neurons, on those frames:
    "last" = output at frame ``frame`` (a receptive field), "sum" = sum over frames (a whole-stimulus
    saliency map), "peak" = each neuron's temporal maximum. Returns the gradient as (T_audio,); by
    causality it is exactly zero from sample (frame + 1) * hop on. Computed in eval mode.
    Raises ValueError for a spectrogram front-end, an unknown ``reduce``, or ``neuron``/``frame`` out of range.
    """
    if reduce not in REDUCES:
        raise ValueError(f"waveform_gradmap: reduce={reduce!r} is not one of {', '.join(REDUCES)}")
    if model.frontend.view != "waveform":
        raise ValueError(
            f"waveform_gradmap needs a waveform front-end; {type(model.frontend).__name__} reads the "
            f"{model.frontend.view!r} view (use strf_gradmap for a spectrogram-space map)"
        )
    stim = torch.as_tensor(stim)
    if not (stim.dim() == 1 or (stim.dim() == 3 and stim.shape[:2] == (1, 1))):
        raise ShapeError(f"waveform_gradmap: stim must be (T_audio,) or (1, 1, T_audio); got {tuple(stim.shape)}")
    device, dtype = _device_dtype(model)
    x = stim.detach().reshape(1, 1, -1).to(device=device, dtype=dtype).requires_grad_(True)
    with _eval_mode(model), torch.enable_grad():
        out = model(x)[0, :, 0]  # (N, T)
        n_neurons, t_len = out.shape
        if neuron is not None and not 0 <= neuron < n_neurons:
            raise ValueError(f"waveform_gradmap: neuron={neuron} is out of range for {n_neurons} neurons")
        if frame is not None and not 0 <= frame < t_len:
            raise ValueError(f"waveform_gradmap: frame={frame} is out of range for {t_len} frames")
        out = out[slice(None) if neuron is None else [neuron], : t_len if frame is None else frame + 1]
        if reduce == "last":
            objective = out[:, -1].sum()
        elif reduce == "sum":
            objective = out.sum()
        else:
            objective = out.max(dim=-1).values.sum()
        (grad,) = torch.autograd.grad(objective, x)
    return grad.reshape(-1).detach().cpu().numpy()


def mass_span_ms(gradient: np.ndarray, fs: float, mass: float = 0.99) -> float:
    """Time span in ms, counted back from the last sample, holding ``mass`` of the L1 mass sum |g|.

    gradient: (T,). The smallest d with sum(|g[T-d:]|) >= mass * sum(|g|), returned as d / fs * 1000.
    NaN for an all-zero gradient. For a reduce="last" map this is the receptive field's reach.
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass_span_ms: mass must be in (0, 1], got {mass}")
    tail = np.cumsum(np.abs(np.asarray(gradient, dtype=np.float64).reshape(-1))[::-1])  # tail[k]: last k+1
    if tail.size == 0 or tail[-1] == 0:
        return math.nan
    d = min(int(np.searchsorted(tail, mass * tail[-1], side="left")) + 1, tail.size)
    return d / fs * 1000.0


def write_wav(path: str | os.PathLike, audio: np.ndarray, fs: float) -> Path:
    """Write mono ``audio`` (T,) as a 16-bit PCM WAV at round(fs) Hz, atomically; return the path.

    The signal is peak-normalised to 0.99 of full scale (all-zero audio stays silent).
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ShapeError(f"write_wav: audio must be mono (T,); got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("write_wav: audio contains NaN or inf")
    peak = np.abs(audio).max(initial=0.0)
    scaled = audio * (_WAV_PEAK / peak) if peak > 0 else audio
    pcm = np.round(scaled * np.iinfo(np.int16).max).astype(np.int16)
    path = Path(path)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, round(fs), pcm)
    return path


def receptive_field_figure(
    gradient: np.ndarray, stimulus: np.ndarray, fs: float, span_ms: float, title: str = ""
) -> Figure:
    """The waveform gradient of one neuron (top) above the stimulus (bottom), both (T_audio,).

    Shows the last 200 ms before the end of the evaluated frame (longer if ``span_ms`` reaches further
    back), time in ms relative to that end; the span (e.g. from ``mass_span_ms``) is shaded on both axes
    unless it is NaN.
    """
    gradient, stimulus = np.asarray(gradient).reshape(-1), np.asarray(stimulus).reshape(-1)
    if gradient.shape != stimulus.shape:
        raise ShapeError(f"receptive_field_figure: gradient {gradient.shape} and stimulus {stimulus.shape} differ")
    window_ms = max(_FIGURE_WINDOW_MS, 1.1 * span_ms) if math.isfinite(span_ms) else _FIGURE_WINDOW_MS
    n = min(gradient.size, max(1, round(window_ms * fs / 1000)))
    t_ms = np.arange(-n, 0) / fs * 1000.0
    fig = Figure(figsize=(8, 5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(t_ms, gradient[-n:], color="tab:red", linewidth=0.8)
    top.set_ylabel("d output / d sample")
    bottom.plot(t_ms, stimulus[-n:], color="black", linewidth=0.6)
    bottom.set_ylabel("stimulus")
    bottom.set_xlabel("time relative to the end of the evaluated frame (ms)")
    for ax in (top, bottom):
        ax.axhline(0, color="grey", linewidth=0.5)
        if math.isfinite(span_ms):
            ax.axvspan(-span_ms, 0, color="tab:blue", alpha=0.12, linewidth=0)
    label = f"span {span_ms:.1f} ms" if math.isfinite(span_ms) else "span: n/a (zero gradient)"
    top.text(0.01, 0.97, label, transform=top.transAxes, ha="left", va="top", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def strf_gradmap_figure(
    maps: np.ndarray, freqs_hz: np.ndarray, dt_ms: float, neuron_ids: list[str], neurons: list[int]
) -> Figure:
    """Grid of spectrogram-space gradient maps, one panel (plus its colour bar) per index in ``neurons``.

    maps: (N, F, T) from ``strf_gradmap`` (index T-1 = the evaluated frame); freqs_hz: (F,) band centres,
    positive; dt_ms: frame length; neuron_ids: (N,) names for the titles. Panel: frequency (Hz, log) against
    lag (ms, lag 0 = the evaluated frame), diverging colour map with limits symmetric about 0 per panel.
    """
    maps, freqs_hz = np.asarray(maps), np.asarray(freqs_hz, dtype=np.float64)
    if maps.ndim != 3 or freqs_hz.shape != (maps.shape[1],) or len(neuron_ids) != maps.shape[0]:
        raise ShapeError(
            f"strf_gradmap_figure: need maps (N, F, T), freqs_hz (F,), N neuron_ids; got {maps.shape}, "
            f"{freqs_hz.shape}, {len(neuron_ids)}"
        )
    if not (freqs_hz > 0).all():
        raise ValueError("strf_gradmap_figure: freqs_hz must be positive (log frequency axis)")
    if not neurons or not all(0 <= n < maps.shape[0] for n in neurons):
        raise ValueError(f"strf_gradmap_figure: neurons must be a non-empty list of indices < {maps.shape[0]}")
    ncols = min(4, len(neurons))
    nrows = math.ceil(len(neurons) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.8 * nrows), layout="constrained")
    lags_ms = np.arange(maps.shape[2]) * dt_ms
    for i, n in enumerate(neurons):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        limit = float(np.abs(maps[n]).max()) or 1.0
        mesh = ax.pcolormesh(
            lags_ms,
            freqs_hz,
            maps[n, :, ::-1],
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            shading="nearest",
            rasterized=True,
        )
        ax.set_yscale("log")
        ax.set_title(str(neuron_ids[n]), fontsize=9)
        ax.set_xlabel("lag (ms)", fontsize=8)
        ax.set_ylabel("frequency (Hz)", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(mesh, ax=ax).ax.tick_params(labelsize=7)
    return fig
