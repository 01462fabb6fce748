"""Run directories built by hand, for the results and sweep code."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from strf_runner.identity import config_hash


#: The 12 neuron ids of every fake run ("unit00" .. "unit11").
FAKE_NEURON_IDS = [f"unit{k:02d}" for k in range(12)]


#: The front-end learning rate each fake run's config records, by front-end.
FAKE_FRONTEND_LR = {"native": 1e-3, "leaf": 3e-3, "mel": 1e-3}


def fake_scores(frontend: str, seed: int) -> np.ndarray:
    """Per-neuron test cc_norm of a fake run, shape (12,): 0.2 .. 0.8 across neurons, plus a front-end gain
    (native 0, leaf +0.1, mel -0.02) and N(0, 0.03) noise drawn from (frontend, seed), the same in every process."""
    rng = np.random.default_rng(zlib.crc32(f"{frontend}/{seed}".encode()))
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
