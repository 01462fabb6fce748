"""Reloading a finished run: its model (exact architecture and best weights), config and neuron ids.

Needs only the run directory: ``model.json`` (every constructor argument, written by the run) and
``best.pt``; no Hydra, no dataset. Notebooks and ``strf-predict`` / ``strf-analyze`` use the same call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from strf_runner.data.schema import DatasetContent, file_sha256, read_dataset
from strf_runner.errors import ResultsError, StrfRunnerError
from strf_runner.models.encoding import EncodingModel, build_encoding_model
from strf_runner.results.rundir import CHECKPOINT, CONFIG, MODEL_INFO, SUMMARY
from strf_runner.training.checkpoint import load_checkpoint


@dataclass
class LoadedRun:
    """A finished run, rebuilt. model: in eval mode, on the CPU, with the best-validation weights.
    info: model.json (spec, view, neuron_ids, dt_ms, audio_fs, hop, spectrogram_freqs_hz)."""

    path: Path
    model: EncodingModel
    config: DictConfig
    neuron_ids: list[str]
    summary: dict[str, Any]
    info: dict[str, Any]


def load_run(path: str | Path) -> LoadedRun:
    """Rebuild the model of the finished run at ``path``; ResultsError naming the file at fault."""
    path = Path(path)
    if not (path / SUMMARY).is_file():
        raise ResultsError(f"{path} is not a finished run ({SUMMARY} missing): nothing to load")
    try:
        info = json.loads((path / MODEL_INFO).read_text())
        summary = json.loads((path / SUMMARY).read_text())
        config = OmegaConf.load(path / CONFIG)
    except (OSError, ValueError) as err:
        raise ResultsError(f"cannot read the run at {path}: {err}") from err
    try:
        model = build_encoding_model(info["spec"])
    except (KeyError, TypeError, StrfRunnerError) as err:
        raise ResultsError(f"{path / MODEL_INFO} does not describe a buildable model: {err}") from err
    try:
        load_checkpoint(path / CHECKPOINT, model)
    except StrfRunnerError as err:
        raise ResultsError(f"{path / CHECKPOINT}: corrupt or not this run's weights ({err})") from err
    return LoadedRun(path, model.eval(), config, list(info["neuron_ids"]), summary, info)


def run_dataset(run: LoadedRun, views: tuple[str, ...] | None = None) -> DatasetContent:
    """The dataset the run was fitted on (``views``: default all), checked against the SHA-256 its
    summary recorded; ResultsError if the file is gone or changed."""
    meta = run.summary["dataset"]
    path = Path(meta["path"])
    if not path.is_file():
        raise ResultsError(f"the run's dataset file {path} is gone: re-create it (same config) or move it back")
    if file_sha256(path) != meta["sha256"]:
        raise ResultsError(f"{path} changed since the run (SHA-256 differs from its summary): refusing to use it")
    return read_dataset(path, views=views)
