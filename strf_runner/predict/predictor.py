"""A finished run's predicted responses to a sound file or to one of its dataset's stimuli.

The sound is read and resampled block by block (``predict.audio``) and the model runs in eval mode on
the CPU through ``EncodingModel.stream`` in chunks of ``chunk_s`` seconds, its state carried across
them, so memory is bounded by a chunk whatever the input's length (only the predicted rates and the
spectrogram, a few floats per bin, grow with it) and the result equals one forward pass over the
whole input (``tests/test_stream.py``).

Input views. A waveform model reads the sound resampled to its audio rate. A spectrogram model
reads the native cochleagram (``data.cochleagram``), computed from the sound at the dataset's audio
rate, chunk by chunk too (its frame t reads one frame back); that is possible only when the run's
spectrogram view is that recipe (``native_source`` "recomputed", or "X_nfht", the original MATLAB
cochleagram the recipe reproduces) with the recipe's band centres. Other spectrogram views (a user's
own HDF5 dataset) cannot be made from a sound: AudioError, with ``--dataset-stimulus`` as the way out.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from strf_runner.data.cochleagram import band_centres, native_cochleagram
from strf_runner.data.schema import DatasetContent
from strf_runner.errors import AudioError, ResultsError, StrfRunnerWarning
from strf_runner.predict.audio import SoundInfo, grid_chunks, n_grid_bins
from strf_runner.results.load import LoadedRun, run_dataset

DEFAULT_CHUNK_S = 2.0  # seconds; measured: LEAF on 10 min of audio runs no slower than with 10 s chunks, in 0.35 of the memory
NATIVE_SOURCES = ("recomputed", "X_nfht")  # native views made by the cochleagram recipe (or the original it reproduces)

Progress = Callable[[int, int], None]  # (frames done, frames in all)


@dataclass
class Prediction:
    """What a model predicts for one input.

    rates: (N, T) float32, in the units of the dataset's responses, bin t covering
    [t, t + 1) * dt_ms; spectrogram: (F, T) the front-end's output (the model's own view of the
    sound); channel_hz: (F,) its channels' (centre) frequencies, None when unknown.
    """

    name: str
    source: str
    rates: np.ndarray
    neuron_ids: list[str]
    dt_ms: float
    spectrogram: np.ndarray
    channel_hz: np.ndarray | None
    spectrogram_label: str
    meta: dict[str, Any] = field(default_factory=dict)


def chunk_frames(chunk_s: float, dt_ms: float) -> int:
    """Frames per chunk for ``chunk_s`` seconds (at least one)."""
    if not chunk_s > 0:
        raise AudioError(f"chunk length must be > 0 s, got {chunk_s}")
    return max(1, round(chunk_s * 1000.0 / dt_ms))


def stream_model(
    run: LoadedRun, chunks: Iterator[torch.Tensor], n_frames: int, progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Feed the model consecutive input chunks (1, 1, F or 1, T_k * frame_size); return the
    front-end output (F, T) and the predictions (N, T), T = n_frames in all."""
    model = run.model.eval()
    specs, preds, state, done = [], [], None, 0
    with torch.no_grad():
        for x in chunks:
            spec, pred, state = model.stream(x, state)
            specs.append(spec[0, 0].numpy())
            preds.append(pred[0, :, 0].numpy())
            done += spec.shape[-1]
            if progress is not None:
                progress(done, n_frames)
    return np.concatenate(specs, axis=-1), np.concatenate(preds, axis=-1).astype(np.float32)


def cochleagram_chunks(chunks: Iterator[np.ndarray], audio_fs: float, dt_ms: float, n_bands: int) -> Iterator[np.ndarray]:
    """The native cochleagram (F, T_k) of consecutive audio chunks (T_k * hop,); concatenated they
    equal ``native_cochleagram`` of the whole audio exactly (its frame t reads bins t-1 and t)."""
    hop = round(audio_fs * dt_ms / 1000.0)
    past = None
    for chunk in chunks:
        if past is None:
            yield native_cochleagram(chunk, audio_fs, dt_ms, n_bands=n_bands)
        else:
            yield native_cochleagram(np.concatenate([past, chunk]), audio_fs, dt_ms, n_bands=n_bands)[:, 1:]
        past = chunk[-hop:]


def check_native_recipe(run: LoadedRun) -> None:
    """AudioError unless the run's spectrogram view is the native cochleagram recipe, at a known rate."""
    info = run.info
    source = run.summary.dataset.native_source
    freqs = info.get("spectrogram_freqs_hz")
    why = None
    if source not in NATIVE_SOURCES:
        why = f"its dataset's spectrogram view comes from {source or 'an unrecorded source'}, not the native cochleagram recipe"
    elif freqs is None or not np.allclose(freqs, band_centres(len(freqs)), rtol=1e-6):
        why = "its dataset's spectrogram bands are not the native cochleagram's (500 Hz x 2^(k/6))"
    elif not info.get("audio_fs"):
        why = f"{run.path / 'model.json'} records no audio rate for the cochleagram (a run from before strf-predict)"
    if why:
        raise AudioError(
            f"{run.path}: the model reads a spectrogram that cannot be made from a sound file: {why}; "
            "use --dataset-stimulus to replay the dataset's own stimuli"
        )


