"""``strf-analyze``: every interpretability figure of a finished run, with the numbers behind each.

Reads only the run dir (``load_run``) and the dataset file its summary names. Writes into
``<run>/analysis/`` (each file atomically): filterbank.png/.csv (waveform front-ends with filters),
spectrograms.png with spectrogram_learned.csv / spectrogram_native.csv, strfs.png/.csv (true beside
learned on synthetic data), strf_gradmaps.png/.npz, for waveform models receptive_field.png,
gradmaps.csv (per neuron the ms holding 99 % of the gradient of its last output frame w.r.t. the
stimulus's last 2 s) and rf_/stim_<id>.wav, and
traces.png/.csv; then index.json (files and numbers). The run's own files, summary.json included,
are never touched (results/rundir.py).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from strf_runner.analysis.filterbank import (
    filterbank_figure,
    filterbank_table,
    magnitude_responses_db,
    spectrogram_comparison_figure,
)
from strf_runner.analysis.gradmaps import (
    mass_span_ms,
    receptive_field_figure,
    strf_gradmap,
    strf_gradmap_figure,
    waveform_gradmap,
    write_wav,
)
from strf_runner.analysis.strfs import strf_grid_figure, strf_summary, true_strfs
from strf_runner.atomic import save_png
from strf_runner.analysis.traces import pick_neurons, prediction_traces_figure, traces_table
from strf_runner.atomic import atomic_path
from strf_runner.results.tables import short_id
from strf_runner.errors import ResultsError
from strf_runner.results.load import load_run, run_dataset
from strf_runner.results.rundir import ANALYSIS, ANALYSIS_INDEX, NEURONS, atomic_write_text

RF_SECONDS = 0.5  # the stretch of stimulus written beside each receptive field
RF_CONTEXT_S = 2.0  # waveform gradients are taken on the stimulus's last 2 s: receptive fields are far shorter


def analyze_run(
    path: str | Path, stimulus: int | None = None, n_wav: int = 3, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Write the analysis of the finished run at ``path``; return its index (files and numbers).

    stimulus: dataset index of the stimulus to show (default: the first test stimulus).
    n_wav: receptive fields written as WAV, for the best-predicted neurons (waveform models).
    """
    run = load_run(path)
    content = run_dataset(run)
    ids = run.neuron_ids
    labels = [short_id(i) for i in ids]  # figure titles; tables keep the full ids
    rows = [content.neuron_ids.index(i) for i in ids]
    k = run.summary.dataset.splits["test"][0] if stimulus is None else int(stimulus)
    if not 0 <= k < len(content.stimuli):
        raise ResultsError(f"stimulus {k} is not in the dataset (it has {len(content.stimuli)} stimuli)")
    stim = content.stimuli[k]
    view = run.info["view"]
    x = torch.from_numpy(np.ascontiguousarray(stim.waveform if view == "waveform" else stim.spectrogram))[None, None]
    scores = pd.read_csv(run.path / NEURONS)["cc_norm"].to_numpy(dtype=float)
    out = run.path / ANALYSIS
    out.mkdir(exist_ok=True)
    files: dict[str, str] = {}
    numbers: dict[str, Any] = {"stimulus": k, "stimulus_name": stim.name}

    def figure(name: str, fig) -> None:
        files[name] = save_png(fig, out / f"{name}.png").name

    def table(name: str, frame: pd.DataFrame) -> None:
        files[f"{name}_csv"] = atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False, float_format="%.6g")).name

    model = run.model
    fe = model.frontend
    with torch.no_grad():
        learned = fe(x)[0, 0].numpy()  # (F, T)
        prediction = model(x)[0, :, 0].numpy()  # (N, T)
    native_freqs = None if content.spectrogram_freqs is None else np.asarray(content.spectrogram_freqs, dtype=float)

    log("filterbank")
    info = fe.filterbank_info()
    channel_hz = fe.channel_hz(native_freqs)
    if info is not None:
        figure("filterbank", filterbank_figure(info, magnitude_responses_db(fe)))
        table("filterbank", filterbank_table(info))
        numbers["mean_drift"] = info.mean_drift
    if stim.spectrogram is not None and native_freqs is not None and channel_hz is not None:
        figure("spectrograms", spectrogram_comparison_figure(
            learned, channel_hz, stim.spectrogram, native_freqs, content.dt_ms, title=f"{fe.__class__.__name__}: {stim.name}"
        ))
        table("spectrogram_learned", _spectrogram_frame(learned, channel_hz))
        table("spectrogram_native", _spectrogram_frame(stim.spectrogram, native_freqs))

    log("STRFs and gradient maps")
    maps = strf_gradmap(model)  # (N, F, T_eff), spectrogram space
    weights = model.readout.strfs().numpy() if hasattr(model.readout, "strfs") else maps
    if channel_hz is not None:
        order = np.argsort(channel_hz, kind="stable")
        freqs = _strictly_increasing(np.asarray(channel_hz, dtype=float)[order])
        truth = None
        if "centre_hz" in content.truth:
            sub = {key: np.asarray(v)[rows] if np.ndim(v) and len(v) == len(content.neuron_ids) else v
                   for key, v in content.truth.items() if key != "rates"}
            truth = true_strfs(sub, freqs, weights.shape[-1])
        figure("strfs", strf_grid_figure(weights[:, order], freqs, content.dt_ms, labels, scores, truth=truth))
        table("strfs", pd.concat([pd.DataFrame({"id": ids, "cc_norm": scores}),
                                  strf_summary(weights[:, order], freqs, content.dt_ms)], axis=1))
        best = _best_first(scores)[:4]
        figure("strf_gradmaps", strf_gradmap_figure(maps[:, order], freqs, content.dt_ms, labels, best))
        with atomic_path(out / "strf_gradmaps.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, maps=maps[:, order], freqs_hz=freqs, neuron_ids=np.array(ids))
        files["strf_gradmaps_npz"] = "strf_gradmaps.npz"
    else:
        numbers["skipped"] = ("STRFs and spectrogram gradient maps: the front-end does not say what frequency its "
                              "channels stand for (Frontend.filterbank_info / channel_hz)")
        log(f"skipped {numbers['skipped']}")

    if view == "waveform":
        log("waveform receptive fields")
        fs, hop = float(run.info["audio_fs"]), int(run.info["hop"])
        context = min(len(stim.waveform), int(RF_CONTEXT_S * fs) // hop * hop)
        tail_wave = np.ascontiguousarray(stim.waveform[-context:])
        wave = torch.from_numpy(tail_wave)
        grads = [waveform_gradmap(model, wave, neuron=n, reduce="last") for n in range(len(ids))]
        spans = [mass_span_ms(g, fs) for g in grads]
        table("gradmaps", pd.DataFrame({"id": ids, "cc_norm": scores, "span_99_ms": spans}))
        finite = [s for s in spans if math.isfinite(s)]
        numbers["median_span_99_ms"] = float(np.median(finite)) if finite else math.nan
        ranked = _best_first(scores)[:n_wav]
        if ranked:
            top = ranked[0]
            figure("receptive_field", receptive_field_figure(
                grads[top], tail_wave, fs, spans[top], title=f"{labels[top]} (cc_norm {scores[top]:.2f})"
            ))
        tail = int(RF_SECONDS * fs)
        for n in ranked:
            name = _file_safe(ids[n])
            files[f"rf_{name}"] = write_wav(out / f"rf_{name}.wav", grads[n][-tail:], fs).name
            files[f"stim_{name}"] = write_wav(out / f"stim_{name}.wav", stim.waveform[-tail:], fs).name

    log("prediction traces")
    responses = stim.responses[rows]
    picks = pick_neurons(scores)
    figure("traces", prediction_traces_figure(responses, prediction, scores, labels, content.dt_ms, picks))
    table("traces", traces_table(responses, prediction, picks, ids, content.dt_ms))

    index = {"files": files, **numbers}
    files["index"] = ANALYSIS_INDEX
    atomic_write_text(out / ANALYSIS_INDEX, json.dumps(index, indent=2, default=float) + "\n")
    return index


def _spectrogram_frame(spec: np.ndarray, freqs_hz: np.ndarray) -> pd.DataFrame:
    """(F, T) -> one row per channel: its frequency, then one column per frame."""
    frame = pd.DataFrame(np.asarray(spec), columns=[f"t{t}" for t in range(spec.shape[1])])
    frame.insert(0, "freq_hz", np.asarray(freqs_hz))
    return frame


def _strictly_increasing(freqs_hz: np.ndarray) -> np.ndarray:
    """Sorted centres with ties (e.g. two LEAF channels held at the same lower clamp) moved apart by
    1e-6 relative, so each channel keeps its own row on a frequency axis."""
    out = freqs_hz.copy()
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] * (1 + 1e-6))
    return out


def _file_safe(neuron_id: str) -> str:
    """A neuron id as one file-name component (NS1's ids are paths with slashes)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", neuron_id).strip("._") or "neuron"


def _best_first(scores: np.ndarray) -> list[int]:
    """Neuron indices by descending score, NaN scores last."""
    return [int(i) for i in np.argsort(np.where(np.isfinite(scores), -scores, np.inf), kind="stable")]
