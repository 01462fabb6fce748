"""Interrupted runs resume to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from strf_runner.errors import ResultsError
from strf_runner.experiment import run_experiment
from strf_runner.training.fitter import FitState
from tests.helpers.commands import TINY_ARGS
from tests.helpers.runs import Interrupt, interrupt_after, tiny_config


def test_resume_ends_exactly_like_an_uninterrupted_run(tmp_path):
    whole = run_experiment(tiny_config(tmp_path, max_epochs=6), tmp_path / "whole")
    cfg = tiny_config(tmp_path, max_epochs=6)
    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "cut", on_epoch_end=interrupt_after(3))
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert FitState.load(tmp_path / "cut" / "last.pt").epoch == 3
    cfg.resume = True
    resumed = run_experiment(cfg, tmp_path / "cut")
    pd.testing.assert_frame_equal(resumed.neurons, whole.neurons)
    history = [pd.read_csv(tmp_path / d / "history.csv").drop(columns=["seconds", "val_seconds"]) for d in ("whole", "cut")]
    pd.testing.assert_frame_equal(*history)
    assert resumed.summary.best_epoch == whole.summary.best_epoch


def test_resume_refuses_a_different_config_or_a_missing_state(tmp_path):
    cfg = tiny_config(tmp_path, max_epochs=6)
    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "cut", on_epoch_end=interrupt_after(2))
    cfg.resume = True
    cfg.trainer.lr = 0.05
    with pytest.raises(ResultsError, match=r"config differs from the interrupted run's in \['trainer.lr'\]"):
        run_experiment(cfg, tmp_path / "cut")
    with pytest.raises(ResultsError, match="holds no interrupted run"):
        run_experiment(cfg, tmp_path / "empty")


@pytest.mark.e2e
def test_sigterm_then_resume_from_the_command_line(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "STRF_RUNNER_DATA": str(tmp_path / "cache")}
    epochs = 400
    args = [sys.executable, "-m", "strf_runner.cli", *TINY_ARGS, f"trainer.max_epochs={epochs}",
            f"trainer.patience={epochs}", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "last.pt").exists():  # its first epoch is done; 400 take seconds more
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended or never saved an epoch"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "resume=true" in err
    assert not (run_dir / "summary.json").exists()
    done = FitState.load(run_dir / "last.pt").epoch
    assert 1 <= done < epochs
    again = subprocess.run([*args, "resume=true"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == epochs and summary["stop_reason"] == "max_epochs"
    assert len(pd.read_csv(run_dir / "history.csv")) == summary["epochs_run"]


def test_a_sweep_job_continues_an_interrupted_run_with_its_config(tmp_path):
    from strf_runner.config import resolve_config
    from strf_runner.data.digest import data_identity
    from strf_runner.sweep import prepare_resume

    cfg = tiny_config(tmp_path, max_epochs=5)
    old = tmp_path / "sweeps" / "old" / "0_job"
    with pytest.raises(Interrupt):
        run_experiment(cfg, old, on_epoch_end=interrupt_after(2))
    whole = run_experiment(tiny_config(tmp_path, max_epochs=5), tmp_path / "whole")
    new = tmp_path / "sweeps" / "new" / "0_job"
    data = data_identity(json.loads((old / "data.json").read_text())["path"])
    assert prepare_resume(resolve_config(tiny_config(tmp_path, max_epochs=4)).hash, data, new, [tmp_path / "sweeps"]) is None  # other config
    assert prepare_resume(resolve_config(cfg).hash, data, new, [tmp_path / "sweeps"]) == old
    assert FitState.load(new / "last.pt").epoch == 2
    cfg.resume = True
    pd.testing.assert_frame_equal(run_experiment(cfg, new).neurons, whole.neurons)
