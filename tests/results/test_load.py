"""load_run: a finished run rebuilt from its directory alone reproduces the run's own test scores."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from strf_runner import metrics
from strf_runner.config import LeafFrontendConfig, StateNetModelConfig
from strf_runner.data.dataset import NeuralDataset
from strf_runner.data.schema import read_dataset
from strf_runner.errors import ResultsError
from strf_runner.experiment import run_experiment
from strf_runner.results.load import load_run
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny LEAF + StateNet run (a waveform front-end and a recurrent readout)."""
    tmp = tmp_path_factory.mktemp("load")
    cfg = tiny_config(tmp, max_epochs=2)
    cfg.frontend = LeafFrontendConfig(n_filters=8)
    cfg.model = StateNetModelConfig()
    result = run_experiment(cfg, tmp / "run")
    return result


def test_reloaded_model_reproduces_the_test_scores(finished):
    run = load_run(finished.run_dir)
    assert not run.model.training and run.neuron_ids == list(finished.neurons["id"])
    assert run.info["view"] == "waveform" and run.summary["n_params"] == run.model.n_params()
    content = read_dataset(finished.summary["dataset"]["path"])
    test = NeuralDataset(content, "waveform", finished.summary["dataset"]["splits"]["test"])
    with torch.no_grad():
        pred = torch.stack([run.model(it.stim[None])[0] for it in test.items])
    scores = metrics.score_neurons(pred, torch.stack([it.responses for it in test.items]))
    table = pd.read_csv(finished.run_dir / "neurons.csv")
    np.testing.assert_allclose(scores.cc_norm.numpy(), table["cc_norm"].to_numpy(), rtol=1e-5, atol=1e-6)


def test_a_new_process_rebuilds_identical_outputs(finished, tmp_path):
    torch.manual_seed(0)
    x = 0.1 * torch.randn(1, 1, 20 * load_run(finished.run_dir).info["hop"])
    torch.save(x, tmp_path / "x.pt")
    here = load_run(finished.run_dir).model(x).detach()
    code = (
        "import sys, torch; from strf_runner.results.load import load_run; "
        "m = load_run(sys.argv[1]).model; x = torch.load(sys.argv[2]); torch.save(m(x).detach(), sys.argv[3])"
    )
    subprocess.run([sys.executable, "-c", code, str(finished.run_dir), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                   check=True)
    assert torch.equal(torch.load(tmp_path / "y.pt"), here)


def test_clear_errors(finished, tmp_path):
    with pytest.raises(ResultsError, match="not a finished run"):
        load_run(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("summary.json", "config.yaml", "model.json"):
        (broken / name).write_bytes((finished.run_dir / name).read_bytes())
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ResultsError, match="best.pt: corrupt"):
        load_run(broken)
    info = json.loads((broken / "model.json").read_text())
    info["spec"]["readout"]["rnn"] = "transformer"
    (broken / "model.json").write_text(json.dumps(info))
    with pytest.raises(ResultsError, match="model.json does not describe a buildable model"):
        load_run(broken)
