"""Shared test fixtures: small datasets in the project's format, built in memory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from strf_runner.data.schema import DatasetContent, Stimulus


def make_content(
    n_stimuli: int = 5,
    n_neurons: int = 4,
    n_repeats: int = 3,
    n_bands: int = 6,
    hop: int = 8,
    lengths: list[int] | None = None,
    seed: int = 0,
) -> DatasetContent:
    """A random dataset with both views; stimuli may differ in length (``lengths`` in bins)."""
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


@pytest.fixture
def content() -> DatasetContent:
    return make_content()


@pytest.fixture
def content_factory():
    """``make_content`` as a fixture, for tests that need their own sizes."""
    return make_content


@pytest.fixture(scope="session")
def ns1_raw_dir() -> Path:
    """The real NS1 release: ../shared/data/ns1_raw beside the repository, or $STRF_RUNNER_NS1_RAW.
    Tests that need it are skipped where it is absent (a user's machine)."""
    env = os.environ.get("STRF_RUNNER_NS1_RAW")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ns1_raw"
    if not (path / "MetadataSHEnCneurons.mat").is_file():
        pytest.skip(f"the real NS1 release is not at {path} (set STRF_RUNNER_NS1_RAW to a copy of it)")
    return path.resolve()
