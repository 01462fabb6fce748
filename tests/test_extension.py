"""Extension by addition: a front-end, a readout, a dataset source and a tracker, each defined and
registered here with its config class and nothing else (no YAML file, no edit anywhere in the package),
run through strf-run, a sweep with strf-report, strf-predict and strf-analyze."""

from __future__ import annotations

import json
import signal
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from strf_runner import cli
from strf_runner.compose import REGISTRIES
from strf_runner.config import DatasetConfig, FrontendConfig, ModelConfig, TrackerConfig
from strf_runner.data.paths import data_root
from strf_runner.data.schema import DatasetContent, Stimulus, write_dataset
from strf_runner.data.sources import SOURCES
from strf_runner.frontends.base import WaveformFrontend
from strf_runner.frontends.registry import FRONTENDS
from strf_runner.models.registry import READOUTS
from strf_runner.tracking.base import RunInfo, Tracker, tracker

HOP = 40  # 8 kHz audio in 5 ms bins


@dataclass
class FrameEnergyConfig(FrontendConfig):
    name: str = "frame_energy"
    lr: float = 1e-2
    n_filters: int = 3


class FrameEnergy(WaveformFrontend):
    """A throwaway front-end: per frame, the log energy of the frame's samples times F learnable gains.
    It says nothing about its channels (no filterbank_info), as a quick user-written one might not."""

    def __init__(self, audio_fs: float, hop: int, n_filters: int = 3) -> None:
        super().__init__(n_filters, audio_fs, hop)
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, n_filters))

    def finite(self, x: torch.Tensor) -> torch.Tensor:
        n_frames = self.check_waveform(x)
        energy = x[:, 0].reshape(x.shape[0], n_frames, self.hop).pow(2).mean(-1)  # (B, T): frame t alone
        return torch.log(energy[:, None] * self.gain[None, :, None] + 1e-6)


@dataclass
class PointwiseConfig(ModelConfig):
    name: str = "pointwise"

    @property
    def nonnegative_output(self) -> bool:  # a capability: trainer.loss=poisson is allowed with it
        return True


