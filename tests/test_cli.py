"""``strf-run`` as a user runs it: a subprocess, its exit code, its files and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.commands import TINY_ARGS, strf_run


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.e2e
def test_smoke_run_writes_results_and_prints_the_table(tmp_path, cache):
    proc = strf_run(TINY_ARGS + [f"hydra.run.dir={tmp_path / 'run'}"], cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    for name in ("config.yaml", "neurons.csv", "history.csv", "summary.json", "best.pt"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_params"] == 16 * (34 * 9 + 1 + 2)
    assert summary["epochs_run"] <= 3 and summary["device"] == "cpu"
    neurons = pd.read_csv(run / "neurons.csv")
    assert len(neurons) == 16 and {"id", "cc_norm", "cc_abs", "signal_power", "cc_max", "valid"} <= set(neurons)
    assert "test cc_norm mean" in proc.stdout and f"results: {run}" in proc.stdout
    assert len(pd.read_csv(run / "history.csv")) == summary["epochs_run"]


@pytest.mark.e2e
def test_default_output_dir_is_under_outputs(tmp_path, cache):
    proc = strf_run(TINY_ARGS + ["trainer.max_epochs=1"], cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "outputs" / "runs").glob("*/*/summary.json"))) == 1


@pytest.mark.e2e
def test_finished_run_is_not_overwritten(tmp_path, cache):
    args = TINY_ARGS + ["trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"]
    assert strf_run(args, cache, tmp_path).returncode == 0
    before = (tmp_path / "run" / "summary.json").read_text()
    proc = strf_run(args, cache, tmp_path)
    assert proc.returncode == 2
    assert "already holds a finished run" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "run" / "summary.json").read_text() == before


@pytest.mark.parametrize(
    "args, expected",
    [
        (["trainer.max_epochz=3"], "config key 'trainer.max_epochz' does not exist"),
        (["trainer.lr=fast"], "config key 'trainer.lr'"),
        (["frontend=leafy"], "Could not find 'frontend/leafy'"),
        (["trainer.lr=-1"], "trainer.lr=-1.0 must be a finite number > 0"),
        (["dataset=hdf5", "dataset.path=missing.h5"], "missing.h5 does not exist"),
    ],
)
@pytest.mark.e2e
def test_bad_input_is_one_line_without_traceback(tmp_path, cache, args, expected):
    proc = strf_run(args, cache, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("strf-run: error:"), proc.stderr


@pytest.mark.e2e
def test_corrupt_dataset_file(tmp_path, cache):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    proc = strf_run(["dataset=hdf5", f"dataset.path={bad}"], cache, tmp_path)
    assert proc.returncode == 2 and "bad.h5" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.e2e
def test_help_and_cfg(tmp_path, cache):
    proc = strf_run(["--help"], cache, tmp_path)
    assert proc.returncode == 0
    for word in ("dataset:", "frontend:", "model:", "trainer:", "synth_tiny", "Examples"):
        assert word in proc.stdout
    assert "schema" not in proc.stdout.split("== Composed config")[0]
    proc = strf_run(["--cfg", "job", "seed=3"], cache, tmp_path)
    assert proc.returncode == 0 and "seed: 3" in proc.stdout and "temporal_window_size: 9" in proc.stdout


@pytest.mark.e2e
def test_ns1_leaf_run_on_the_real_release(tmp_path, cache, ns1_raw_dir):
    """dataset=ns1 from an existing copy, the waveform view through LEAF, a named neuron selection."""
    args = ["dataset=ns1", f"dataset.root={ns1_raw_dir}", "dataset.neurons=valid73", "frontend=leaf"]
    proc = strf_run(args + ["trainer.max_epochs=1", "device=cpu", f"hydra.run.dir={tmp_path / 'run'}"], cache, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["n_params"] == 73 * (34 * 9 + 3) + 7 * 34 and summary["lr"] == 3e-3
    assert summary["view"] == "waveform" and summary["dataset"]["native_source"] == "recomputed"
    assert len(pd.read_csv(tmp_path / "run" / "neurons.csv")) == 73
    assert not any(p.suffix == ".h5" for p in ns1_raw_dir.rglob("*")), "nothing is written into the release"
