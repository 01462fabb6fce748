"""Config composition through Hydra's compose API, schema validation and value checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException, ValidationError

from strf_runner.compose import register_configs
from strf_runner.config import RunConfig, TrainerConfig, validate
from strf_runner.data.sources import HDF5DatasetConfig
from strf_runner.data.synth import SynthDatasetConfig
from strf_runner.entry import error_line
from strf_runner.errors import ConfigError
from strf_runner.models.linear import LinearModelConfig

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_run(overrides: list[str] | None = None) -> RunConfig:
    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_object(cfg)


def test_default_composes_to_the_anchor_recipe():
    cfg = compose_run()
    assert isinstance(cfg.dataset, SynthDatasetConfig) and cfg.dataset.name == "synth"
    assert cfg.dataset.n_neurons == 119 and cfg.dataset.n_stimuli == 20 and cfg.dataset.n_repeats == 20
    assert cfg.frontend.name == "native"
    assert isinstance(cfg.model, LinearModelConfig) and cfg.model.temporal_window_size == 9
    t = cfg.trainer
    assert isinstance(t, TrainerConfig)
    assert (t.max_epochs, t.patience, t.lr, t.weight_decay, t.loss, t.monitor, t.mode, t.batch_size) == (
        100, 30, None, 0.0, "mse", "val_cc_norm", "max", 1)
    assert cfg.frontend.lr == 1e-3
    assert t.device == "auto" and cfg.seed == 0 and cfg.data_seed == 0
    validate(cfg)


def test_config_yaml_restates_no_default_of_the_run_config():
    """conf/config.yaml sets only what RunConfig cannot know (its MISSING fields): each default has one home."""
    top = yaml.safe_load((CONF / "config.yaml").read_text())
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    restated = sorted(k for k in top if k not in ("defaults", "hydra") and fields[k].default != MISSING)
    assert restated == []
    composed = compose_run()
    for name, field in fields.items():
        if field.default not in (MISSING, dataclasses.MISSING) and name != "data_seed":
            assert getattr(composed, name) == field.default, name


@pytest.mark.parametrize("group", ["dataset", "frontend", "model", "trainer"])
def test_every_option_of_every_group_composes(group):
    for yaml in sorted((CONF / group).glob("*.yaml")):
        overrides = [f"{group}={yaml.stem}"]
        if group == "dataset" and yaml.stem in ("hdf5", "nwb"):
            overrides.append(f"dataset.path=x.{yaml.stem}")
        cfg = compose_run(overrides)
        validate(cfg)


def test_overrides_reach_the_typed_config():
    cfg = compose_run(["trainer.max_epochs=20", "model.temporal_window_size=12", "trainer.device=cpu", "seed=3"])
    assert cfg.trainer.max_epochs == 20 and cfg.model.temporal_window_size == 12
    assert cfg.trainer.device == "cpu" and cfg.seed == 3 and cfg.data_seed == 3
    assert compose_run(["device=cpu"]).trainer.device == "cpu"


def test_each_arm_trains_at_its_own_rate_unless_trainer_lr_is_set():
    from strf_runner.config import learning_rates

    assert learning_rates(compose_run()) == (1e-3, 1e-3)
    assert learning_rates(compose_run(["frontend=leaf"])) == (3e-3, 3e-3)
    assert learning_rates(compose_run(["frontend=leaf", "trainer.lr=1e-4"])) == (1e-4, 1e-4)
    assert learning_rates(compose_run(["frontend=leaf", "model=statenet", "model.lr=2e-3"])) == (3e-3, 2e-3)
    assert learning_rates(compose_run(["model=statenet", "model.lr=2e-3", "trainer.lr=1e-4"])) == (1e-4, 1e-4)


def test_a_readout_budget_replaces_the_trainers_epochs_and_trains_its_own_parameters(tmp_path):
    """model.lr trains the readout, the front-end keeps its own lr; model.max_epochs / patience replace the
    trainer's; the readout's budget keys are not constructor arguments (model.json holds none of them)."""
    import json

    from strf_runner.config import epoch_budget
    from strf_runner.experiment import run_experiment
    from tests.helpers.runs import tiny_config

    assert epoch_budget(compose_run(["model=statenet", "model.max_epochs=150"])) == (150, 30)
    assert epoch_budget(compose_run(["model.patience=5"])) == (100, 5)
    cfg = tiny_config(tmp_path, max_epochs=5)
    cfg.frontend = compose_run(["frontend=native_pcen"]).frontend
    cfg.model.lr, cfg.model.max_epochs, cfg.model.patience = 0.02, 2, 2
    run = run_experiment(cfg, tmp_path / "run")
    assert run.summary.epochs_run == 2 and run.summary.lr == 0.02 and run.summary.frontend_lr == 1e-3
    spec = json.loads((tmp_path / "run" / "model.json").read_text())["spec"]["readout"]
    assert not {"lr", "max_epochs", "patience"} & set(spec)
    cfg.model.lr = -1.0
    with pytest.raises(ConfigError, match="model.lr"):
        validate(OmegaConf.to_object(OmegaConf.structured(cfg)))


def test_hdf5_dataset_needs_a_path():
    cfg = compose_run(["dataset=hdf5", "dataset.path=/data/x.h5"])
    assert isinstance(cfg.dataset, HDF5DatasetConfig) and cfg.dataset.path == "/data/x.h5"


def test_typo_key_fails_with_one_line_naming_it():
    with pytest.raises(ConfigCompositionException) as info:
        compose_run(["trainer.max_epochz=3"])
    assert isinstance(info.value.__cause__, OmegaConfBaseException)
    line = error_line(info.value)
    assert "trainer.max_epochz" in line and "\n" not in line
    assert "max_epochs" in line, "the valid keys are listed"


def test_wrong_type_fails_with_one_line_naming_it():
    with pytest.raises(ConfigCompositionException) as info:
        compose_run(["trainer.lr=fast"])
    assert isinstance(info.value.__cause__, ValidationError)
    line = error_line(info.value)
    assert "trainer.lr" in line and "fast" in line and "\n" not in line


def test_unknown_group_option_lists_choices():
    with pytest.raises(Exception) as info:
        compose_run(["frontend=leafy"])
    assert "leafy" in error_line(info.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.lr=-0.1", "trainer.lr"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("trainer.patience=0", "trainer.patience"),
        ("trainer.mode=up", "trainer.mode"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.device=tpu", "trainer.device"),
        ("model.temporal_window_size=0", "model.temporal_window_size"),
        ("seed=-1", "seed"),
    ],
)
def test_value_checks_name_the_key(override, key):
    cfg = compose_run([override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_patience_beyond_max_epochs_is_allowed_but_warned():
    cfg = compose_run(["trainer.max_epochs=5", "trainer.patience=10"])
    with pytest.warns(UserWarning, match=r"trainer.patience=10 > trainer.max_epochs=5"):
        validate(cfg)


@pytest.mark.parametrize(
    "overrides, ok",
    [(["model=ln"], True), (["model=nrf"], True), (["model=statenet", "model.output=softplus"], True),
     (["model=linear", "model.activation=softplus"], True), (["model=linear"], False), (["model=dnet"], False),
     (["model=statenet"], False)],
)
def test_a_poisson_loss_needs_non_negative_rates(overrides, ok):
    cfg = compose_run(overrides + ["trainer.loss=poisson"])
    if ok:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match="trainer.loss=poisson needs non-negative predicted rates"):
            validate(cfg)


def test_statenet_defaults_to_the_version_that_reproduces_the_anchor():
    cfg = compose_run(["model=statenet"])
    assert (cfg.model.encoder_norm, cfg.model.output) == ("batch", "linear")
    assert compose_run(["model=statenet_ref"]).model == cfg.model
