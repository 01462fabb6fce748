"""Reloading a finished run: its model (exact architecture and best weights), config and neuron ids.

Needs only the run directory: ``model.json`` (every constructor argument, written by the run) and
``best.pt``; no Hydra, no dataset. Notebooks, ``strf-predict``, ``strf-analyze`` and ``init_from`` use
the same call, so its checks cover them all: a run dir edited by hand or written by another version
(a key missing or of the wrong type, a ``format_version`` newer than ``RUN_FORMAT_VERSION``, values
that disagree with the model or with each other) is a one-line ResultsError naming the file and the key.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from strf_runner.data.schema import VIEWS, DatasetContent, file_sha256, read_dataset
from strf_runner.errors import ResultsError, StrfRunnerError
from strf_runner.models.encoding import EncodingModel, build_encoding_model
from strf_runner.results.rundir import CHECKPOINT, MODEL_INFO, SUMMARY, RunDir, read_versioned_json
from strf_runner.results.summary import RunSummary
from strf_runner.training.checkpoint import load_checkpoint

_RESTORE = "restore the file from the run that wrote it, or re-run"


@dataclass
class LoadedRun:
    """A finished run, rebuilt. model: in eval mode, on the CPU, with the best-validation weights.
    info: model.json (spec, view, neuron_ids, dt_ms, audio_fs, hop, spectrogram_freqs_hz), checked
    against the model and summary.json (``load_run``)."""

    path: Path
    model: EncodingModel
    config: DictConfig
    neuron_ids: list[str]
    summary: RunSummary
    info: dict[str, Any]


def load_run(path: str | Path) -> LoadedRun:
    """Rebuild the model of the finished run at ``path``; ResultsError naming the file (and key) at fault."""
    path = Path(path)
    if not (path / SUMMARY).is_file():
        raise ResultsError(f"{path} is not a finished run ({SUMMARY} missing): nothing to load")
    run = RunDir(path)
    summary = run.summary()
    if summary.cv is not None:
        folds = summary.cv.folds
        raise ResultsError(f"{path} is a cross-validation of {folds} folds, not one model: give one of its folds "
                           f"({path / 'fold0'} .. fold{folds - 1})")
    recorded = {"dataset": summary.dataset, "view": summary.view}
    if summary.dataset is not None:
        recorded.update({"dataset.path": summary.dataset.path, "dataset.sha256": summary.dataset.sha256,
                         "dataset.splits": summary.dataset.splits or None})
    for key, value in recorded.items():
        if value is None:
            raise ResultsError(f"{path / SUMMARY}: key '{key}' is missing: {_RESTORE}")
    info = read_versioned_json(path / MODEL_INFO)
    check_model_info(info, path / MODEL_INFO)
    if summary.view != info["view"]:
        raise ResultsError(f"{path / SUMMARY}: key 'view' is {summary.view!r} but {MODEL_INFO} says {info['view']!r}: "
                           f"{_RESTORE}")
    config = OmegaConf.create(run.config())
    try:
        model = build_encoding_model(info["spec"])
    except (KeyError, TypeError, StrfRunnerError) as err:
        raise ResultsError(f"{path / MODEL_INFO} does not describe a buildable model: {err}") from err
    try:
        load_checkpoint(path / CHECKPOINT, model)
    except StrfRunnerError as err:
        raise ResultsError(f"{path / CHECKPOINT}: corrupt or not this run's weights ({err})") from err
    check_against_model(info, model, path / MODEL_INFO)
    return LoadedRun(path, model.eval(), config, list(info["neuron_ids"]), summary, info)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(
    data: dict[str, Any], key: str, file: Path, valid: Callable[[Any], bool], expected: str, parent: str = ""
) -> Any:
    """``data[key]``; ResultsError naming ``file`` and the key (``parent.key``) if it is missing or not
    ``expected``."""
    name = f"{parent}.{key}" if parent else key
    if key not in data:
        raise ResultsError(f"{file}: key '{name}' is missing: {_RESTORE}")
    if not valid(data[key]):
        raise ResultsError(f"{file}: key '{name}' must be {expected}, got {_shown(data[key])}: {_RESTORE}")
    return data[key]


def check_model_info(info: dict[str, Any], file: Path) -> None:
    """Every key of model.json present, of its type, and audio_fs x dt_ms = hop samples per bin."""
    _field(info, "spec", file, lambda v: isinstance(v, dict), "an object (the model's constructor arguments)")
    _field(info, "view", file, lambda v: v in VIEWS, f"one of {', '.join(VIEWS)}")
    ids = _field(info, "neuron_ids", file,
                 lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(i, str) for i in v),
                 "a non-empty list of strings")
    twice = [i for i, n in Counter(ids).items() if n > 1]
    if twice:
        raise ResultsError(f"{file}: key 'neuron_ids' lists {twice[0]!r} more than once: {_RESTORE}")
    dt_ms = _field(info, "dt_ms", file, _is_positive, "a number > 0 (ms per bin)")
    fs = _field(info, "audio_fs", file, lambda v: v is None or _is_positive(v), "null or a number > 0 (Hz)")
    hop = _field(info, "hop", file, lambda v: v is None or (_is_int(v) and v >= 1), "null or a whole number >= 1")
    _field(info, "spectrogram_freqs_hz", file,
           lambda v: v is None or (isinstance(v, list) and all(map(_is_positive, v))),
           "null or a list of frequencies > 0 (Hz)")
    if (fs is None) != (hop is None):
        raise ResultsError(f"{file}: keys 'audio_fs' and 'hop' must be both set or both null, got {fs} and {hop}: "
                           f"{_RESTORE}")
    if fs is not None and abs(fs * dt_ms / 1000.0 - hop) > 1e-6:
        raise ResultsError(
            f"{file}: key 'dt_ms' is {dt_ms:g} ms, but 'hop' {hop} samples at 'audio_fs' {fs:g} Hz make bins of "
            f"{1000.0 * hop / fs:g} ms: {_RESTORE}"
        )


def check_against_model(info: dict[str, Any], model: EncodingModel, file: Path) -> None:
    """model.json's view, neuron count, audio rate, hop and bands are those of the model it rebuilt."""
    spec = info["spec"]
    if info["view"] != model.view:
        raise ResultsError(f"{file}: key 'view' is {info['view']!r}, but its {spec['frontend']['name']} front-end "
                           f"reads the {model.view} view: {_RESTORE}")
    n_neurons = spec["readout"].get("n_neurons")
    if len(info["neuron_ids"]) != n_neurons:
        raise ResultsError(f"{file}: key 'neuron_ids' lists {len(info['neuron_ids'])} neurons, but the model predicts "
                           f"{n_neurons} (spec.readout.n_neurons, best.pt): {_RESTORE}")
    if model.view == "waveform":
        for key in ("audio_fs", "hop"):
            if info[key] is None or float(info[key]) != float(getattr(model.frontend, key)):
                raise ResultsError(f"{file}: key '{key}' is {info[key]}, but the model's front-end reads "
                                   f"{key} {getattr(model.frontend, key):g}: {_RESTORE}")
    freqs, n_bands = info["spectrogram_freqs_hz"], spec["frontend"].get("n_bands")
    if model.view == "spectrogram" and freqs is not None and len(freqs) != n_bands:
        raise ResultsError(f"{file}: key 'spectrogram_freqs_hz' lists {len(freqs)} bands, but the model reads "
                           f"{n_bands} (spec.frontend.n_bands): {_RESTORE}")


