"""Extension by addition: a front-end and a readout defined here, registered and given a YAML file each,
run through strf-run, strf-predict and strf-analyze with no edit anywhere else."""

from __future__ import annotations

import json
import signal
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from strf_runner import cli
from strf_runner.frontends.base import WaveformFrontend
from strf_runner.frontends.registry import FRONTENDS
from strf_runner.models.registry import READOUTS


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


class Pointwise(nn.Module):
    """A throwaway readout: per frame a linear map of the channels to the neurons, then softplus."""

    def __init__(self, n_bands: int, n_neurons: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_bands, n_neurons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.linear(x[:, 0].transpose(1, 2))).transpose(1, 2)[:, :, None]

    def stream(self, x: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        return self(x), None


@pytest.fixture
def added(tmp_path, monkeypatch):
    """Register both classes (for this test only) and write their YAML files into a config dir that
    strf-run searches (hydra.searchpath), as a user would drop them under conf/."""
    FRONTENDS.names(), READOUTS.names()  # scan the packages first, so the registries are complete
    monkeypatch.setitem(FRONTENDS.entries, "frame_energy", FrameEnergy)
    monkeypatch.setitem(READOUTS.entries, "pointwise", Pointwise)
    conf = tmp_path / "conf"
    (conf / "frontend").mkdir(parents=True)
    (conf / "model").mkdir()
    (conf / "frontend" / "frame_energy.yaml").write_text(
        "defaults:\n  - /schema_frontend_plain@_here_\n  - _self_\n\nname: frame_energy\nlr: 1e-2\n")
    (conf / "model" / "pointwise.yaml").write_text("defaults:\n  - /schema_model_plain@_here_\n  - _self_\n\nname: pointwise\n")
    monkeypatch.setenv("STRF_RUNNER_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    # what the entry points set for their process, given back to pytest's afterwards
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    handler = signal.getsignal(signal.SIGTERM)
    yield conf
    signal.signal(signal.SIGTERM, handler)


def test_a_frontend_and_a_readout_added_by_a_user_run_everywhere(tmp_path, added, monkeypatch, capsys):
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["strf-run", "frontend=frame_energy", "model=pointwise", "dataset=synth_tiny",
                                      "trainer=smoke", "device=cpu", f"hydra.run.dir={run}",
                                      f"hydra.searchpath=[file://{added}]"])
    cli.main()
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["frontend"], summary["model"]) == ("frame_energy", "pointwise")
    assert summary["n_params"] == 3 + 3 * 16 + 16

    cli.predict_main([str(run), "--dataset-stimulus", "5", "--out", str(tmp_path / "pred"), "--format", "npz"])
    (written,) = (tmp_path / "pred").glob("*.npz")
    prediction = np.load(written)
    assert np.isnan(prediction["channel_hz"]).all()  # the front-end did not say what its channels are
    saved = np.load(run / "test_predictions.npz")["predictions"][0]  # stimulus 5 is synth_tiny's test stimulus
    np.testing.assert_allclose(prediction["rates"], saved[:, : prediction["rates"].shape[1]], rtol=1e-5, atol=1e-6)

    cli.analyze_main([str(run)])
    index = json.loads((run / "analysis" / "index.json").read_text())
    assert {"traces", "receptive_field", "gradmaps_csv"} <= set(index["files"]) and "filterbank" not in index["files"]
    skipped = index["skipped"]
    assert "does not say what frequency its channels stand for" in skipped  # no frequency axis: said, not hidden
    assert pd.read_csv(run / "neurons.csv")["valid"].any()