def channel_frequencies(run: LoadedRun) -> tuple[np.ndarray | None, str]:
    """(F,) frequencies of the front-end's output channels and a label for them."""
    fe = run.model.frontend
    bands = run.info.get("spectrogram_freqs_hz")
    name = run.summary.frontend or type(fe).__name__
    freqs = fe.channel_hz(None if bands is None else np.asarray(bands, dtype=float))
    if freqs is None:  # a front-end that does not say what its channels are
        return None, f"{name} channel"
    return freqs, f"{name} {'band' if fe.view == 'spectrogram' else 'channel centre'} (Hz)"


def warn_missing_bands(sound: SoundInfo, freqs: np.ndarray | None) -> None:
    """One StrfRunnerWarning when channel centres ``freqs`` (Hz) lie above the sound's Nyquist
    frequency: the sound has no content there (its upsampling adds none), so those channels get
    little or no input from it."""
    if freqs is None:
        return
    nyquist = sound.fs / 2
    above = freqs[freqs > nyquist]
    if not len(above):
        return
    lo, hi = above.min() / 1000, above.max() / 1000
    centres = f"centre {hi:.1f} kHz" if len(above) == 1 else f"centres {lo:.1f}-{hi:.1f} kHz"
    warnings.warn(
        f"{sound.path} is sampled at {sound.fs:g} Hz: its content ends at {nyquist:g} Hz, so {len(above)} of "
        f"{len(freqs)} channels ({centres}) get little or no input from it",
        StrfRunnerWarning,
        stacklevel=3,
    )


def predict_sound(
    run: LoadedRun, sound: SoundInfo, chunk_s: float = DEFAULT_CHUNK_S, progress: Progress | None = None
) -> Prediction:
    """The model's prediction for a sound file, mixed to mono, resampled and padded to whole bins; a
    StrfRunnerWarning first when the file's rate leaves channels without input (``warn_missing_bands``)."""
    info = run.info
    view, dt_ms = info["view"], float(info["dt_ms"])
    if view == "spectrogram":
        check_native_recipe(run)
    freqs, label = channel_frequencies(run)
    warn_missing_bands(sound, freqs)
    audio_fs, hop = float(info["audio_fs"]), int(info["hop"])
    audio = grid_chunks(sound, audio_fs, hop, chunk_frames(chunk_s, dt_ms))
    if view == "spectrogram":
        audio = cochleagram_chunks(audio, audio_fs, dt_ms, len(info["spectrogram_freqs_hz"]))
    chunks = (torch.from_numpy(c)[None, None] for c in audio)
    spec, rates = stream_model(run, chunks, n_grid_bins(sound, audio_fs, hop), progress)
    meta = {
        "input_fs": sound.fs,
        "input_channels": sound.channels,
        "input_duration_s": sound.duration_s,
        "audio_fs": audio_fs,
        "model_input": "waveform" if view == "waveform" else _cochleagram_note(run.summary.dataset.native_source),
    }
    return Prediction(sound_name(sound.path), str(sound.path), rates, run.neuron_ids, dt_ms, spec, freqs, label, meta)


def sound_name(path: Path) -> str:
    """The name of a sound file's prediction (its output files' stem)."""
    return path.stem


def stimulus_name(content: DatasetContent, index: int) -> str:
    """The name of the prediction for stimulus ``index`` of the run's dataset ``content`` (its output
    files' stem); ResultsError if the dataset has no such stimulus."""
    if not 0 <= index < len(content.stimuli):
        raise ResultsError(f"--dataset-stimulus {index}: the run's dataset has stimuli 0..{len(content.stimuli) - 1}")
    return f"stimulus{index:02d}_{content.stimuli[index].name}"


def _cochleagram_note(native_source: str) -> str:
    if native_source == "X_nfht":
        return "native cochleagram by the recipe that reproduces the release's X_nfht, which the model was trained on"
    return "native cochleagram, the computation the dataset's spectrogram view was made with"


def predict_stimulus(
    run: LoadedRun,
    index: int,
    chunk_s: float = DEFAULT_CHUNK_S,
    progress: Progress | None = None,
    content: DatasetContent | None = None,
) -> Prediction:
    """The model's prediction for stimulus ``index`` of the run's own dataset, in the view it was trained
    on. content: that dataset with that view, if already read (``run_dataset``), else it is read here."""
    view, dt_ms = run.info["view"], float(run.info["dt_ms"])
    content = run_dataset(run, views=(view,)) if content is None else content
    name = stimulus_name(content, index)
    stim = content.stimuli[index]
    x = stim.waveform if view == "waveform" else stim.spectrogram
    unit = int(run.info["hop"]) if view == "waveform" else 1
    n_frames, frames = x.shape[-1] // unit, chunk_frames(chunk_s, dt_ms)
    step = frames * unit
    chunks = (torch.from_numpy(np.ascontiguousarray(x[..., s : s + step]))[None, None] for s in range(0, x.shape[-1], step))
    spec, rates = stream_model(run, chunks, n_frames, progress)
    freqs, label = channel_frequencies(run)
    split = next((key for key, idx in run.summary.dataset.splits.items() if index in idx), "none")
    meta = {"dataset": content.name, "stimulus": index, "stimulus_name": stim.name, "split": split}
    return Prediction(name, f"{content.name} stimulus {index} ({stim.name})", rates, run.neuron_ids, dt_ms, spec, freqs, label, meta)
