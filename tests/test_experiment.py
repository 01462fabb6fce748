"""One run in-process, from a RunConfig built by hand (the notebook path)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.helpers.runs import tiny_config

from strf_runner.config import FrontendConfig, RunConfig, TrainerConfig
from strf_runner.data.synth import SynthDatasetConfig
from strf_runner.errors import ConfigError, DatasetError
from strf_runner.experiment import run_experiment
from strf_runner.models.linear import LinearModelConfig


def test_run_writes_everything_and_reports_the_ceiling(tmp_path):
    result = run_experiment(tiny_config(tmp_path), tmp_path / "run")
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["epochs_run"] == 4 and 1 <= s["best_epoch"] <= 4 and s["stop_reason"] == "max_epochs"
    assert s["n_params"] == 16 * (34 * 9 + 3) and s["seed"] == 0 and s["data_seed"] == 0
    assert s["dataset"]["splits"] == {"train": [0, 1, 2, 3], "val": [4], "test": [5]}
    assert len(s["dataset"]["sha256"]) == 64 and s["dataset"]["native_source"] == "recomputed"
    assert s["test_n_neurons"] == 16 and s["view"] == "spectrogram"
    assert "truth_test_mean_cc_norm" in s
    table = pd.read_csv(tmp_path / "run" / "neurons.csv")
    assert list(table["id"]) == list(result.neurons["id"]) and "truth_cc_norm" in table
    assert s["test_mean_cc_norm"] == pytest.approx(table.loc[table["valid"], "cc_norm"].mean())


def test_same_seed_same_numbers_different_seed_different(tmp_path):
    a = run_experiment(tiny_config(tmp_path), tmp_path / "a")
    b = run_experiment(tiny_config(tmp_path), tmp_path / "b")
    c = run_experiment(tiny_config(tmp_path, seed=1), tmp_path / "c")
    pd.testing.assert_frame_equal(a.neurons, b.neurons)
    history = [pd.read_csv(tmp_path / run / "history.csv").drop(columns=["seconds", "val_seconds"]) for run in ("a", "b")]
    pd.testing.assert_frame_equal(*history)
    assert not a.neurons["cc_norm"].equals(c.neurons["cc_norm"])


def test_split_override_naming_missing_stimuli(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg.dataset.test_stimuli = [5, 9]
    with pytest.raises(DatasetError, match=r"split 'test' names stimuli \[9\]"):
        run_experiment(cfg, tmp_path / "run")


@pytest.mark.parametrize(
    "break_it, key",
    [
        (lambda c: setattr(c.trainer, "lr", 0.0), "trainer.lr"),
        (lambda c: setattr(c.frontend, "name", "leafy"), "frontend.name"),
        (lambda c: setattr(c.trainer, "device", "cuda:99"), "trainer.device"),
    ],
)
def test_invalid_value_fails_before_any_data_is_loaded(tmp_path, break_it, key):
    cfg = tiny_config(tmp_path)
    break_it(cfg)
    with pytest.raises(ConfigError, match=key):
        run_experiment(cfg, tmp_path / "run")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_default_synth_run_is_reproducible_and_below_the_ceiling(tmp_path):
    """The README's main job: native + Linear on the full synthetic dataset with the anchor recipe."""
    def config(seed=0):
        return RunConfig(
            dataset=SynthDatasetConfig(name="synth", root=str(tmp_path / "cache")),
            frontend=FrontendConfig(name="native"),
            model=LinearModelConfig(),
            trainer=TrainerConfig(device="cpu"),
            seed=seed,
            run_name="slow",
        )

    a = run_experiment(config(), tmp_path / "a")
    b = run_experiment(config(), tmp_path / "b")
    pd.testing.assert_frame_equal(a.neurons, b.neurons)
    mean = a.summary.test_mean_cc_norm
    assert a.summary.test_n_valid == 119
    assert 0.4 < mean < a.summary.truth_test_mean_cc_norm - 0.2
