"""An arm's seed ensemble: the average of its runs' test predictions, scored against the dataset's responses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from strf_runner.data.schema import file_sha256, write_dataset
from strf_runner.results.aggregate import aggregate
from strf_runner.results.collect import collect_runs, read_run
from strf_runner.results.ensemble import DatasetCache, ensemble_of
from tests.helpers.data import make_content
from tests.helpers.reference import ref_cc_norm

TEST = [3, 4]


def dataset(tmp_path):
    """Four neurons with a stimulus-locked rate (so each has signal power), 6 repeats, test stimuli 3 and 4."""
    content = make_content(n_stimuli=5, n_neurons=4, n_repeats=6, lengths=[20, 20, 20, 20, 17])
    rng = np.random.default_rng(1)
    for stim in content.stimuli:
        t = stim.n_bins
        rate = 2.0 + 1.5 * np.sin(np.arange(t)[None, :] / (2.0 + np.arange(4)[:, None]) + rng.uniform(0, 6, (4, 1)))
        stim.responses = rng.poisson(np.repeat(rate[:, None], 6, axis=1)).astype(np.float32)
    return content, write_dataset(content, tmp_path / "data.h5")


def run_dir(tmp_path, name, path, predictions, neuron_ids=("u0", "u1", "u2", "u3"), seed=0, stimuli=TEST):
    """A finished run whose test predictions are ``predictions`` (S, N, T_max), NaN-padded."""
    run = tmp_path / "sweep" / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"frontend": {"name": "native"}, "model": {"name": "linear"},
                                                     "dataset": {"name": "mine"}, "seed": seed}))
    summary = {"test_mean_cc_norm": 0.5, "view": "spectrogram",
               "dataset": {"path": str(path), "sha256": file_sha256(path)}}
    (run / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame({"neuron": range(4), "id": list(neuron_ids), "cc_norm": 0.5, "valid": True}).to_csv(run / "neurons.csv",
                                                                                                      index=False)
    np.savez(run / "test_predictions.npz", predictions=predictions.astype(np.float32),
             stimuli=np.asarray(stimuli), neuron_ids=np.asarray(neuron_ids))
    return run


def predictions(content, seed):
    rng = np.random.default_rng(seed)
    out = np.full((len(TEST), 4, 20), np.nan)
    for k, s in enumerate(TEST):
        t = content.stimuli[s].n_bins
        out[k, :, :t] = np.nanmean(content.stimuli[s].responses, axis=1) + rng.normal(0, 1.0, (4, t))
    return out


def test_the_ensemble_scores_the_mean_prediction_as_one_model(tmp_path):
    content, path = dataset(tmp_path)
    preds = [predictions(content, seed) for seed in range(3)]
    runs = [read_run(run_dir(tmp_path, f"{k}_run", path, p, seed=k)) for k, p in enumerate(preds)]
    ensemble = ensemble_of(runs, DatasetCache())
    mean = np.mean([p.astype(np.float32) for p in preds], axis=0, dtype=np.float64)  # as saved: float32
    resp = np.full((len(TEST), 4, 6, 20), np.nan)
    for k, s in enumerate(TEST):
        resp[k, :, :, : content.stimuli[s].n_bins] = content.stimuli[s].responses
    expected = ref_cc_norm(np.nan_to_num(mean)[:, :, None], resp)
    assert ensemble.members == 3 and list(ensemble.scores.index) == ["u0", "u1", "u2", "u3"]
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(ensemble.scores.to_numpy(), expected, rtol=1e-9)
    single = ref_cc_norm(np.nan_to_num(preds[0])[:, :, None].astype(np.float32).astype(np.float64), resp)
    assert ensemble.scores.mean() > single.mean()  # averaging independent noise helps, as it should


def test_the_ensemble_lands_in_arms_csv_and_says_why_when_it_cannot_be_made(tmp_path):
    content, path = dataset(tmp_path)
    for k in range(2):
        run_dir(tmp_path, f"{k}_run", path, predictions(content, k), seed=k)
    arms = aggregate(collect_runs([tmp_path / "sweep"])).arms
    assert arms.loc[0, "ensemble_runs"] == 2 and np.isfinite(arms.loc[0, "ensemble_mean_cc_norm"])
    path.write_bytes(path.read_bytes()[:-1] + b"x")  # not the file the runs trained on any more
    arms = aggregate(collect_runs([tmp_path / "sweep"])).arms
    assert arms.loc[0, "ensemble_runs"] == 0 and np.isnan(arms.loc[0, "ensemble_mean_cc_norm"])
    assert "SHA-256 differs" in arms.loc[0, "ensemble_note"]


@pytest.mark.parametrize("change", ["neurons", "stimuli"])
def test_runs_that_predicted_different_things_are_not_averaged(tmp_path, change):
    content, path = dataset(tmp_path)
    a = read_run(run_dir(tmp_path, "0_run", path, predictions(content, 0)))
    other = {"neuron_ids": ("u1", "u0", "u2", "u3")} if change == "neurons" else {"stimuli": [2, 4]}
    b = read_run(run_dir(tmp_path, "1_run", path, predictions(content, 1), seed=1, **other))
    ensemble = ensemble_of([a, b], DatasetCache())
    assert ensemble.scores is None and "different stimuli or neurons" in ensemble.why_not


def test_a_named_neuron_selection_restricts_every_score(tmp_path):
    """strf-report --neurons valid73: arms, per-neuron tables and ensembles on the selected units only,
    chosen from the metadata of the dataset file the runs trained on."""
    from strf_runner.errors import ConfigError

    content, _ = dataset(tmp_path)
    content.neuron_meta = {"single_t": np.array(["Yes", "No", "Maybe", "Yes"]), "depth_um": np.array([100, 200, -5, 50])}
    path = write_dataset(content, tmp_path / "meta.h5")  # valid73's rule keeps u0 and u3
    for k in range(2):
        run = run_dir(tmp_path, f"{k}_run", path, predictions(content, k), seed=k)
        pd.DataFrame({"neuron": range(4), "id": ["u0", "u1", "u2", "u3"], "cc_norm": [0.2, 0.9, 0.9, 0.4 + 0.2 * k],
                      "valid": True}).to_csv(run / "neurons.csv", index=False)
    agg = aggregate(collect_runs([tmp_path / "sweep"]), neurons="valid73")
    arm = agg.arms.iloc[0]
    assert set(agg.per_neuron["neuron"]) == {"u0", "u3"} and arm["n_valid"] == 2
    assert arm["mean_cc_norm"] == pytest.approx((0.2 + 0.5) / 2)  # u3 averaged over the seeds: 0.5
    assert arm["seed_mean"] == pytest.approx(np.mean([(0.2 + 0.4) / 2, (0.2 + 0.6) / 2]))
    assert agg.neurons == "valid73" and arm["ensemble_runs"] == 2
    with pytest.raises(ConfigError, match="--neurons='noise_lt40' needs neuron metadata"):
        aggregate(collect_runs([tmp_path / "sweep"]), neurons="noise_lt40")
