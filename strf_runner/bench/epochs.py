"""Time whole training epochs (optimiser steps + validation + metrics) on NS1-sized data.

The data are random but shaped exactly like NS1 with the seed study's split: 14 training and 3
validation stimuli (and one test stimulus, unused here) of 999 frames (5 s at 5 ms), 119 neurons x
20 repeats, a 34-band spectrogram and a 48 kHz waveform (239,760 samples), batch size 1. The model,
optimiser and ``Fitter`` are the ones ``strf-run`` uses, so an epoch here is an epoch there.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from strf_runner import metrics
from strf_runner.bench.frontends import DIRECT
from strf_runner.bench.reference import DirectLEAF
from strf_runner.cli import register_configs
from strf_runner.config import RunConfig, validate
from strf_runner.data.dataset import split_datasets
from strf_runner.data.schema import DatasetContent, Stimulus
from strf_runner.experiment import prepare_fit
from strf_runner.frontends.registry import frontend_class
from strf_runner.training.fitter import EpochRecord, evaluate, loader_target
from strf_runner.training.seeding import seed_everything

AUDIO_FS, HOP, N_FRAMES, N_BANDS = 48000.0, 240, 999, 34
N_NEURONS, N_REPEATS, N_TRAIN, N_VAL = 119, 20, 14, 3


def ns1_shaped_content(seed: int = 0) -> DatasetContent:
    """Random data in NS1's geometry, both views (about 60 MB)."""
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


def compose_config(overrides: list[str]) -> RunConfig:
    """The ``RunConfig`` that ``strf-run <overrides>`` would run (Hydra's compose API)."""
    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run_cfg: RunConfig = OmegaConf.to_object(cfg)
    validate(run_cfg)
    return run_cfg


@dataclass
class EpochTiming:
    """Seconds per epoch: medians over the timed epochs, after one warm-up epoch."""

    frontend: str
    n_params: int
    epoch_s: float  # training steps + validation, as the fitter records it
    validation_s: float  # of which: validation predictions and their metrics
    metrics_s: float  # of which: cc_norm and friends on the concatenated validation predictions


def time_epochs(frontend: str, epochs: int = 3, device: str = "cpu", seed: int = 0) -> EpochTiming:
    """Train ``frontend`` + Linear with the default recipe for 1 + ``epochs`` epochs and time them.

    ``frontend`` is a registered name or ``leaf-direct``: LEAF computed by its definition
    (``DirectLEAF``), with LEAF's config and parameters.
    """
    direct = frontend == DIRECT
    name = "leaf" if direct else frontend
    cfg = compose_config([f"frontend={name}", "model=linear", f"device={device}", f"seed={seed}"])
    content = ns1_shaped_content(seed)
    sets = split_datasets(content, frontend_class(name).view)
    seed_everything(seed)
    model, fitter, loaders = prepare_fit(cfg, sets, torch.device(device))
    if direct:
        model.frontend = DirectLEAF(model.frontend)  # same parameters: the optimiser still holds them
    fitter.max_epochs = fitter.patience = epochs + 1
    records: list[EpochRecord] = []
    fitter.on_epoch_end = lambda record, best, best_epoch: records.append(record)
    fitter.fit(loaders["train"], loaders["val"])

    target = loader_target(loaders["val"])
    val_times, metric_times = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        ev = evaluate(model, loaders["val"], fitter.loss_fn, target)
        val_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        metrics.score_summary(ev.predictions, target)
        metric_times.append(time.perf_counter() - start)
    return EpochTiming(
        frontend=frontend,
        n_params=model.n_params(),
        epoch_s=statistics.median(r.seconds for r in records[1:]),
        validation_s=statistics.median(val_times),
        metrics_s=statistics.median(metric_times),
    )
