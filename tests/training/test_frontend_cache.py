"""A fixed front-end stage computed once per stimulus gives the fit it would give computed every step, bit for bit."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from tests.helpers.runs import tiny_config

from strf_runner.data.loading import load_data
from strf_runner.experiment import make_loaders, run_experiment
from strf_runner.frontends.gammatone import GammatoneFrontendConfig
from strf_runner.frontends.mel import MelFrontendConfig
from strf_runner.frontends.native_pcen import NativePcenFrontendConfig
from strf_runner.frontends.registry import build_frontend
from strf_runner.models.encoding import build_model

FRONTENDS = {
    "gammatone": GammatoneFrontendConfig(n_filters=8),
    "gammatone_learnable": GammatoneFrontendConfig(n_filters=8, learn_centres=True),
    "mel_pcen": MelFrontendConfig(n_filters=8, compression="pcen"),
    "mel_gain": MelFrontendConfig(n_filters=8, learnable_gain=True),
    "native_pcen": NativePcenFrontendConfig(),
}


@pytest.mark.parametrize(
    "name, options, fixed",
    [("gammatone", {}, True), ("gammatone", {"learn_centres": True}, False), ("mel", {"compression": "pcen"}, True),
     ("mel", {"learnable_gain": True}, False), ("native_pcen", {}, True), ("native", {}, True),
     ("leaf", {}, False), ("sincnet", {}, False)],
)
def test_fixed_finite_is_true_exactly_when_only_pcen_trains(name, options, fixed):
    geometry = {"n_bands": 34} if name.startswith("native") else {"audio_fs": 48000.0, "hop": 240}
    assert build_frontend(name, **geometry, **options).fixed_finite is fixed


@pytest.mark.parametrize("arm", sorted(FRONTENDS))
def test_cached_and_uncached_fits_are_identical(tmp_path, arm):
    runs = {}
    for cache in (True, False):
        cfg = dataclasses.replace(tiny_config(tmp_path, max_epochs=3), frontend=FRONTENDS[arm])
        cfg.trainer.cache_frontend = cache
        runs[cache] = run_experiment(cfg, tmp_path / f"run_{cache}")
    history = [pd.read_csv(r.run_dir / "history.csv").drop(columns=["seconds", "val_seconds"]) for r in runs.values()]
    pd.testing.assert_frame_equal(*history, check_exact=True)
    pd.testing.assert_frame_equal(runs[True].neurons, runs[False].neurons, check_exact=True)
    a, b = (torch.load(r.run_dir / "best.pt", weights_only=True)["state_dict"] for r in runs.values())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert runs[True].summary.config_hash == runs[False].summary.config_hash


def test_the_cache_is_used_only_where_it_is_exact(tmp_path):
    cfg = OmegaConf.to_object(OmegaConf.structured(dataclasses.replace(tiny_config(tmp_path), frontend=FRONTENDS["gammatone"])))
    _, _, sets = load_data(cfg.dataset, "waveform")
    model = build_model(cfg.frontend, cfg.model, sets["train"])
    batch = next(iter(make_loaders(cfg, sets, model, torch.device("cpu"))["train"]))
    assert batch["features"].shape == (1, 8, batch["stims"].shape[-1] // 240)
    cfg.trainer.batch_size = 2  # padded batches: the front-end's output would depend on the batch
    assert next(iter(make_loaders(cfg, sets, model, torch.device("cpu"))["train"]))["features"] is None
    cfg.trainer.batch_size, cfg.trainer.cache_frontend = 1, False
    assert next(iter(make_loaders(cfg, sets, model, torch.device("cpu"))["train"]))["features"] is None
    assert model.frontend.fixed_finite