def run_dataset(run: LoadedRun, views: tuple[str, ...] | None = None) -> DatasetContent:
    """The dataset the run was fitted on (``views``: default all), checked against the SHA-256 its
    summary recorded; ResultsError if the file is gone or changed, or if model.json's bin width, audio
    rate or neuron ids are not the dataset's."""
    meta = run.summary.dataset
    path = Path(meta.path)
    if not path.is_file():
        raise ResultsError(f"the run's dataset file {path} is gone: re-create it (same config) or move it back")
    if file_sha256(path) != meta.sha256:
        raise ResultsError(f"{path} changed since the run (SHA-256 differs from its summary): refusing to use it")
    content = read_dataset(path, views=views)
    info, file = run.info, run.path / MODEL_INFO
    if info["dt_ms"] != content.dt_ms:
        raise ResultsError(f"{file}: key 'dt_ms' is {info['dt_ms']:g} ms, but the run's dataset {path} has bins of "
                           f"{content.dt_ms:g} ms: {_RESTORE}")
    if None not in (info["audio_fs"], content.audio_fs) and info["audio_fs"] != content.audio_fs:
        raise ResultsError(f"{file}: key 'audio_fs' is {info['audio_fs']:g} Hz, but the run's dataset {path} is "
                           f"sampled at {content.audio_fs:g} Hz: {_RESTORE}")
    missing = set(run.neuron_ids) - set(content.neuron_ids)
    if missing:
        raise ResultsError(f"{file}: key 'neuron_ids' lists {len(missing)} neurons the run's dataset {path} does not "
                           f"hold (e.g. {sorted(missing)[0]!r}): {_RESTORE}")
    return content
