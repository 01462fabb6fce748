"""Helpers shared by more than one test module: plain functions and constants, no fixtures.

Test modules import from here (``from tests.helpers import ...``), never from one another. Fixtures
stay in the conftest.py files (tests/conftest.py wraps ``make_content`` as ``content`` and
``content_factory``).

- Datasets in memory: ``make_content``.
- One run in-process: ``TINY_DATASET``, ``tiny_config``.
- ``strf-run`` as a subprocess: ``TINY_ARGS``, ``strf_run``.
- Run directories built by hand, for the results and sweep code: ``run_config``, ``fake_scores``,
  ``write_fake_run`` (over the neurons ``FAKE_NEURON_IDS``).
- The independent metric reference (plain loops in numpy float64, explicit formulas) that
  strf_runner.metrics is tested against: ``ref_psth``, ``ref_signal_power``, ``ref_correlation``,
  ``ref_cc_norm``, ``ref_cc_max``, ``ref_mse``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from strf_runner.config import FrontendConfig, LinearModelConfig, RunConfig, SynthDatasetConfig, TrainerConfig
from strf_runner.data.schema import DatasetContent, Stimulus
from strf_runner.identity import config_hash

# --------------------------------------------------------------------------------------------
# Datasets in memory
# --------------------------------------------------------------------------------------------


def make_content(
    n_stimuli: int = 5,
    n_neurons: int = 4,
    n_repeats: int = 3,
    n_bands: int = 6,
    hop: int = 8,
    lengths: list[int] | None = None,
    seed: int = 0,
) -> DatasetContent:
    """A random dataset with both views; stimuli may differ in length (``lengths`` in bins).

    Stimulus i (named "s{i}", of length T = ``lengths[i]``, default 20 + 3 i) holds Poisson(1) responses
    (n_neurons, n_repeats, T) float32, a normal spectrogram (n_bands, T) and a normal waveform (T * hop,);
    splits are train = all but the last two stimuli, val = [n - 2], test = [n - 1]; dt 5 ms, audio at
    hop * 200 Hz, neurons "u0", "u1", ...
    """
    rng = np.random.default_rng(seed)
    lengths = lengths or [20 + 3 * i for i in range(n_stimuli)]
    stimuli = []
    for i, t in enumerate(lengths):
        responses = rng.poisson(1.0, size=(n_neurons, n_repeats, t)).astype(np.float32)
        stimuli.append(
            Stimulus(
                name=f"s{i}",
                type="noise" if i % 2 else "tone",
                responses=responses,
                spectrogram=rng.normal(size=(n_bands, t)).astype(np.float32),
                waveform=rng.normal(size=t * hop).astype(np.float32),
            )
        )
    n = len(lengths)
    return DatasetContent(
        name="tiny",
        dt_ms=5.0,
        neuron_ids=[f"u{k}" for k in range(n_neurons)],
        stimuli=stimuli,
        splits={"train": list(range(n - 2)), "val": [n - 2], "test": [n - 1]},
        audio_fs=hop * 200.0,
        spectrogram_freqs=np.geomspace(500, 8000, n_bands),
        neuron_meta={"depth_um": np.arange(n_neurons) * 100, "grade": np.array(["Yes", "No"] * (n_neurons // 2))},
        attrs={"native_source": "random", "description": "test data"},
    )


# --------------------------------------------------------------------------------------------
# One run in-process
# --------------------------------------------------------------------------------------------

#: The tiny synthetic dataset's fields: 6 stimuli of 1 s (4 train, 1 val, 1 test), 16 neurons, 6 repeats.
TINY_DATASET = dict(name="synth_tiny", n_stimuli=6, duration_s=1.0, n_neurons=16, n_repeats=6, n_train=4, n_val=1,
                    n_test=1)


class Interrupt(KeyboardInterrupt):
    """What ``interrupt_after`` raises: a Ctrl-C the test can tell from a real one."""


def interrupt_after(epoch: int):
    """An epoch callback that stops the run like Ctrl-C once ``epoch`` epochs are done."""

    def on_epoch_end(record, best, best_epoch, max_epochs):
        if record.epoch == epoch:
            raise Interrupt

    return on_epoch_end


def tiny_config(tmp_path, seed=0, max_epochs=4, **dataset) -> RunConfig:
    """A RunConfig built by hand: native front-end + Linear readout on ``TINY_DATASET`` (fields overridden
    by ``dataset``), cached under ``tmp_path / "cache"``, ``max_epochs`` epochs with patience as long, on CPU."""
    return RunConfig(
        dataset=SynthDatasetConfig(root=str(tmp_path / "cache"), **{**TINY_DATASET, **dataset}),
        frontend=FrontendConfig(name="native"),
        model=LinearModelConfig(),
        trainer=TrainerConfig(max_epochs=max_epochs, patience=max_epochs, device="cpu"),
        seed=seed,
        run_name="test",
    )


# --------------------------------------------------------------------------------------------
# strf-run as a subprocess
# --------------------------------------------------------------------------------------------

#: Command-line overrides for a short strf-run: the tiny synthetic dataset, the smoke trainer, on CPU.
TINY_ARGS = ["dataset=synth_tiny", "trainer=smoke", "device=cpu"]


def strf_cmd() -> list[str]:
    """The ``strf-run`` command: the installed script, else the module."""
    exe = shutil.which("strf-run")
    return [exe] if exe else [sys.executable, "-m", "strf_runner.cli"]


def strf_env(cache: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ with its own dataset cache (and ``env`` on top), without HYDRA_FULL_ERROR."""
    out = {**os.environ, "STRF_RUNNER_DATA": str(cache), **(env or {})}
    out.pop("HYDRA_FULL_ERROR", None)
    return out


