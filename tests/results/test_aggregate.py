"""Sweep aggregation on run directories built by hand: arms, seeds, baselines, partial sweeps, files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from strf_runner.cli import report_main
from strf_runner.errors import ResultsError
from strf_runner.results.aggregate import aggregate, label_keys
from strf_runner.identity import config_hash
from strf_runner.results.collect import RunRecord, collect_runs, finished_with_hash, read_run
from tests.helpers.fakes import fake_scores, run_config, write_fake_run


@pytest.fixture
def sweep(tmp_path) -> Path:
    """3 front-ends x 2 seeds, plus one failed and one unfinished leaf run."""
    root = tmp_path / "sweep"
    k = 0
    for fe in ("native", "leaf", "mel"):
        for seed in (0, 1):
            write_fake_run(root / f"{k}_{fe}-s{seed}", run_config(fe, seed), fake_scores(fe, seed),
                           shuffle=(fe == "leaf"), invalid=(5,) if (fe, seed) == ("native", 1) else ())
            k += 1
    write_fake_run(root / f"{k}_leaf-s2", run_config("leaf", 2), None, status="failed")
    write_fake_run(root / f"{k + 1}_leaf-s3", run_config("leaf", 3), None, status="unfinished")
    (root / ".hydra").mkdir()  # Hydra's own folder is not a run
    return root


def test_arms_average_seeds_per_neuron_then_neurons(sweep):
    agg = aggregate(collect_runs([sweep]))
    assert list(agg.arms["arm"]) == ["frontend=native", "frontend=leaf", "frontend=mel"]
    leaf = agg.arms.set_index("arm").loc["frontend=leaf"]
    assert (leaf["runs"], leaf["failed"], leaf["unfinished"]) == (2, 1, 1)
    per_neuron = (fake_scores("leaf", 0) + fake_scores("leaf", 1)) / 2
    assert leaf["mean_cc_norm"] == pytest.approx(per_neuron.mean(), abs=1e-12)
    assert leaf["median_cc_norm"] == pytest.approx(np.median(per_neuron), abs=1e-12)
    seed_means = [fake_scores("leaf", s).mean() for s in (0, 1)]
    assert leaf["seed_mean"] == pytest.approx(np.mean(seed_means))
    assert leaf["seed_sd"] == pytest.approx(np.std(seed_means, ddof=1))
    native = agg.arms.set_index("arm").loc["frontend=native"]
    # neuron 5 is invalid in seed 1 only: its score is seed 0's, not a mean with a NaN or a 0
    want = (fake_scores("native", 0) + fake_scores("native", 1)) / 2
    want[5] = fake_scores("native", 0)[5]
    assert native["mean_cc_norm"] == pytest.approx(want.mean(), abs=1e-12)
    assert native["n_valid"] == 12 and native["n_params"] == 36771


def test_comparisons_are_paired_by_neuron_against_the_baseline(sweep):
    agg = aggregate(collect_runs([sweep]))
    assert agg.baselines == {"frontend=leaf": "frontend=native", "frontend=mel": "frontend=native"}
    c = agg.comparisons.set_index("arm").loc["frontend=leaf"]
    base = (fake_scores("native", 0) + fake_scores("native", 1)) / 2
    base[5] = fake_scores("native", 0)[5]
    diff = (fake_scores("leaf", 0) + fake_scores("leaf", 1)) / 2 - base
    assert c["n_pairs"] == 12
    assert c["mean_diff"] == pytest.approx(diff.mean(), abs=1e-12)
    assert c["wilcoxon_p"] == pytest.approx(sps.wilcoxon(diff).pvalue, rel=1e-12)
    assert c["frac_improved"] == pytest.approx(np.mean(diff > 0))
    other = aggregate(collect_runs([sweep]), baseline="frontend=mel")
    assert set(other.comparisons["baseline"]) == {"frontend=mel"}


def test_partial_runs_are_listed_not_dropped(sweep):
    runs = aggregate(collect_runs([sweep])).runs
    assert sorted(runs["status"].value_counts().items()) == [("failed", 1), ("finished", 6), ("unfinished", 1)]
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["error"] == "trainer.lr must be > 0" and failed["arm"] == "frontend=leaf"


def test_labels_show_independently_varying_keys_only():
    cfgs = [run_config(fe, s, lr=lr) for fe in ("native", "leaf") for s in (0, 1) for lr in (1e-3, 1e-2)]
    # frontend.lr follows the front-end and the seeds are replicates: neither names an arm
    assert label_keys([c | {} for c in map(_flat, cfgs)]) == ["frontend.name", "trainer.lr"]
    assert label_keys([_flat(run_config("native", s)) for s in (0, 1)]) == ["frontend.name", "model.name"]


def test_a_key_a_run_lacks_is_not_in_its_label():
    """synth has no dataset.path; two hdf5 files under one dataset name are told apart by it."""
    synth = [_flat(run_config("native", s)) for s in (0, 1)]
    hdf5 = [_flat(run_config("native", s) | {"dataset": {"name": "hdf5", "path": f"/data/{f}.h5"}})
            for f in ("a", "b") for s in (0, 1)]
    runs = [RunRecord(Path(f"r{k}"), "unfinished", c) for k, c in enumerate(synth + hdf5)]
    assert list(aggregate(runs).arms["arm"]) == [
        "dataset=synth", "dataset=hdf5 dataset.path=/data/a.h5", "dataset=hdf5 dataset.path=/data/b.h5",
    ]


def test_a_missing_key_and_a_null_one_are_one_arm():
    """An older run without trainer.grad_clip and a newer one with it null computed the same thing."""
    old = _flat(run_config("native", 0))
    new = [{**_flat(run_config("native", s)), "trainer.grad_clip": clip} for s, clip in ((1, None), (0, 1.0))]
    agg = aggregate([RunRecord(Path(f"r{k}"), "unfinished", c) for k, c in enumerate([old, *new])])
    plain, clipped = "frontend=native model=linear", "frontend=native model=linear trainer.grad_clip=1"
    assert list(agg.arms["arm"]) == [plain, clipped]
    assert list(agg.runs["arm"]) == [plain, plain, clipped]


def _flat(cfg: dict) -> dict:
    from strf_runner.identity import flatten

    return flatten(cfg)


def test_config_hash_ignores_where_a_run_ran_but_not_what_it_computed():
    a = run_config("leaf", 0)
    assert config_hash(a) == config_hash(a | {"run_name": "other", "sweep_root": "/elsewhere"})
    assert config_hash(a) == config_hash(a | {"trainer": a["trainer"] | {"threads": 4}})
    assert config_hash(a) != config_hash(run_config("leaf", 1))
    assert config_hash(a) != config_hash(a | {"trainer": a["trainer"] | {"lr": 0.01}})
    assert config_hash(a) == config_hash(a | {"trainer": a["trainer"] | {"grad_clip": None}})  # a new null key


def test_finished_with_hash(sweep):
    target = run_config("mel", 1)
    found = [path for path, _ in finished_with_hash(sweep.parent, config_hash(target))]
    assert len(found) == 1 and read_run(found[0]).config["seed"] == 1
    assert list(finished_with_hash(sweep, config_hash(run_config("leaf", 3)))) == []  # unfinished: not reusable


def test_report_files_and_cli(sweep, tmp_path, capsys):
    report_main([str(sweep), "--out", str(tmp_path / "agg")])
    out = capsys.readouterr().out
    assert "frontend=leaf" in out and "Wilcoxon" in out
    # hand-made run dirs have no test predictions: every CI says it resampled neurons only, and why
    assert "CI: bootstrap over neurons only" in out and "CI resamples" in out
    assert "CI over neurons only: frontend=native: 2 of 2 runs have no test_predictions.npz" in " ".join(out.split())
    for name in ("arms.csv", "comparisons.csv", "runs.csv", "per_neuron.csv", "report.md", "comparison.png"):
        assert (tmp_path / "agg" / name).is_file(), name
    assert (tmp_path / "agg" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "agg" / "report.md").read_text()
    assert "6 finished, 1 failed, 1 unfinished" in md and "trainer.lr must be > 0" in md
    assert "CIs that resample neurons only (the test stimuli held fixed), and why:" in md
    arms = pd.read_csv(tmp_path / "agg" / "arms.csv")
    assert list(arms["runs"]) == [2, 2, 2]
    assert not math.isnan(arms["ci_low"][0]) and list(arms["ci_resamples"]) == ["neurons only"] * 3
    assert (arms["ci_low"] == arms["neuron_ci_low"]).all()
    comparisons = pd.read_csv(tmp_path / "agg" / "comparisons.csv")
    assert list(comparisons["ci_resamples"]) == ["neurons only"] * 2 and comparisons["stimulus_p"].isna().all()


def test_report_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as err:
        report_main([str(tmp_path / "empty")])
    assert err.value.code == 2
    assert capsys.readouterr().err.startswith("strf-report: error: no run directories found")
    with pytest.raises(ResultsError, match="KEY=VALUE"):
        aggregate(collect_runs([])
                  or [read_run(write_fake_run(tmp_path / "r", run_config("leaf", 0), fake_scores("leaf", 0)))],
                  baseline="native")


def test_report_on_a_finished_run_dir_writes_beside_it(tmp_path, monkeypatch, capsys):
    run = write_fake_run(tmp_path / "runs" / "leaf-s0", run_config("leaf", 0), fake_scores("leaf", 0))
    before = sorted(p.name for p in run.iterdir())
    report_main([str(run)])
    assert (tmp_path / "runs" / "leaf-s0-aggregate" / "report.md").is_file()
    assert f"aggregate: {tmp_path / 'runs' / 'leaf-s0-aggregate'}" in capsys.readouterr().out
    monkeypatch.chdir(run)
    report_main(["."])
    assert sorted(p.name for p in run.iterdir()) == before  # a finished run is never written into


def test_report_out_of_several_dirs(sweep, tmp_path):
    other = write_fake_run(tmp_path / "runs" / "leaf-s9", run_config("leaf", 9), fake_scores("leaf", 9))
    report_main([str(sweep), str(other)])
    assert len(pd.read_csv(sweep / "aggregate" / "runs.csv")) == 9
    report_main([str(other), str(sweep)])
    assert len(pd.read_csv(tmp_path / "runs" / "leaf-s9-aggregate" / "runs.csv")) == 9
    assert not (other / "aggregate").exists()


def test_report_refuses_to_write_into_a_run_dir(sweep, capsys):
    run = sweep / "0_native-s0"
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(SystemExit) as err:
        report_main([str(sweep), "--out", str(run / "agg")])
    assert err.value.code == 2
    assert capsys.readouterr().err.startswith(f"strf-report: error: {run / 'agg'} is inside the run dir {run}")
    assert sorted(p.name for p in run.iterdir()) == before
