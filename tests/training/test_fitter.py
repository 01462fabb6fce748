"""The fitter: strict improvement, early stopping, best-validation restore, determinism, non-finite training,
gradient clipping."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from tests.helpers.runs import tiny_config

from strf_runner.config import TrainerConfig
from strf_runner.data.collate import DeviceLoader
from strf_runner.data.dataset import split_datasets
from strf_runner.errors import ConfigError, TrainingError
from strf_runner.experiment import run_experiment
from strf_runner.frontends.native import NativeSpectrogram
from strf_runner.models.encoding import EncodingModel
from strf_runner.models.linear import LinearSTRF
from strf_runner.training.checkpoint import load_checkpoint
from strf_runner.training.fitter import FitState, Fitter, evaluate


def make_fit(content, tmp_path, seed=0, lr=0.05, **kwargs):
    sets = split_datasets(content, "spectrogram")
    torch.manual_seed(seed)
    model = EncodingModel(NativeSpectrogram(6), LinearSTRF(6, 4, 3))
    snapshots = {}

    def snapshot(record, best, best_epoch, max_epochs):
        snapshots[record.epoch] = copy.deepcopy(model.state_dict())

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    fitter = Fitter(model, opt, TrainerConfig(**kwargs), checkpoint_path=tmp_path / "best.pt", on_epoch_end=snapshot)
    train = DeviceLoader(sets["train"], shuffle=True, generator=torch.Generator().manual_seed(seed))
    result = fitter.fit(train, DeviceLoader(sets["val"]))
    return model, result, snapshots, sets


def test_restored_weights_are_the_best_epochs_not_the_last(tmp_path, content_factory):
    content = content_factory(n_stimuli=6, lengths=[60] * 6)
    model, result, snapshots, _ = make_fit(content, tmp_path, max_epochs=12, patience=12)
    assert result.epochs_run == 12 and result.stop_reason == "max_epochs"
    assert result.best_epoch < result.epochs_run, "scenario must make the last epoch not the best"
    scores = [r.val_cc_norm for r in result.history]
    assert result.best_epoch == 1 + max(range(len(scores)), key=lambda i: scores[i])
    assert result.best_score == max(scores)
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[result.best_epoch][key]), key
    assert not all(torch.equal(v, snapshots[result.epochs_run][k]) for k, v in model.state_dict().items())
    assert load_checkpoint(tmp_path / "best.pt", copy.deepcopy(model))["epoch"] == result.best_epoch


def test_early_stopping_after_patience_without_improvement(tmp_path, content_factory):
    content = content_factory(n_stimuli=6, lengths=[60] * 6)
    _, result, _, _ = make_fit(content, tmp_path, max_epochs=50, patience=3)
    assert result.stop_reason == "patience"
    assert result.epochs_run == result.best_epoch + 3
    scores = [r.val_cc_norm for r in result.history]
    assert all(s <= result.best_score for s in scores[result.best_epoch :])


def test_evaluation_after_restore_reproduces_the_best_validation_score(tmp_path, content_factory):
    content = content_factory(n_stimuli=6, lengths=[60] * 6)
    model, result, _, sets = make_fit(content, tmp_path, max_epochs=8, patience=8)
    ev = evaluate(model, DeviceLoader(sets["val"]), lambda p, r: torch.tensor(0.0))
    finite = ev.scores.cc_norm[~torch.isnan(ev.scores.cc_norm)]
    assert math.isclose(float(finite.mean()), result.best_score, rel_tol=1e-6)


def test_fit_is_deterministic(tmp_path, content_factory):
    content = content_factory(n_stimuli=6, lengths=[60] * 6)
    _, a, _, _ = make_fit(content, tmp_path / "a", max_epochs=4, patience=4)
    _, b, _, _ = make_fit(content, tmp_path / "b", max_epochs=4, patience=4)
    assert [(r.train_loss, r.val_cc_norm) for r in a.history] == [(r.train_loss, r.val_cc_norm) for r in b.history]


def test_improvement_rule():
    model = LinearSTRF(2, 2, 2)
    opt = torch.optim.AdamW(model.parameters())
    fmax = Fitter(model, opt, TrainerConfig(mode="max", min_delta=0.1))
    assert fmax.improved(0.5, -math.inf)
    assert not fmax.improved(0.55, 0.5)  # not more than min_delta
    assert not fmax.improved(0.6, 0.5)  # equal to best + min_delta is not strict
    assert fmax.improved(0.61, 0.5)
    assert not fmax.improved(math.nan, -math.inf)
    fmin = Fitter(model, opt, TrainerConfig(mode="min", monitor="val_loss"))
    assert fmin.improved(0.4, 0.5) and not fmin.improved(0.5, 0.5) and not fmin.improved(math.nan, math.inf)


def test_nan_loss_stops_with_a_clear_error(tmp_path, content):
    for s in content.stimuli:
        s.spectrogram[:] = float("inf")
    with pytest.raises(TrainingError, match="training loss is nan at epoch 1"):
        make_fit(content, tmp_path, max_epochs=2, patience=2)


def test_non_finite_training_stops_names_the_parameters_and_keeps_the_state(tmp_path, monkeypatch):
    from strf_runner import metrics

    calls = []
    mse = metrics.LOSSES["mse"]

    def poisoned(pred, target, *args, **kwargs):  # finite for epoch 1 (4 steps), NaN from epoch 2 on
        calls.append(1)
        loss = mse(pred, target, *args, **kwargs)
        return loss if len(calls) <= 4 else loss * float("nan")

    monkeypatch.setitem(metrics.LOSSES, "mse", poisoned)
    with pytest.raises(TrainingError, match=r"at epoch 2 .*non-finite values now in: .*readout\.") as err:
        run_experiment(tiny_config(tmp_path, max_epochs=3), tmp_path / "run")
    assert "failed_state.pt" in str(err.value)
    failed = json.loads((tmp_path / "run" / "failed.json").read_text())
    assert failed["type"] == "TrainingError" and failed["state"] == "failed_state.pt"
    state = torch.load(tmp_path / "run" / "failed_state.pt", weights_only=True)
    assert "optimizer" in state and not (tmp_path / "run" / "summary.json").exists()
    assert FitState.load(tmp_path / "run" / "last.pt").epoch == 1  # the last good epoch, resumable


def test_gradient_clipping_bounds_every_step(tmp_path, monkeypatch):
    """Every optimiser step sees gradients of global norm <= grad_clip (and an unclipped run does not)."""
    norms = []
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    cfg = tiny_config(tmp_path, max_epochs=2)
    cfg.trainer.grad_clip = 1e-3
    assert run_experiment(cfg, tmp_path / "clipped").summary.epochs_run == 2
    assert len(norms) == 2 * 4 and max(norms) <= 1e-3 * (1 + 1e-5)
    norms.clear()
    run_experiment(tiny_config(tmp_path, max_epochs=2), tmp_path / "free")
    assert max(norms) > 1e-2  # the clip did something


@pytest.mark.parametrize(
    "kwargs, key",
    [({"loss": "l1"}, "trainer.loss"), ({"monitor": "val_acc"}, "trainer.monitor"), ({"mode": "up"}, "trainer.mode"),
     ({"patience": 0}, "trainer.patience=0 must be >= 1"), ({"grad_clip": -1.0}, "trainer.grad_clip")],
)
def test_bad_options_name_the_key(kwargs, key):
    model = LinearSTRF(2, 2, 2)
    with pytest.raises(ConfigError, match=key):
        Fitter(model, torch.optim.AdamW(model.parameters()), TrainerConfig(**kwargs))
