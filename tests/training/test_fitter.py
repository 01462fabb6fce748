"""The fitter: strict improvement, early stopping, best-validation restore, determinism."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from strf_runner.data.collate import DeviceLoader
from strf_runner.data.dataset import split_datasets
from strf_runner.errors import ConfigError, TrainingError
from strf_runner.frontends.native import NativeSpectrogram
from strf_runner.models.encoding import EncodingModel
from strf_runner.models.linear import LinearSTRF
from strf_runner.training.checkpoint import load_checkpoint
from strf_runner.training.fitter import Fitter, evaluate


def make_fit(content, tmp_path, seed=0, lr=0.05, **kwargs):
    sets = split_datasets(content, "spectrogram")
    torch.manual_seed(seed)
    model = EncodingModel(NativeSpectrogram(6), LinearSTRF(6, 4, 3))
    snapshots = {}

    def snapshot(record, best, best_epoch):
        snapshots[record.epoch] = copy.deepcopy(model.state_dict())

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    fitter = Fitter(model, opt, checkpoint_path=tmp_path / "best.pt", on_epoch_end=snapshot, **kwargs)
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
    fmax = Fitter(model, opt, mode="max", min_delta=0.1)
    assert fmax.improved(0.5, -math.inf)
    assert not fmax.improved(0.55, 0.5)  # not more than min_delta
    assert not fmax.improved(0.6, 0.5)  # equal to best + min_delta is not strict
    assert fmax.improved(0.61, 0.5)
    assert not fmax.improved(math.nan, -math.inf)
    fmin = Fitter(model, opt, mode="min", monitor="val_loss")
    assert fmin.improved(0.4, 0.5) and not fmin.improved(0.5, 0.5) and not fmin.improved(math.nan, math.inf)


def test_nan_loss_stops_with_a_clear_error(tmp_path, content):
    for s in content.stimuli:
        s.spectrogram[:] = float("inf")
    with pytest.raises(TrainingError, match="training loss is nan at epoch 1"):
        make_fit(content, tmp_path, max_epochs=2, patience=2)


@pytest.mark.parametrize(
    "kwargs, key",
    [({"loss": "l1"}, "trainer.loss"), ({"monitor": "val_acc"}, "trainer.monitor"), ({"mode": "up"}, "trainer.mode"),
     ({"patience": 0}, "trainer.max_epochs and trainer.patience")],
)
def test_bad_options_name_the_key(kwargs, key):
    model = LinearSTRF(2, 2, 2)
    with pytest.raises(ConfigError, match=key):
        Fitter(model, torch.optim.AdamW(model.parameters()), **kwargs)
