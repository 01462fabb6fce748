"""load_run: a finished run rebuilt from its directory alone reproduces the run's own test scores; a run
dir edited by hand or written by a newer version is a one-line ResultsError naming the file and key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import torch
from tests.helpers.runs import tiny_config

from strf_runner import metrics
from strf_runner.data.dataset import NeuralDataset
from strf_runner.data.schema import read_dataset
from strf_runner.errors import ResultsError
from strf_runner.experiment import run_experiment
from strf_runner.frontends.leaf import LeafFrontendConfig
from strf_runner.models.statenet import StateNetModelConfig
from strf_runner.results.load import load_run, run_dataset
from strf_runner.results.rundir import RUN_FORMAT_VERSION


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
    assert run.info["view"] == "waveform" and run.summary.n_params == run.model.n_params()
    content = read_dataset(finished.summary.dataset.path)
    test = NeuralDataset(content, "waveform", finished.summary.dataset.splits["test"])
    with torch.no_grad():
        pred = torch.stack([run.model(it.stim[None])[0] for it in test.items])
    scores = metrics.score_neurons(pred, torch.stack([it.responses for it in test.items]))
    table = pd.read_csv(finished.run_dir / "neurons.csv")
    np.testing.assert_allclose(scores.cc_norm.numpy(), table["cc_norm"].to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.e2e
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



RESTORE = "restore the file from the run that wrote it, or re-run"


def edited_copy(run_dir: Path, dest: Path, file: str, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of ``run_dir`` at ``dest`` with ``edit`` applied to the JSON object in its ``file``."""
    shutil.copytree(run_dir, dest)
    data = json.loads((dest / file).read_text())
    edit(data)
    (dest / file).write_text(json.dumps(data))
    return dest


def refusal(call: Callable[[Any], Any], arg: Any) -> str:
    """The message of the ResultsError ``call(arg)`` raises."""
    with pytest.raises(ResultsError) as caught:
        call(arg)
    return str(caught.value)


@pytest.mark.parametrize("file, key, edit", [
    ("model.json", "view", lambda d: d.pop("view")),
    ("model.json", "neuron_ids", lambda d: d.pop("neuron_ids")),
    ("model.json", "dt_ms", lambda d: d.pop("dt_ms")),
    ("model.json", "hop", lambda d: d.pop("hop")),
    ("summary.json", "dataset", lambda d: d.pop("dataset")),
    ("summary.json", "dataset.splits", lambda d: d["dataset"].pop("splits")),
    ("summary.json", "view", lambda d: d.pop("view")),
], ids=["model view", "model neuron_ids", "model dt_ms", "model hop", "summary dataset", "summary dataset.splits",
        "summary view"])
def test_a_missing_key_names_the_file_and_the_key(finished, tmp_path, file, key, edit):
    """Every reader (strf-predict, strf-analyze, init_from) meets it in load_run, before anything else."""
    from strf_runner.analysis.run_analysis import analyze_run

    run = edited_copy(finished.run_dir, tmp_path / "run", file, edit)
    expected = f"{run / file}: key '{key}' is missing: {RESTORE}"
    assert refusal(load_run, run) == expected
    assert refusal(analyze_run, run) == expected
    assert not (run / "analysis").exists()


@pytest.mark.parametrize("file", ["model.json", "summary.json"])
def test_a_format_version_newer_than_this_code_is_refused(finished, tmp_path, file):
    run = edited_copy(finished.run_dir, tmp_path / "newer", file, lambda d: d.update(format_version=99))
    assert refusal(load_run, run) == (f"{run / file}: format_version 99 was written by a newer strf-runner (this "
                                      f"one reads up to {RUN_FORMAT_VERSION}): upgrade strf-runner to use this run")
    run = edited_copy(finished.run_dir, tmp_path / "text", file, lambda d: d.update(format_version="1"))
    assert refusal(load_run, run) == (f"{run / file}: key 'format_version' must be a whole number >= 1, "
                                      f"got \"1\": {RESTORE}")
    run = edited_copy(finished.run_dir, tmp_path / "same", file, lambda d: d.update(format_version=RUN_FORMAT_VERSION))
    assert load_run(run).neuron_ids == list(finished.neurons["id"])


def _duplicate_first(d: dict[str, Any]) -> None:
    d["neuron_ids"][1] = d["neuron_ids"][0]


@pytest.mark.parametrize("file, edit, message", [
    ("model.json", lambda d: d.update(neuron_ids=d["neuron_ids"][:-1]),
     "key 'neuron_ids' lists 15 neurons, but the model predicts 16 (spec.readout.n_neurons, best.pt)"),
    ("model.json", _duplicate_first, "key 'neuron_ids' lists 'n000' more than once"),
    ("model.json", lambda d: d.update(dt_ms=10.0),
     "key 'dt_ms' is 10 ms, but 'hop' 240 samples at 'audio_fs' 48000 Hz make bins of 5 ms"),
    ("model.json", lambda d: d.update(dt_ms=10.0, hop=480),
     "key 'hop' is 480, but the model's front-end reads hop 240"),
    ("model.json", lambda d: d.update(audio_fs=24000.0, hop=120),
     "key 'audio_fs' is 24000.0, but the model's front-end reads audio_fs 48000"),
    ("model.json", lambda d: d.update(dt_ms="5"), "key 'dt_ms' must be a number > 0 (ms per bin), got \"5\""),
    ("summary.json", lambda d: d.update(view="spectrogram"),
     "key 'view' is 'spectrogram' but model.json says 'waveform'"),
], ids=["short neuron_ids", "duplicate id", "dt_ms", "hop", "audio_fs", "dt_ms text", "summary view"])
def test_values_that_disagree_with_the_model_or_each_other_are_refused(finished, tmp_path, file, edit, message):
    run = edited_copy(finished.run_dir, tmp_path / "run", file, edit)
    assert refusal(load_run, run) == f"{run / file}: {message}: {RESTORE}"


def test_run_dataset_refuses_neuron_ids_the_dataset_does_not_hold(finished, tmp_path):
    run = edited_copy(finished.run_dir, tmp_path / "run", "model.json",
                      lambda d: d.update(neuron_ids=[f"other_{i}" for i in d["neuron_ids"]]))
    loaded = load_run(run)  # as many ids as the model has neurons: only the dataset can tell
    assert refusal(run_dataset, loaded) == (
        f"{run / 'model.json'}: key 'neuron_ids' lists 16 neurons the run's dataset "
        f"{finished.summary.dataset.path} does not hold (e.g. 'other_n000'): {RESTORE}"
    )