class Pointwise(nn.Module):
    """A throwaway readout: per frame a linear map of the channels to the neurons, then softplus."""

    def __init__(self, n_bands: int, n_neurons: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_bands, n_neurons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.linear(x[:, 0].transpose(1, 2))).transpose(1, 2)[:, :, None]

    def stream(self, x: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        return self(x), None


@dataclass
class LoudnessDatasetConfig(DatasetConfig):
    """Noise bursts whose loudness the neurons follow: 8 stimuli of 0.5 s, 6 train, 1 val, 1 test."""

    name: str = "loudness"
    source: str = "loudness"
    n_neurons: int = 4
    seed: int = 0


def loudness_file(d: LoudnessDatasetConfig) -> Path:
    """Generate the dataset once into the data folder, as a real source caches what it makes."""
    path = data_root(d.root) / f"loudness-{d.n_neurons}-{d.seed}.h5"
    if path.exists():
        return path
    rng = np.random.default_rng(d.seed)
    stimuli = []
    for i in range(8):
        level = np.exp(rng.normal(size=100))  # (T,) one level per 5 ms bin
        waveform = (rng.normal(size=(100, HOP)) * level[:, None]).reshape(-1).astype(np.float32)
        gains = np.linspace(0.5, 2.0, d.n_neurons)[:, None, None]
        responses = rng.poisson(gains * level[None, None] / level.mean(), size=(d.n_neurons, 10, 100))
        stimuli.append(Stimulus(name=f"burst{i}", type="noise", responses=responses.astype(np.float32), waveform=waveform))
    write_dataset(DatasetContent(name=d.name, dt_ms=5.0, neuron_ids=[f"n{k}" for k in range(d.n_neurons)],
                                 stimuli=stimuli, splits={"train": list(range(6)), "val": [6], "test": [7]},
                                 audio_fs=HOP * 200.0), path)
    return path


@dataclass
class MemoConfig(TrackerConfig):
    label: str = "memo"


class Memo(Tracker):
    """A tracker that keeps what it is told in EVENTS."""

    def __init__(self, label: str = "memo") -> None:
        self.label = label

    def start(self, info: RunInfo) -> dict[str, Any] | None:
        EVENTS.append(("start", info.name, info.group))
        return None

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        EVENTS.append(("epoch", epoch, values["val_cc_norm"]))

    def finish(self, summary: dict[str, Any], files: dict[str, Path]) -> None:
        EVENTS.append(("finish", summary.test_mean_cc_norm, sorted(files)))

    def fail(self, status: str, error: str) -> None:
        EVENTS.append(("fail", status, error))

    def log_sweep(self, group: str, files: dict[str, Path], scalars: dict[str, float], local_dir: Path) -> None:
        EVENTS.append(("sweep", group, sorted(files)))


EVENTS: list[tuple] = []


@pytest.fixture
def added(tmp_path, monkeypatch):
    """The four parts registered for this test only, as a user's module registers them on import."""
    for registry in REGISTRIES:
        registry.names()  # the built-in entries first, so that a copy of the table holds them
        monkeypatch.setattr(registry, "entries", dict(registry.entries))
    FRONTENDS.register("frame_energy", config=FrameEnergyConfig)(FrameEnergy)
    READOUTS.register("pointwise", config=PointwiseConfig)(Pointwise)
    SOURCES.register("loudness", config=LoudnessDatasetConfig)(loudness_file)
    tracker("memo", package="json", config=MemoConfig)(Memo)
    EVENTS.clear()
    monkeypatch.setenv("STRF_RUNNER_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    # what the entry points set for their process, given back to pytest's afterwards
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def strf_run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["strf-run", *args])
    cli.main()


PARTS = ["frontend=frame_energy", "model=pointwise", "dataset=loudness", "trainer=smoke", "device=cpu"]


def test_four_parts_added_by_a_user_run_everywhere(tmp_path, added, monkeypatch):
    run = tmp_path / "run"
    strf_run(monkeypatch, *PARTS, "trainer.loss=poisson", "logger=memo", f"hydra.run.dir={run}")
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["frontend"], summary["model"], summary["dataset"]["name"]) == ("frame_energy", "pointwise", "loudness")
    assert summary["n_params"] == 3 + 3 * 4 + 4
    assert EVENTS[0] == ("start", "run", None) and EVENTS[-1][0] == "finish"
    assert EVENTS[-1][1] == pytest.approx(summary["test_mean_cc_norm"]) and "neurons.csv" in EVENTS[-1][2]
    assert [e[1] for e in EVENTS if e[0] == "epoch"] == list(range(1, summary["epochs_run"] + 1))
    assert pd.read_csv(run / "neurons.csv")["valid"].all()

    cli.predict_main([str(run), "--dataset-stimulus", "7", "--out", str(tmp_path / "pred"), "--format", "npz"])
    (written,) = (tmp_path / "pred").glob("*.npz")
    prediction = np.load(written)
    assert np.isnan(prediction["channel_hz"]).all()  # the front-end did not say what its channels are
    saved = np.load(run / "test_predictions.npz")["predictions"][0]  # stimulus 7 is the test stimulus
    np.testing.assert_allclose(prediction["rates"], saved[:, : prediction["rates"].shape[1]], rtol=1e-5, atol=1e-6)

    cli.analyze_main([str(run)])
    index = json.loads((run / "analysis" / "index.json").read_text())
    assert {"traces", "receptive_field", "gradmaps_csv"} <= set(index["files"]) and "filterbank" not in index["files"]
    assert "does not say what frequency its channels stand for" in index["skipped"]  # said, not hidden


def test_a_sweep_of_added_parts_aggregates_and_reports_to_the_added_tracker(tmp_path, added, monkeypatch):
    sweep = tmp_path / "sweep"
    strf_run(monkeypatch, "-m", *PARTS, "dataset.seed=0", "seed=0,1", f"hydra.sweep.dir={sweep}")
    arms = pd.read_csv(sweep / "aggregate" / "arms.csv")
    assert list(arms["runs"]) == [2] and arms["frontend"].tolist() == ["frame_energy"]

    EVENTS.clear()
    cli.report_main([str(sweep), "--logger", "memo", "--out", str(tmp_path / "report")])
    starts = [e for e in EVENTS if e[0] == "start"]
    assert len(starts) == 2 and {e[2] for e in starts} == {str(sweep.resolve())}  # both runs replayed into it
    assert EVENTS[-1][0] == "sweep" and "arms.csv" in EVENTS[-1][2]
