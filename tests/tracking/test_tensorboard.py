"""logger=tensorboard against TensorBoard itself: event files read back with its own reader."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing import event_accumulator  # in the test extra: never skipped
from tests.helpers.runs import Interrupt, interrupt_after, tiny_config

from strf_runner.config import resolve_config
from strf_runner.config import TrackerConfig
from strf_runner.errors import ConfigError, StrfRunnerWarning
from strf_runner.experiment import run_experiment
from strf_runner.registry import Entry
from strf_runner.tracking import base
from strf_runner.tracking.tensorboard import TensorBoardLoggerConfig

EPOCH_TAGS = {f"epoch/{k}" for k in ("train_loss", "train_cc_norm", "val_loss", "val_cc", "val_cc_norm", "seconds")}


def read_events(log_dir) -> event_accumulator.EventAccumulator:
    events = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
    events.Reload()
    return events


def texts(events, tag: str) -> list[str]:
    return [e.tensor_proto.string_val[0].decode() for e in events.Tensors(f"{tag}/text_summary")]


def tensorboard_config(tmp_path, **kwargs):
    cfg = tiny_config(tmp_path, **kwargs)
    cfg.logger = {"tensorboard": TensorBoardLoggerConfig()}
    return cfg


def scalars(events, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in events.Scalars(tag)}


def test_every_epoch_scalar_and_the_test_scores_match_the_run_files(tmp_path):
    result = run_experiment(tensorboard_config(tmp_path, max_epochs=4), tmp_path / "run")
    events = read_events(tmp_path / "run" / "tb")
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert EPOCH_TAGS <= set(events.Tags()["scalars"])
    for tag in EPOCH_TAGS:
        logged = scalars(events, tag)
        column = history.set_index("epoch")[tag.removeprefix("epoch/")]
        assert sorted(logged) == list(column.index), tag
        np.testing.assert_allclose([logged[e] for e in column.index], column.to_numpy(), rtol=1e-5, err_msg=tag)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    best = summary["best_epoch"]
    assert scalars(events, "epoch/best_epoch")[4] == best
    for key in ("test_mean_cc_norm", "test_median_cc_norm", "test_n_valid", "n_params"):
        assert scalars(events, f"test/{key}") == pytest.approx({best: summary[key]}, rel=1e-6), key
    (histogram,) = events.Histograms("test/cc_norm_per_neuron")
    valid = result.neurons.loc[result.neurons["valid"], "cc_norm"]
    assert histogram.histogram_value.num == len(valid)
    assert histogram.histogram_value.sum == pytest.approx(valid.sum(), rel=1e-6)
    assert texts(events, "status")[-1].startswith("finished: max_epochs")
    assert summary["config_hash"] in texts(events, "tags")[0]


def test_a_resumed_run_continues_its_own_curves(tmp_path):
    cfg = tensorboard_config(tmp_path, max_epochs=5)

    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "run", on_epoch_end=interrupt_after(2))
    cfg.resume = True
    run_experiment(cfg, tmp_path / "run")
    events = read_events(tmp_path / "run" / "tb")
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    logged = events.Scalars("epoch/val_cc_norm")
    assert [e.step for e in logged] == [1, 2, 3, 4, 5]  # each epoch once, in one log dir
    np.testing.assert_allclose([e.value for e in logged], history["val_cc_norm"], rtol=1e-5)
    assert texts(events, "status") == ["running", "interrupted", "resumed", "finished: max_epochs, best epoch "
                                       + str(json.loads((tmp_path / "run" / "summary.json").read_text())["best_epoch"])]


def test_a_tracker_added_on_resume_gets_the_earlier_epochs_too(tmp_path):
    cfg = tiny_config(tmp_path, max_epochs=5)  # logger=none before the interruption
    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "run", on_epoch_end=interrupt_after(2))
    cfg.logger, cfg.resume = {"tensorboard": TensorBoardLoggerConfig()}, True
    run_experiment(cfg, tmp_path / "run")
    events = read_events(tmp_path / "run" / "tb")
    history = pd.read_csv(tmp_path / "run" / "history.csv").set_index("epoch")
    for tag in EPOCH_TAGS:
        logged = scalars(events, tag)
        assert sorted(logged) == [1, 2, 3, 4, 5], tag
        np.testing.assert_allclose([logged[e] for e in history.index], history[tag.removeprefix("epoch/")],
                                   rtol=1e-5, err_msg=tag)
    assert texts(events, "status")[0] == "running"  # a new TensorBoard run, not the continuation of one


def test_a_tracker_that_fails_is_one_warning_and_the_run_finishes(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the log dir would go")
    cfg = tensorboard_config(tmp_path, max_epochs=2)
    cfg.logger["tensorboard"].save_dir = str(blocker)
    with pytest.warns(StrfRunnerWarning, match="logger tensorboard failed while starting: .*the run goes on") as caught:
        run_experiment(cfg, tmp_path / "run")
    assert len([w for w in caught if "logger tensorboard" in str(w.message)]) == 1
    assert (tmp_path / "run" / "summary.json").is_file() and (tmp_path / "run" / "neurons.csv").is_file()


def test_a_missing_tracker_package_is_a_one_line_config_error(monkeypatch):
    class Missing(base.Tracker):
        kind, package = "nowhere", "no_such_tracking_package_xyz"

    base.TRACKERS.names()  # the built-in trackers first, then this one beside them for this test only
    monkeypatch.setitem(base.TRACKERS.entries, "nowhere", Entry("nowhere", Missing, TrackerConfig))
    with pytest.raises(ConfigError, match=r'logger=nowhere needs the no_such_tracking_package_xyz package: pip install'):
        base.check_installed("nowhere")


def test_trackers_are_not_part_of_a_runs_identity(tmp_path):
    plain, tracked = tiny_config(tmp_path), tensorboard_config(tmp_path)
    tracked.logger["tensorboard"].save_dir = str(tmp_path / "elsewhere")
    assert resolve_config(plain).hash == resolve_config(tracked).hash
