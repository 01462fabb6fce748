"""Interrupted runs resume to the same result; non-finite training stops loudly and keeps its state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from strf_runner.errors import ResultsError, TrainingError
from strf_runner.experiment import run_experiment
from strf_runner.training.fitter import FitState
from tests.test_cli import TINY
from tests.test_experiment import tiny_config


class Interrupt(KeyboardInterrupt):
    pass


def interrupt_after(epoch: int):
    """A progress hook that stops the run like Ctrl-C once ``epoch`` epochs are done."""
    from contextlib import contextmanager

    @contextmanager
    def progress(max_epochs):
        def on_epoch_end(record, best, best_epoch):
            if record.epoch == epoch:
                raise Interrupt

        yield on_epoch_end

    return progress


def test_resume_ends_exactly_like_an_uninterrupted_run(tmp_path):
    whole = run_experiment(tiny_config(tmp_path, max_epochs=6), tmp_path / "whole")
    cfg = tiny_config(tmp_path, max_epochs=6)
    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "cut", progress=interrupt_after(3))
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert FitState.load(tmp_path / "cut" / "last.pt").epoch == 3
    cfg.resume = True
    resumed = run_experiment(cfg, tmp_path / "cut")
    pd.testing.assert_frame_equal(resumed.neurons, whole.neurons)
    history = [pd.read_csv(tmp_path / d / "history.csv").drop(columns=["seconds", "val_seconds"]) for d in ("whole", "cut")]
    pd.testing.assert_frame_equal(*history)
    assert resumed.summary["best_epoch"] == whole.summary["best_epoch"]


def test_resume_refuses_a_different_config_or_a_missing_state(tmp_path):
    cfg = tiny_config(tmp_path, max_epochs=6)
    with pytest.raises(Interrupt):
        run_experiment(cfg, tmp_path / "cut", progress=interrupt_after(2))
    cfg.resume = True
    cfg.trainer.lr = 0.05
    with pytest.raises(ResultsError, match=r"config differs from the interrupted run's in \['trainer.lr'\]"):
        run_experiment(cfg, tmp_path / "cut")
    with pytest.raises(ResultsError, match="holds no interrupted run"):
        run_experiment(cfg, tmp_path / "empty")


def test_sigterm_then_resume_from_the_command_line(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "STRF_RUNNER_DATA": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "strf_runner.cli", *TINY, "trainer.max_epochs=100", "trainer.patience=100",
            f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "last.pt").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "resume=true" in err
    assert not (run_dir / "summary.json").exists()
    done = FitState.load(run_dir / "last.pt").epoch
    assert 1 <= done < 100
    again = subprocess.run([*args, "resume=true", "trainer.max_epochs=100"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == 100 and summary["stop_reason"] == "max_epochs"
    assert len(pd.read_csv(run_dir / "history.csv")) == summary["epochs_run"]


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
    assert run_experiment(cfg, tmp_path / "clipped").summary["epochs_run"] == 2
    assert len(norms) == 2 * 4 and max(norms) <= 1e-3 * (1 + 1e-5)
    norms.clear()
    run_experiment(tiny_config(tmp_path, max_epochs=2), tmp_path / "free")
    assert max(norms) > 1e-2  # the clip did something


def test_a_sweep_job_continues_an_interrupted_run_with_its_config(tmp_path):
    from strf_runner.sweep import prepare_resume

    cfg = tiny_config(tmp_path, max_epochs=5)
    old = tmp_path / "sweeps" / "old" / "0_job"
    with pytest.raises(Interrupt):
        run_experiment(cfg, old, progress=interrupt_after(2))
    whole = run_experiment(tiny_config(tmp_path, max_epochs=5), tmp_path / "whole")
    new = tmp_path / "sweeps" / "new" / "0_job"
    assert prepare_resume(tiny_config(tmp_path, max_epochs=4), new, [tmp_path / "sweeps"]) is None  # other config
    assert prepare_resume(cfg, new, [tmp_path / "sweeps"]) == old
    assert FitState.load(new / "last.pt").epoch == 2
    cfg.resume = True
    pd.testing.assert_frame_equal(run_experiment(cfg, new).neurons, whole.neurons)
