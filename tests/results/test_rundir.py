"""Run directories: atomic files, JSON without NaN, finished runs never overwritten."""

from __future__ import annotations

import json
import math
import os
import re

import pandas as pd
import pytest
import torch

from strf_runner.errors import ResultsError
from strf_runner.metrics import NeuronScores
from strf_runner.results.rundir import RunDir, atomic_write_text
from strf_runner.results.summary import RunSummary
from strf_runner.results.tables import neuron_table, score_summary


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "a.txt", "old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"], "no temp file may be left behind"


def test_finished_run_is_never_overwritten(tmp_path):
    run = RunDir(tmp_path / "run")
    run.claim()
    run.write_summary(RunSummary(test_mean_cc_norm=0.5))
    before = (tmp_path / "run" / "summary.json").read_text()
    with pytest.raises(ResultsError, match="already holds a finished run"):
        RunDir(tmp_path / "run").claim()
    assert (tmp_path / "run" / "summary.json").read_text() == before


def test_unfinished_run_dir_can_be_claimed(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("x: 1")
    run = RunDir(tmp_path / "run")
    run.claim()
    assert (tmp_path / "run" / "run.lock").is_file() and json.loads((tmp_path / "run" / "run.lock").read_text())["pid"] == os.getpid()
    run.release()
    assert not (tmp_path / "run" / "run.lock").exists() and (tmp_path / "run" / "config.yaml").read_text() == "x: 1"


def test_summary_json_has_null_for_nan_and_reads_back_as_nan(tmp_path):
    run = RunDir(tmp_path)
    run.write_json("x.json", {"a": math.nan, "b": [1.0, math.inf], "c": {"d": 2.0}})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.0, None], "c": {"d": 2.0}}
    run.write_summary(RunSummary(test_mean_cc_norm=math.nan, n_params=3, best_score=0.5))
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["test_mean_cc_norm"] is None and written["best_val_cc_norm"] == 0.5 and "resumed_from_epoch" not in written
    back = run.summary()
    assert math.isnan(back.test_mean_cc_norm) and back.n_params == 3 and back.best_score == 0.5


@pytest.mark.parametrize("edit, key", [({"n_params": "many"}, "n_params"), ({"dataset": {"splits": [1]}}, "dataset.splits"),
                                       ({"folds": [{"fold": 0}]}, "folds[0].path")])
def test_a_summary_value_of_the_wrong_type_names_the_file_and_key(tmp_path, edit, key):
    (tmp_path / "summary.json").write_text(json.dumps({"format_version": 1, "test_mean_cc_norm": 0.5, **edit}))
    with pytest.raises(ResultsError, match=rf"summary.json: key '{re.escape(key)}' (must be|is missing)"):
        RunDir(tmp_path).summary()


def test_neuron_table_keeps_every_neuron_and_summary_ignores_invalid():
    nan = math.nan
    scores = NeuronScores(
        cc_norm=torch.tensor([0.2, nan, 0.6, 0.4], dtype=torch.float64),
        cc_abs=torch.tensor([0.1, 0.0, 0.5, 0.3], dtype=torch.float64),
        signal_power=torch.tensor([1.0, -0.1, 2.0, 1.0], dtype=torch.float64),
        noise_power=torch.ones(4, dtype=torch.float64),
        cc_max=torch.tensor([0.5, 0.0, 0.8, 0.7], dtype=torch.float64),
    )
    table = neuron_table(["a", "b", "c", "d"], scores)
    assert list(table["id"]) == ["a", "b", "c", "d"]
    assert list(table["valid"]) == [True, False, True, True]
    summary = score_summary(table, prefix="test_")
    assert summary["test_mean_cc_norm"] == pytest.approx(0.4)
    assert summary["test_median_cc_norm"] == pytest.approx(0.4)
    assert summary["test_n_valid"] == 3 and summary["test_n_neurons"] == 4


def test_csv_round_trip(tmp_path):
    run = RunDir(tmp_path)
    table = pd.DataFrame({"id": ["a", "b"], "cc_norm": [0.5, math.nan], "valid": [True, False]})
    run.write_csv("neurons.csv", table)
    back = pd.read_csv(tmp_path / "neurons.csv")
    assert back["id"].tolist() == ["a", "b"] and math.isnan(back["cc_norm"][1]) and back["valid"].tolist() == [True, False]


def test_written_files_get_normal_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
