"""k-fold cross-validation over stimuli (``cv.folds``): the fold assignment, the CV dir's pooled score
against a brute-force computation, resume of an interrupted CV, the CLI's single command and sweep,
strf-predict's --fold, and bad input refused in one line with nothing written."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.helpers.commands import TINY_ARGS, strf_run
from tests.helpers.data import make_content
from tests.helpers.reference import ref_cc_norm
from tests.helpers.runs import Interrupt, interrupt_after, tiny_config

from strf_runner.cli import predict_main
from strf_runner.config import CVConfig, FrontendConfig, RunConfig, TrainerConfig, resolve_config
from strf_runner.crossval import run_cv
from strf_runner.data.folds import fold_splits, fold_test_sets
from strf_runner.data.loading import load_data
from strf_runner.data.ns1 import NS1DatasetConfig
from strf_runner.data.schema import write_dataset
from strf_runner.data.sources import HDF5DatasetConfig
from strf_runner.errors import ConfigError, ResultsError
from strf_runner.identity import config_hash
from strf_runner.models.linear import LinearModelConfig
from strf_runner.results.collect import collect_runs
from strf_runner.results.cv import chosen_fold

N_STIMULI = 7


def refused_line(proc) -> str:
    """The one error line of a refused strf-run (warnings aside), exit status 2, no traceback."""
    said = [line for line in proc.stderr.strip().splitlines() if ": warning" not in line]
    assert proc.returncode == 2 and len(said) == 1 and said[0].startswith("strf-run: error: "), proc.stderr
    return said[0]


def signal_content():
    """make_content's 7 stimuli of different lengths, 4 neurons, 3 repeats, with responses that repeat a
    rate (Poisson counts of one exp(normal) rate per neuron and bin), so every neuron has signal power."""
    content = make_content(n_stimuli=N_STIMULI)
    rng = np.random.default_rng(1)
    for stim in content.stimuli:
        n, r, t = stim.responses.shape
        rate = np.exp(rng.normal(size=(n, 1, t)))
        stim.responses = rng.poisson(np.broadcast_to(rate, (n, r, t))).astype(np.float32)
    return content


@pytest.fixture
def data_file(tmp_path) -> Path:
    """``signal_content`` written as an HDF5 dataset."""
    return write_dataset(signal_content(), tmp_path / "data.h5")


def cv_config(path: Path, folds: int = 3, seed: int = 0, **cv) -> RunConfig:
    """native -> Linear STRF on the file at ``path``, 2 epochs on CPU, cross-validated in ``folds`` folds."""
    return RunConfig(
        dataset=HDF5DatasetConfig(name="tiny", path=str(path)),
        frontend=FrontendConfig(name="native"),
        model=LinearModelConfig(temporal_window_size=3),
        trainer=TrainerConfig(max_epochs=2, patience=2, device="cpu"),
        cv=CVConfig(folds=folds, **cv),
        seed=seed,
        run_name="cv",
    )


# ------------------------------------------------------------------------------------------------
# the assignment


@pytest.mark.parametrize("n_stimuli, folds, val", [(7, 3, 1), (20, 5, 3), (6, 2, 2), (10, 10, 1), (11, 4, 6)])
def test_folds_partition_the_stimuli(n_stimuli, folds, val):
    every = set(range(n_stimuli))
    tests = []
    for fold in range(folds):
        split = fold_splits(n_stimuli, folds, fold, val)
        train, val_set, test = (set(split[k]) for k in ("train", "val", "test"))
        assert not (train & val_set) and not (train & test) and not (val_set & test)
        assert train | val_set | test == every and train
        assert len(val_set) == val
        assert split["test"] == list(range(split["test"][0], split["test"][-1] + 1)), "a test set is one block"
        tests.append(split["test"])
    assert sorted(s for t in tests for s in t) == list(range(n_stimuli)), "each stimulus in exactly one test set"
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    assert tests == fold_test_sets(n_stimuli, folds)


def test_the_documented_example():
    assert [fold_splits(7, 3, f, 1) for f in range(3)] == [
        {"train": [4, 5, 6], "val": [3], "test": [0, 1, 2]},
        {"train": [0, 1, 2, 6], "val": [5], "test": [3, 4]},
        {"train": [1, 2, 3, 4], "val": [0], "test": [5, 6]},
    ]


def test_fold_assignment_ignores_every_seed(tmp_path):
    """Runs of other seeds, data seeds and generated data (another dataset.seed) get the same folds."""
    found = []
    for seed, data_seed, dataset_seed in [(0, 0, 0), (3, 7, 5)]:
        cfg = tiny_config(tmp_path, seed=seed)
        cfg.data_seed = data_seed
        cfg.dataset.seed = dataset_seed
        cfg.cv = CVConfig(folds=3)
        typed = resolve_config(cfg).cfg
        found.append([{k: v.indices for k, v in load_data(typed.dataset, "spectrogram", CVConfig(3, f))[2].items()}
                      for f in range(3)])
    assert found[0] == found[1] == [fold_splits(6, 3, f, 1) for f in range(3)]


# ------------------------------------------------------------------------------------------------
# config and bad input


def test_no_cv_keeps_the_config_hash_of_runs_from_before_cross_validation(tmp_path):
    tree = resolve_config(tiny_config(tmp_path)).tree
    without = {k: v for k, v in tree.items() if k != "cv"}
    assert tree["cv"] == {"folds": None, "fold": None, "val": None}
    assert config_hash(tree) == config_hash(without)
    assert resolve_config(cv_config(tmp_path / "x.h5")).hash != resolve_config(cv_config(tmp_path / "x.h5", fold=0)).hash


@pytest.mark.parametrize("change, key", [
    (dict(cv=CVConfig(folds=1)), "cv.folds=1"),
    (dict(cv=CVConfig(folds=3, fold=3)), "cv.fold=3"),
    (dict(cv=CVConfig(fold=0)), "cv.fold=0"),
    (dict(cv=CVConfig(folds=3, val=0)), "cv.val=0"),
    (dict(test_stimuli=[5]), "dataset.test_stimuli"),
])
def test_bad_cv_config_is_one_line_naming_the_key(tmp_path, change, key):
    cfg = cv_config(tmp_path / "x.h5")
    if "cv" in change:
        cfg.cv = change["cv"]
    else:
        cfg.dataset.test_stimuli = change["test_stimuli"]
    with pytest.raises(ConfigError) as err:
        resolve_config(cfg)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_a_named_split_with_cv_is_refused(tmp_path):
    cfg = cv_config(tmp_path / "x.h5")
    cfg.dataset = NS1DatasetConfig(name="ns1", split="rahman2020")
    with pytest.raises(ConfigError, match=r"dataset.split='rahman2020' cannot be combined with cv.folds=3"):
        resolve_config(cfg)


@pytest.mark.parametrize("cv, message", [
    (dict(folds=8), r"cv.folds=8 is more than the dataset's 7 stimuli"),
    (dict(folds=3, val=4), r"cv.val=4: too few stimuli left for validation"),
])
def test_folds_the_data_cannot_give_are_refused_before_anything_is_written(tmp_path, data_file, cv, message):
    with pytest.raises(ConfigError, match=message):
        run_cv(cv_config(data_file, **cv), tmp_path / "cv")
    assert not (tmp_path / "cv").exists()


# ------------------------------------------------------------------------------------------------
# the CV result


def test_the_cv_score_equals_a_brute_force_computation_from_the_fold_predictions(tmp_path, data_file):
    result = run_cv(cv_config(data_file), tmp_path / "cv")
    assert result.ran == [0, 1, 2]
    content = signal_content()  # the same data, straight from the generator
    preds = {}
    for fold in range(3):
        with np.load(tmp_path / "cv" / f"fold{fold}" / "test_predictions.npz") as saved:
            for k, stimulus in enumerate(saved["stimuli"]):
                preds[int(stimulus)] = saved["predictions"][k]
    assert sorted(preds) == list(range(N_STIMULI))
    n_bins = max(s.responses.shape[-1] for s in content.stimuli)
    resp = np.full((N_STIMULI, 4, 3, n_bins), np.nan)
    pred = np.full((N_STIMULI, 4, 1, n_bins), np.nan)
    for s, stim in enumerate(content.stimuli):
        t = stim.responses.shape[-1]
        resp[s, :, :, :t] = stim.responses
        pred[s, :, 0, :t] = preds[s][:, :t]
    expected = ref_cc_norm(pred, resp)
    assert np.isfinite(expected).all()
    table = pd.read_csv(tmp_path / "cv" / "neurons.csv")
    np.testing.assert_allclose(table["cc_norm"], expected, rtol=1e-5, atol=1e-6)

    summary = json.loads((tmp_path / "cv" / "summary.json").read_text())
    assert summary["test_mean_cc_norm"] == pytest.approx(np.nanmean(expected), rel=1e-5)
    folds = [json.loads((tmp_path / "cv" / f"fold{f}" / "summary.json").read_text()) for f in range(3)]
    assert summary["fold_mean_cc_norm"] == pytest.approx(np.mean([f["test_mean_cc_norm"] for f in folds]))
    assert [f["best_epoch"] for f in summary["folds"]] == [f["best_epoch"] for f in folds]
    assert summary["cv"]["folds"] == 3 and summary["cv"]["val"] == 1
    assert summary["cv"]["assignment"] == [fold_splits(N_STIMULI, 3, f, 1) for f in range(3)]
    for f, fold in enumerate(folds):
        own = pd.read_csv(tmp_path / "cv" / f"fold{f}" / "neurons.csv")
        np.testing.assert_allclose(table[f"fold{f}_cc_norm"], own["cc_norm"], rtol=1e-6)
    config = yaml.safe_load((tmp_path / "cv" / "config.yaml").read_text())
    assert config["cv"] == {"folds": 3, "fold": None, "val": None}
    assert summary["config_hash"] == config_hash(config)
    assert [r.path.name for r in collect_runs([tmp_path])] == ["cv"], "a report sees the CV dir as one run"
    with pytest.raises(ResultsError, match=r"is a cross-validation of 3 folds: pass --fold 0..2"):
        chosen_fold(tmp_path / "cv", None)
    assert chosen_fold(tmp_path / "cv", 2) == tmp_path / "cv" / "fold2"


def test_an_interrupted_cv_resumes_only_its_unfinished_fold(tmp_path, data_file):
    cfg = cv_config(data_file)
    stop_fold_1 = lambda fold: nullcontext(interrupt_after(1) if fold == 1 else None)  # noqa: E731
    with pytest.raises(Interrupt):
        run_cv(cfg, tmp_path / "cv", progress=stop_fold_1)
    fold0 = (tmp_path / "cv" / "fold0" / "summary.json").read_text()
    assert (tmp_path / "cv" / "fold1" / "last.pt").is_file() and not (tmp_path / "cv" / "fold1" / "summary.json").exists()
    assert not (tmp_path / "cv" / "fold2").exists() and not (tmp_path / "cv" / "summary.json").exists()
    assert [r.path.name for r in collect_runs([tmp_path / "cv"])] == ["fold0", "fold1"], "folds are runs until assembled"

    with pytest.raises(ResultsError, match="holds an interrupted run"):
        run_cv(cfg, tmp_path / "cv")  # without resume=true
    cfg.resume = True
    result = run_cv(cfg, tmp_path / "cv")
    assert result.ran == [1, 2]
    assert (tmp_path / "cv" / "fold0" / "summary.json").read_text() == fold0, "a finished fold is left alone"
    assert json.loads((tmp_path / "cv" / "fold1" / "summary.json").read_text())["resumed_from_epoch"] == 1
    assert result.summary.cv.folds == 3


# ------------------------------------------------------------------------------------------------
# the command line


@pytest.mark.e2e
def test_strf_run_cv_writes_one_run_dir_per_fold_and_the_cv_result(tmp_path, capsys):
    cv_dir = tmp_path / "outputs" / "cv"
    proc = strf_run(TINY_ARGS + ["cv.folds=3", f"hydra.run.dir={cv_dir}"], tmp_path / "cache", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pooled out-of-fold cc_norm" in proc.stdout and "fold mean cc_norm" in proc.stdout
    for fold in range(3):
        config = yaml.safe_load((cv_dir / f"fold{fold}" / "config.yaml").read_text())
        assert config["cv"]["folds"] == 3 and config["cv"]["fold"] == fold
        assert (cv_dir / f"fold{fold}" / "summary.json").is_file()
    assert {"config.yaml", "neurons.csv", "test_predictions.npz", "summary.json"} <= {p.name for p in cv_dir.iterdir()}
    runs = collect_runs([tmp_path / "outputs"])
    assert [r.path for r in runs] == [cv_dir] and runs[0].status == "finished"

    again = strf_run(TINY_ARGS + ["cv.folds=3", f"hydra.run.dir={cv_dir}"], tmp_path / "cache", tmp_path)
    assert "already holds a finished run" in refused_line(again)
    for flags in ([], ["--fold", "3"]):
        with pytest.raises(SystemExit):
            predict_main([str(cv_dir), "--dataset-stimulus", "0", *flags])
        said = capsys.readouterr().err.strip().splitlines()
        assert said == [f"strf-predict: error: {'--fold 3: ' if flags else ''}{cv_dir} is a cross-validation of 3 folds: "
                        "pass --fold 0..2"]


@pytest.mark.e2e
def test_strf_run_refuses_more_folds_than_stimuli_in_one_line_writing_nothing(tmp_path):
    proc = strf_run(TINY_ARGS + ["cv.folds=7"], tmp_path / "cache", tmp_path)
    assert "cv.folds=7 is more than the dataset's 6 stimuli" in refused_line(proc)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.e2e
def test_a_sweep_fits_arms_by_folds_and_compares_the_arms_on_their_cv_scores(tmp_path):
    proc = strf_run(["-m", "frontend=native,native_pcen", *TINY_ARGS, "cv.folds=3", "hydra.sweep.dir=sweep"],
                    tmp_path / "cache", tmp_path)
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "sweep"
    cv_dirs = sorted(p for p in sweep.iterdir() if (p / "fold0").is_dir())
    assert [p.name for p in cv_dirs] == ["0_native-linear-synth_tiny-s0", "1_native_pcen-linear-synth_tiny-s0"]
    for cv_dir in cv_dirs:
        assert sorted(p.name for p in cv_dir.glob("fold*")) == ["fold0", "fold1", "fold2"]
        assert json.loads((cv_dir / "summary.json").read_text())["cv"]["folds"] == 3
    runs = pd.read_csv(sweep / "aggregate" / "runs.csv")
    assert sorted(runs["arm"]) == ["frontend=native", "frontend=native_pcen"] and set(runs["status"]) == {"finished"}
    for arm, cv_dir in zip(sorted(runs["arm"]), cv_dirs):
        summary = json.loads((cv_dir / "summary.json").read_text())
        row = runs[runs["arm"] == arm].iloc[0]
        assert row["test_mean_cc_norm"] == pytest.approx(summary["test_mean_cc_norm"], rel=1e-5), "compared: pooled"
        fold_scores = [f["test_mean_cc_norm"] for f in summary["folds"]]
        assert row["fold_mean_cc_norm"] == pytest.approx(np.mean(fold_scores), rel=1e-5)
        assert row["fold_sd_cc_norm"] == pytest.approx(np.std(fold_scores, ddof=1), rel=1e-5)
    arms = pd.read_csv(sweep / "aggregate" / "arms.csv").set_index("arm")
    assert (arms["fold_mean_cc_norm"] == runs.set_index("arm")["fold_mean_cc_norm"]).all()
    folds = pd.read_csv(sweep / "aggregate" / "folds.csv", dtype={"test_stimuli": str})
    assert len(folds) == 6 and list(folds["fold"]) == [0, 1, 2] * 2
    assert sorted(" ".join(folds["test_stimuli"][:3]).split()) == [str(i) for i in range(6)]  # every stimulus once
    for row in folds.itertuples():
        fold_summary = json.loads((tmp_path / row.path / "summary.json").read_text())  # as strf-run saw it
        assert row.test_mean_cc_norm == pytest.approx(fold_summary["test_mean_cc_norm"], rel=1e-5)
        assert row.best_epoch == fold_summary["best_epoch"]
    comparisons = pd.read_csv(sweep / "aggregate" / "comparisons.csv")
    assert list(comparisons["arm"]) == ["frontend=native_pcen"] and list(comparisons["baseline"]) == ["frontend=native"]
