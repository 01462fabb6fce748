"""Run dirs written by an earlier version keep loading: tests/fixtures/run_0.1.0 is a LEAF + StateNet run
on dataset=synth_tiny written by strf-runner 0.1.0 (before the options classes moved next to their parts
and StateNet's constructor defaults changed), minus last.pt and .hydra/. Today's code must rebuild its
model and data exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from strf_runner.data.dataset import NeuralDataset
from strf_runner.data.schema import file_sha256, read_dataset
from strf_runner.data.sources import SOURCES
from strf_runner.data.synth import SynthDatasetConfig
from strf_runner.results.load import load_run
from tests.helpers.data import TINY_DATASET

SAVED = Path(__file__).resolve().parents[1] / "fixtures" / "run_0.1.0"


def test_a_run_saved_by_version_0_1_0_rebuilds_its_predictions_on_regenerated_data(tmp_path):
    run = load_run(SAVED)
    assert run.model.readout.norm.__class__.__name__ == "BatchNorm1d"  # model.json's options, not defaults
    summary = json.loads((SAVED / "summary.json").read_text())
    dataset = SynthDatasetConfig(**{**TINY_DATASET, "root": str(tmp_path)})
    path = SOURCES.get("synth").build(dataset)
    assert file_sha256(path) == summary["dataset"]["sha256"]  # today's generator, the same bytes
    test = NeuralDataset(read_dataset(path), "waveform", summary["dataset"]["splits"]["test"])
    with torch.no_grad():
        pred = torch.stack([run.model(item.stim[None])[0, :, 0] for item in test.items]).numpy()
    saved = np.load(SAVED / "test_predictions.npz")["predictions"]
    np.testing.assert_allclose(pred, saved, rtol=1e-5, atol=1e-6)
    assert yaml.safe_load((SAVED / "config.yaml").read_text())["model"]["name"] == "statenet"
