"""Time whole training epochs of ``strf-run``'s own code path on NS1-sized data.

The data are random but shaped exactly like NS1 with the seed study's split: 14 training and 3
validation stimuli (and one test stimulus) of 999 frames (5 s at 5 ms), 119 neurons x 20 repeats, a
34-band spectrogram and a 48 kHz waveform (239,760 samples), written to an HDF5 file in a temp dir.
Each timing is a real run on it: ``run_experiment`` with the config ``strf-run`` composes (default
recipe, batch 1), checkpoints and all, and the epoch time is what the run's history.csv records.

Rows: ``FRONTEND[options]`` (Linear readout) or ``FRONTEND[options]+MODEL[options]``; two names are
the naive references timed beside the fast paths: front-end ``leaf-direct`` (LEAF by its definition,
a direct 721-tap convolution) and model ``statenet-torch`` (StateNet with torch's own GRU, step by
step, instead of the compiled recurrence).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from strf_runner.bench.frontends import parse_row
from strf_runner.bench.names import DIRECT, TORCH_RNN
from strf_runner.bench.reference import DirectLEAF
from strf_runner.compose import compose_config
from strf_runner.config import FrontendConfig, ModelConfig
from strf_runner.data.dataset import NeuralDataset
from strf_runner.data.schema import DatasetContent, Stimulus, write_dataset
from strf_runner.models.encoding import EncodingModel, build_model

AUDIO_FS, HOP, N_FRAMES, N_BANDS = 48000.0, 240, 999, 34
N_NEURONS, N_REPEATS, N_TRAIN, N_VAL = 119, 20, 14, 3


def ns1_shaped_content(seed: int = 0) -> DatasetContent:
    """Random data in NS1's geometry, both views (about 180 MB in memory)."""
    rng = np.random.default_rng(seed)
    stimuli = [
        Stimulus(
            name=f"s{i}",
            type="noise",
            responses=rng.poisson(0.3, size=(N_NEURONS, N_REPEATS, N_FRAMES)).astype(np.float32),
            spectrogram=rng.normal(size=(N_BANDS, N_FRAMES)).astype(np.float32),
            waveform=(0.1 * rng.normal(size=N_FRAMES * HOP)).astype(np.float32),
        )
        for i in range(N_TRAIN + N_VAL + 1)
    ]
    return DatasetContent(
        name="ns1-shaped",
        dt_ms=5.0,
        neuron_ids=[f"u{k}" for k in range(N_NEURONS)],
        stimuli=stimuli,
        splits={"train": list(range(N_TRAIN)), "val": list(range(N_TRAIN, N_TRAIN + N_VAL)), "test": [N_TRAIN + N_VAL]},
        audio_fs=AUDIO_FS,
        spectrogram_freqs=np.geomspace(500, 22627, N_BANDS),
    )


@dataclass
class EpochTiming:
    """Seconds per epoch of a real run: medians over the timed epochs, after one warm-up epoch."""

    name: str
    n_params: int
    epoch_s: float  # training steps, validation and checkpoint writes, as history.csv records them
    validation_s: float  # of which: validation predictions and their metrics


def parse_epoch_row(row: str) -> list[str]:
    """'native+statenet[rnn=lstm]' -> the strf-run overrides of that row (the Linear readout by default)."""
    frontend, _, model = row.partition("+")
    overrides = []
    for group, part in (("frontend", frontend), ("model", model or "linear")):
        name, options = parse_row(part)
        name = {DIRECT: "leaf", TORCH_RNN: "statenet"}.get(name, name)
        overrides += [f"{group}={name}"] + [f"{group}.{k}={v}" for k, v in options.items()]
    return overrides


def reference_builder(row: str) -> Callable[..., EncodingModel]:
    """The model builder of a row (``run_experiment``'s ``build``): strf-run's own, with the naive
    reference the row names swapped into the model it builds (LEAF by its definition, torch's own call of
    StateNet's recurrence)."""

    def build(frontend: FrontendConfig, readout: ModelConfig, data: NeuralDataset) -> EncodingModel:
        model = build_model(frontend, readout, data)
        if row.startswith(DIRECT):
            model.frontend = DirectLEAF(model.frontend)
        if f"+{TORCH_RNN}" in row:
            model.readout.recur = lambda rnn, x, state=None: rnn(x, state)
        return model

    return build


def time_epochs(row: str, epochs: int = 3, device: str = "cpu", seed: int = 0) -> EpochTiming:
    """Run the row with strf-run's code path for 1 + ``epochs`` epochs; the epoch times are the run's own."""
    from strf_runner.experiment import run_experiment

    with tempfile.TemporaryDirectory() as tmp:
        path = write_dataset(ns1_shaped_content(seed), Path(tmp) / "ns1-shaped.h5")
        cfg = compose_config(parse_epoch_row(row) + [
            "dataset=hdf5", f"dataset.path={path}", f"device={device}", f"seed={seed}",
            f"trainer.max_epochs={epochs + 1}", f"trainer.patience={epochs + 1}",
        ])
        result = run_experiment(cfg, Path(tmp) / "run", build=reference_builder(row))
    timed = result.fit.history[1:]
    return EpochTiming(
        name=row,
        n_params=result.summary.n_params,
        epoch_s=statistics.median(r.seconds for r in timed),
        validation_s=statistics.median(r.val_seconds for r in timed),
    )
