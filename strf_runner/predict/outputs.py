"""Writing a prediction: rates with neuron ids (HDF5 or NPZ), a per-neuron table, a figure.

Files for a prediction named ``<name>`` in the output folder:

- ``<name>.h5`` (or ``.npz``): ``rates`` (N, T) float32, ``neuron_ids`` (N,), ``time_s`` (T,) the
  start of each bin, ``spectrogram`` (F, T) the front-end's output, ``channel_hz`` (F,) (NaN when
  unknown); HDF5 attributes (NPZ: a JSON string ``meta``) say which run, which input, dt_ms, units;
- ``<name>.csv``: one row per neuron: mean, SD and peak of the predicted rate, time of the peak;
- ``<name>.png``: the spectrogram above the population response (each neuron's prediction
  z-scored over time) and the population mean rate.

They are written together: each to a temp file first, renamed into place once all are written, so an
error while writing leaves none of them. Files already there are replaced only when asked
(``overwrite``; strf-predict's ``--overwrite``).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import strf_runner
from strf_runner.analysis.filterbank import spectrogram_panel
from strf_runner.atomic import atomic_path
from strf_runner.errors import ConfigError, ResultsError
from strf_runner.predict.predictor import Prediction

FORMATS = ("h5", "npz")
MAX_FIGURE_BINS = 2000  # longer inputs are drawn as means over groups of bins (a figure has ~1000 pixels)
FIGURE_DPI = 120


def attributes(pred: Prediction, run_path: Path) -> dict[str, Any]:
    """Provenance stored with the rates: run, input, bin width, units, versions."""
    return {
        "run": str(run_path),
        "source": pred.source,
        "dt_ms": pred.dt_ms,
        "units": "the run's dataset response units per bin (NS1: spike counts averaged over repeats)",
        "spectrogram": pred.spectrogram_label,
        "strf_runner": strf_runner.__version__,
        **pred.meta,
    }


def _arrays(pred: Prediction) -> dict[str, np.ndarray]:
    n_frames = pred.rates.shape[1]
    channel_hz = np.full(pred.spectrogram.shape[0], np.nan) if pred.channel_hz is None else pred.channel_hz
    return {
        "rates": pred.rates.astype(np.float32),
        "time_s": np.arange(n_frames) * pred.dt_ms / 1000.0,
        "spectrogram": pred.spectrogram.astype(np.float32),
        "channel_hz": np.asarray(channel_hz, dtype=np.float64),
    }


def write_rates(pred: Prediction, path: Path, run_path: Path, fmt: str) -> None:
    """The rates file at ``path``, HDF5 (``fmt`` "h5") or NPZ ("npz")."""
    arrays, attrs = _arrays(pred), attributes(pred, run_path)
    if fmt == "h5":
        with h5py.File(path, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value, compression="gzip" if value.ndim == 2 else None)
            f.create_dataset("neuron_ids", data=np.array(pred.neuron_ids, dtype=object), dtype=h5py.string_dtype())
            f.attrs.update({k: v for k, v in attrs.items() if v is not None})
    else:
        with open(path, "wb") as f:
            np.savez(f, **arrays, neuron_ids=np.array(pred.neuron_ids), meta=np.array(json.dumps(attrs)))


def neuron_summary(pred: Prediction) -> pd.DataFrame:
    """One row per neuron: mean, SD and peak of its predicted rate and the time of the peak (bin start)."""
    rates = pred.rates.astype(np.float64)
    peak = rates.argmax(axis=1)
    return pd.DataFrame(
        {
            "neuron_id": pred.neuron_ids,
            "mean_rate": rates.mean(axis=1),
            "sd_rate": rates.std(axis=1),
            "peak_rate": rates.max(axis=1),
            "peak_time_s": peak * pred.dt_ms / 1000.0,
        }
    )


def _bin_means(x: np.ndarray, group: int) -> np.ndarray:
    """(C, T) -> (C, ceil(T / group)): means over consecutive groups of bins (the last may be shorter)."""
    if group == 1:
        return x
    n = x.shape[1]
    sums = np.add.reduceat(x.astype(np.float64), np.arange(0, n, group), axis=1)
    counts = np.diff(np.append(np.arange(0, n, group), n))
    return sums / counts


def prediction_figure(pred: Prediction) -> Figure:
    """Spectrogram (channels by frequency) above the z-scored population response and its mean rate.
    Inputs longer than ``MAX_FIGURE_BINS`` bins are drawn as means over groups of bins."""
    n_frames = pred.rates.shape[1]
    group = -(-n_frames // MAX_FIGURE_BINS)
    dt_ms = pred.dt_ms * group
    rates, spectrogram = _bin_means(pred.rates, group), _bin_means(pred.spectrogram, group)
    n_neurons, n_cols = rates.shape
    fig = Figure(figsize=(10, 8), layout="constrained")
    top, middle, bottom = fig.subplots(3, 1, sharex=True, height_ratios=[3, 3, 1.3])
    freqs = pred.channel_hz if pred.channel_hz is not None else np.arange(spectrogram.shape[0], dtype=float)
    spectrogram_panel(top, spectrogram, np.asarray(freqs, dtype=float), dt_ms, pred.spectrogram_label)
    rates = rates.astype(np.float64)
    sd = rates.std(axis=1, keepdims=True)
    z = np.divide(rates - rates.mean(axis=1, keepdims=True), sd, out=np.zeros_like(rates), where=sd > 0)
    end = n_frames * pred.dt_ms / 1000.0
    shown = middle.imshow(
        z, aspect="auto", interpolation="nearest", cmap="viridis", vmin=-2.5, vmax=2.5, origin="lower",
        extent=(0.0, end, -0.5, n_neurons - 0.5),
    )
    fig.colorbar(shown, ax=middle, pad=0.01, label="z-score")
    middle.set_ylabel(f"neuron (of {n_neurons})")
    bottom.plot(np.arange(n_cols) * dt_ms / 1000.0, rates.mean(axis=0), color="black", linewidth=0.8)
    bottom.set_ylabel("mean rate")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, end)
    means = f" (means over {dt_ms:g} ms)" if group > 1 else ""
    fig.suptitle(f"predicted responses: {pred.source}{means}", fontsize=10)
    return fig


def prediction_files(out_dir: Path, name: str, fmt: str = "h5", plot: bool = True) -> dict[str, Path]:
    """The files of the prediction ``name`` in ``out_dir``, by kind ("rates", "table", "figure" with ``plot``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {FORMATS}")
    files = {"rates": out_dir / f"{name}.{fmt}", "table": out_dir / f"{name}.csv"}
    if plot:
        files["figure"] = out_dir / f"{name}.png"
    return files


def refuse_existing(files: Iterable[Path]) -> None:
    """ResultsError naming the first of ``files`` that exists (and how many others do)."""
    existing = [f for f in files if f.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more of the outputs)" if len(existing) > 1 else ""
        raise ResultsError(
            f"{existing[0]} already exists{more}: add --overwrite to replace it, or choose another --out"
        )


def write_prediction(
    pred: Prediction, out_dir: Path, run_path: Path, fmt: str = "h5", plot: bool = True, overwrite: bool = False
) -> dict[str, Path]:
    """All files of one prediction in ``out_dir``, or none on an error; returns them by kind ("rates",
    "table", "figure"). ResultsError if one exists already, unless ``overwrite``."""
    files = prediction_files(out_dir, pred.name, fmt, plot)
    if not overwrite:
        refuse_existing(files.values())
    table = neuron_summary(pred).to_csv(index=False, float_format="%.6g")
    figure = prediction_figure(pred) if plot else None
    with ExitStack() as stack:  # every temp file is renamed into place only once all are written
        tmp = {kind: stack.enter_context(atomic_path(path)) for kind, path in files.items()}
        write_rates(pred, tmp["rates"], run_path, fmt)
        tmp["table"].write_text(table, encoding="utf-8")
        if figure is not None:
            figure.savefig(tmp["figure"], format="png", dpi=FIGURE_DPI)
    return files