def strf_run(args: list[str], cache: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``strf-run ARGS`` as a user runs it: a subprocess with its own dataset cache (and extra env)."""
    return subprocess.run(strf_cmd() + args, cwd=cwd, env=strf_env(cache, env), capture_output=True, text=True,
                          timeout=300)


# --------------------------------------------------------------------------------------------
# Run directories built by hand
# --------------------------------------------------------------------------------------------

#: The 12 neuron ids of every fake run ("unit00" .. "unit11").
FAKE_NEURON_IDS = [f"unit{k:02d}" for k in range(12)]
#: The front-end learning rate each fake run's config records, by front-end.
FAKE_FRONTEND_LR = {"native": 1e-3, "leaf": 3e-3, "mel": 1e-3}


def fake_scores(frontend: str, seed: int) -> np.ndarray:
    """Per-neuron test cc_norm of a fake run, shape (12,): 0.2 .. 0.8 across neurons, plus a front-end gain
    (native 0, leaf +0.1, mel -0.02) and N(0, 0.03) noise drawn from (frontend, seed); the same within a process."""
    rng = np.random.default_rng(hash((frontend, seed)) % 2**32)
    base = np.linspace(0.2, 0.8, len(FAKE_NEURON_IDS))
    gain = {"native": 0.0, "leaf": 0.1, "mel": -0.02}[frontend]
    return base + gain + rng.normal(0, 0.03, len(FAKE_NEURON_IDS))


def run_config(frontend: str, seed: int, model: str = "linear", lr: float | None = None) -> dict:
    """The resolved config.yaml (as a dict) of a synth run with this front-end ("native", "leaf" or "mel"),
    seed (also the data seed), readout name and trainer lr."""
    return {
        "dataset": {"name": "synth"},
        "frontend": {"name": frontend, "lr": FAKE_FRONTEND_LR[frontend]},
        "model": {"name": model, "temporal_window_size": 9},
        "trainer": {"lr": lr, "threads": None, "device": "cpu", "monitor": "val_cc_norm"},
        "seed": seed,
        "data_seed": seed,
        "device": "cpu",
        "run_name": f"{frontend}-{model}-synth-s{seed}",
        "sweep_root": "outputs/multirun",
        "reuse_finished": True,
    }


def write_fake_run(
    path: Path, cfg: dict, cc: np.ndarray | None, status: str = "finished", shuffle: bool = False,
    invalid: tuple[int, ...] = (),
) -> Path:
    """A run directory at ``path`` (created; it must not exist) with config.yaml from ``cfg``; returns ``path``.

    ``status``: "finished" also writes neurons.csv (neuron, id, cc_norm, valid: one row per
    ``FAKE_NEURON_IDS``, cc_norm = ``cc`` (12,) and NaN at the ``invalid`` rows; rows shuffled if ``shuffle``)
    and summary.json (test_mean_cc_norm, n_params, wall_time_s, best_val_cc_norm, config_hash);
    "failed" writes failed.json; anything else (e.g. "unfinished") writes nothing more.
    """
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    if status == "failed":
        (path / "failed.json").write_text(json.dumps({"error": "trainer.lr must be > 0"}))
    if status != "finished":
        return path
    valid = np.ones(len(FAKE_NEURON_IDS), bool)
    valid[list(invalid)] = False
    table = pd.DataFrame({"neuron": range(len(FAKE_NEURON_IDS)), "id": FAKE_NEURON_IDS,
                          "cc_norm": np.where(valid, cc, np.nan), "valid": valid})
    if shuffle:  # neurons are matched by id, never by row order
        table = table.sample(frac=1.0, random_state=0)
    table.to_csv(path / "neurons.csv", index=False)
    summary = {"test_mean_cc_norm": float(np.nanmean(np.where(valid, cc, np.nan))), "n_params": 36771,
               "wall_time_s": 10.0, "best_val_cc_norm": 0.5, "config_hash": config_hash(cfg)}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


# --------------------------------------------------------------------------------------------
# Plain loop reference for the metrics (numpy, float64, explicit formulas)
#
# Shapes: resp (B, N, R, T) stimuli x neurons x repeats x bins, NaN where missing; pred (B, N, 1, T).
# Per-neuron results are (N,) arrays, NaN where the quantity is undefined.
# --------------------------------------------------------------------------------------------


def ref_psth(resp):
    """The mean over valid (non-NaN) repeats, (B, N, 1, T); NaN at bins with no valid repeat."""
    B, N, R, T = resp.shape
    out = np.full((B, N, 1, T), np.nan)
    for b in range(B):
        for n in range(N):
            for t in range(T):
                vals = [resp[b, n, r, t] for r in range(R) if not math.isnan(resp[b, n, r, t])]
                if vals:
                    out[b, n, 0, t] = sum(vals) / len(vals)
    return out


def _var_unbiased(x):
    x = list(x)
    mu = sum(x) / len(x)
    return sum((v - mu) ** 2 for v in x) / (len(x) - 1)


def ref_signal_power(resp):
    """Rule: valid bins = bins with >= 1 valid repeat; used repeats = valid at every valid bin.

    Returns (signal power, noise power), each (N,): per-stimulus estimates averaged with the number of
    valid bins as weights, over stimuli with >= 2 used repeats and >= 2 valid bins."""
    B, N, R, T = resp.shape
    sp = np.full(N, np.nan)
    npow = np.full(N, np.nan)
    for n in range(N):
        num_sp = num_np = wsum = 0.0
        for b in range(B):
            bins = [t for t in range(T) if any(not math.isnan(resp[b, n, r, t]) for r in range(R))]
            reps = [r for r in range(R) if bins and all(not math.isnan(resp[b, n, r, t]) for t in bins)]
            Rv, Tv = len(reps), len(bins)
            if Rv < 2 or Tv < 2:
                continue
            block = np.array([[resp[b, n, r, t] for t in bins] for r in reps])
            mean_tr = [sum(block[:, j]) / Rv for j in range(Tv)]
            V = _var_unbiased(mean_tr)
            TP = sum(_var_unbiased(block[i]) for i in range(Rv)) / Rv
            spb = (Rv * V - TP) / (Rv - 1)
            num_sp += Tv * spb
            num_np += Tv * (TP - spb)
            wsum += Tv
        if wsum > 0:
            sp[n] = num_sp / wsum
            npow[n] = num_np / wsum
    return sp, npow


def _pairs(pred, resp, n):
    g = ref_psth(resp)
    B, _, _, T = resp.shape
    ps, gs = [], []
    for b in range(B):
        for t in range(T):
            if not math.isnan(g[b, n, 0, t]):
                ps.append(pred[b, n, 0, t])
                gs.append(g[b, n, 0, t])
    return ps, gs


def ref_correlation(pred, resp):
    """Pearson correlation of prediction and PSTH over the bins where the PSTH is defined, (N,)."""
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        ps, gs = _pairs(pred, resp, n)
        if len(ps) < 2:
            continue
        mp, mg = sum(ps) / len(ps), sum(gs) / len(gs)
        spp = sum((a - mp) ** 2 for a in ps)
        sgg = sum((c - mg) ** 2 for c in gs)
        spg = sum((a - mp) * (c - mg) for a, c in zip(ps, gs))
        if math.sqrt(spp * sgg) < 1e-12:
            continue
        out[n] = spg / math.sqrt(spp * sgg)
    return out


def ref_cc_norm(pred, resp):
    """Normalised correlation cov(pred, PSTH) / sqrt(var(pred) * signal power), (N,); NaN where fewer than
    2 bins have a PSTH, the signal power is not a finite number > 0, or the prediction is constant."""
    sp, _ = ref_signal_power(resp)
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        ps, gs = _pairs(pred, resp, n)
        k = len(ps)
        if k < 2 or not math.isfinite(sp[n]) or sp[n] <= 0:
            continue
        mp, mg = sum(ps) / k, sum(gs) / k
        cov = sum((a - mp) * (c - mg) for a, c in zip(ps, gs)) / (k - 1)
        var_p = sum((a - mp) ** 2 for a in ps) / (k - 1)
        if var_p < 1e-12:
            continue
        out[n] = cov / math.sqrt(var_p * sp[n])
    return out


def ref_cc_max(resp):
    """The ceiling sqrt(signal power / var(PSTH)), (N,); 0 where the signal power is <= 0."""
    sp, _ = ref_signal_power(resp)
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        _, gs = _pairs(np.zeros((resp.shape[0], N, 1, resp.shape[3])), resp, n)
        if len(gs) < 2 or math.isnan(sp[n]):
            continue
        var_g = _var_unbiased(gs)
        if var_g < 1e-12:
            continue
        out[n] = 0.0 if sp[n] <= 0 else math.sqrt(sp[n] / var_g)
    return out


def ref_mse(pred, resp):
    """Mean squared error of prediction against PSTH over the bins where the PSTH is defined, (N,)."""
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        ps, gs = _pairs(pred, resp, n)
        if ps:
            out[n] = sum((a - c) ** 2 for a, c in zip(ps, gs)) / len(ps)
    return out
