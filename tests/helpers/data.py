"""Datasets in memory, and the one tiny synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from strf_runner.data.schema import DatasetContent, Stimulus

#: The tiny synthetic dataset's fields (6 stimuli of 1 s: 4 train, 1 val, 1 test; 16 neurons, 6 repeats), read
#: from its one definition, ``dataset=synth_tiny`` (conf/dataset/synth_tiny.yaml).
TINY_DATASET = {k: v for k, v in yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "conf" / "dataset" / "synth_tiny.yaml").read_text()).items()
    if k != "defaults"}


def make_content(
    n_stimuli: int = 5,
    n_neurons: int = 4,
    n_repeats: int = 3,
    n_bands: int = 6,
    hop: int = 8,
    lengths: list[int] | None = None,
    seed: int = 0,
) -> DatasetContent:
    """A random dataset with both views; stimuli may differ in length (``lengths`` in bins).

    Stimulus i (named "s{i}", of length T = ``lengths[i]``, default 20 + 3 i) holds Poisson(1) responses
    (n_neurons, n_repeats, T) float32, a normal spectrogram (n_bands, T) and a normal waveform (T * hop,);
    splits are train = all but the last two stimuli, val = [n - 2], test = [n - 1]; dt 5 ms, audio at
    hop * 200 Hz, neurons "u0", "u1", ...
    """
    rng = np.random.default_rng(seed)
    lengths = lengths or [20 + 3 * i for i in range(n_stimuli)]
    stimuli = []
    for i, t in enumerate(lengths):
        responses = rng.poisson(1.0, size=(n_neurons, n_repeats, t)).astype(np.float32)
        stimuli.append(
            Stimulus(
                name=f"s{i}",
                type="noise" if i % 2 else "tone",
                responses=responses,
                spectrogram=rng.normal(size=(n_bands, t)).astype(np.float32),
                waveform=rng.normal(size=t * hop).astype(np.float32),
            )
        )
    n = len(lengths)
    return DatasetContent(
        name="tiny",
        dt_ms=5.0,
        neuron_ids=[f"u{k}" for k in range(n_neurons)],
        stimuli=stimuli,
        splits={"train": list(range(n - 2)), "val": [n - 2], "test": [n - 1]},
        audio_fs=hop * 200.0,
        spectrogram_freqs=np.geomspace(500, 8000, n_bands),
        neuron_meta={"depth_um": np.arange(n_neurons) * 100, "grade": np.array(["Yes", "No"] * (n_neurons // 2))},
        attrs={"native_source": "random", "description": "test data"},
    )
