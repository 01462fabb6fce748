"""Prediction traces for one test stimulus: the best, median and worst predicted neurons' spike rasters
above their trial-averaged response and the model's prediction, plus the long table behind the figure.

Times are bin starts, ``k * dt_ms / 1000`` s for bin k. Figures are built on ``matplotlib.figure.Figure``
directly (no pyplot).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def pick_neurons(scores: np.ndarray) -> dict[str, int]:
    """Indices into ``scores`` (N,) of the best, median and worst neurons among finite scores.

    Returns ``{"best": i, "median": j, "worst": k}``; the median neuron is the one whose score is closest to
    the median of the finite scores (the first such on ties). Raises ValueError if no score is finite.
    """
    scores = np.asarray(scores, dtype=float)
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size == 0:
        raise ValueError("no finite score: cannot pick best, median and worst neurons")
    values = scores[finite]
    median = np.median(values)
    return {
        "best": int(finite[values.argmax()]),
        "median": int(finite[np.abs(values - median).argmin()]),
        "worst": int(finite[values.argmin()]),
    }


def prediction_traces_figure(
    responses: np.ndarray,
    prediction: np.ndarray,
    scores: np.ndarray,
    neuron_ids: list[str],
    dt_ms: float,
    picks: dict[str, int] | None = None,
) -> Figure:
    """Raster and traces of picked neurons for one stimulus.

    ``responses`` (N, R, T): spike counts per bin (NaN = missing repeat or bin); ``prediction`` (N, T): the
    model's prediction for the same stimulus; ``scores`` (N,): test cc_norm; ``picks``: label -> neuron
    index, by default ``pick_neurons(scores)``. Per pick, in order: a raster of the repeats (one row per
    repeat, repeat 0 at the top, a dot at every bin with count > 0) titled ``"<label>: <id>  cc_norm 0.xx"``,
    above the trial-averaged response (NaN-mean over repeats) and the prediction against time in s.
    Raises ValueError on mismatched shapes or an empty or out-of-range pick.
    """
    responses, prediction = _check_traces(responses, prediction, neuron_ids)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (responses.shape[0],):
        raise ValueError(f"scores has shape {scores.shape}, expected ({responses.shape[0]},)")
    picks = pick_neurons(scores) if picks is None else picks
    _check_picks(picks, responses.shape[0])
    n_repeats, n_bins = responses.shape[1:]
    time_s = np.arange(n_bins) * dt_ms / 1000.0
    psth = _psth(responses)

    fig = Figure(figsize=(10.0, 3.4 * len(picks)), layout="constrained")
    grid = fig.add_gridspec(2 * len(picks), 1, height_ratios=[1.0, 1.4] * len(picks))
    for k, (label, i) in enumerate(picks.items()):
        raster = fig.add_subplot(grid[2 * k, 0])
        traces = fig.add_subplot(grid[2 * k + 1, 0], sharex=raster)
        repeat, bin_index = np.nonzero(responses[i] > 0)
        raster.scatter(time_s[bin_index], repeat, s=20, marker="|", color="black", linewidths=1.0)
        raster.set_ylim(n_repeats - 0.5, -0.5)
        raster.set_ylabel("repeat", fontsize=8)
        raster.tick_params(labelbottom=False, labelsize=7)
        raster.set_title(f"{label}: {neuron_ids[i]}  cc_norm {scores[i]:.2f}", fontsize=9)
        traces.plot(time_s, psth[i], color="black", linewidth=1.0, label="trial average")
        traces.plot(time_s, prediction[i], color="tab:red", linewidth=1.0, label="prediction")
        traces.set_xlim(time_s[0], time_s[-1] + dt_ms / 1000.0)
        traces.set_ylabel("spikes / bin", fontsize=8)
        traces.tick_params(labelsize=7)
        traces.grid(alpha=0.3)
        if k == 0:
            traces.legend(fontsize=7, loc="upper right")
        if k == len(picks) - 1:
            traces.set_xlabel("time (s)")
    return fig


def traces_table(
    responses: np.ndarray,
    prediction: np.ndarray,
    picks: dict[str, int],
    neuron_ids: list[str],
    dt_ms: float,
) -> pd.DataFrame:
    """The long table behind ``prediction_traces_figure``: one row per (pick, bin), picks in order.

    ``responses`` (N, R, T), ``prediction`` (N, T). Columns: ``label``, ``neuron`` (id), ``time_s`` (bin
    start), ``psth`` (NaN-mean over repeats, NaN where every repeat is missing) and ``prediction``;
    len(picks) * T rows.
    """
    responses, prediction = _check_traces(responses, prediction, neuron_ids)
    _check_picks(picks, responses.shape[0])
    n_bins = responses.shape[2]
    time_s = np.arange(n_bins) * dt_ms / 1000.0
    psth = _psth(responses)
    frames = [
        pd.DataFrame(
            {
                "label": label,
                "neuron": neuron_ids[i],
                "time_s": time_s,
                "psth": psth[i],
                "prediction": prediction[i],
            }
        )
        for label, i in picks.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _check_traces(
    responses: np.ndarray, prediction: np.ndarray, neuron_ids: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``responses`` (N, R, T) and ``prediction`` (N, T) as float arrays; ValueError on mismatched shapes."""
    responses = np.asarray(responses, dtype=float)
    prediction = np.asarray(prediction, dtype=float)
    if responses.ndim != 3:
        raise ValueError(f"responses must be (N, R, T), got shape {responses.shape}")
    n_neurons, _, n_bins = responses.shape
    if prediction.shape != (n_neurons, n_bins):
        raise ValueError(f"prediction has shape {prediction.shape}, expected (N, T) = ({n_neurons}, {n_bins})")
    if len(neuron_ids) != n_neurons:
        raise ValueError(f"neuron_ids has {len(neuron_ids)} entries for {n_neurons} neurons")
    return responses, prediction


def _check_picks(picks: dict[str, int], n_neurons: int) -> None:
    """Raise ValueError if ``picks`` is empty or one of them is not a neuron index in 0..n_neurons-1."""
    if not picks:
        raise ValueError("picks is empty: no neuron to show")
    for label, i in picks.items():
        if not 0 <= i < n_neurons:
            raise ValueError(f"pick {label!r}={i} is not a neuron index in 0..{n_neurons - 1}")


def _psth(responses: np.ndarray) -> np.ndarray:
    """NaN-mean over repeats of (N, R, T) counts -> (N, T), NaN where every repeat is missing (no warning)."""
    valid = np.isfinite(responses)
    n_valid = valid.sum(axis=1)
    total = np.where(valid, responses, 0.0).sum(axis=1)
    return np.divide(total, n_valid, out=np.full(total.shape, np.nan), where=n_valid > 0)
