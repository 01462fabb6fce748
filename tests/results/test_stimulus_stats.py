"""Statistics that count sounds, against independent computations: the sufficient statistics against
strf_runner.metrics and the plain-loop reference on explicitly concatenated stimuli, the two-level
bootstrap against a brute-force loop over the same draws, the sign-flip test against an enumeration,
and, through a whole report, synthetic sweeps where sounds do or do not carry the effect."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from strf_runner import metrics
from strf_runner.data.schema import file_sha256, write_dataset
from strf_runner.results.aggregate import aggregate
from strf_runner.results.collect import collect_runs
from strf_runner.results.report import markdown_report
from strf_runner.results.stats import NEURONS_ONLY, STIMULI_AND_NEURONS, two_level_ci
from strf_runner.results.stimulus_stats import (
    bootstrap_draws,
    cc_norm_from_stats,
    response_stats,
    sign_flip_p,
    stimulus_stats,
    two_level_replicates,
)
from strf_runner.results.tables import neuron_table
from tests.helpers.data import make_content
from tests.helpers.fakes import fake_scores, run_config, write_fake_run
from tests.helpers.reference import ref_cc_norm


def awkward_data(seed: int = 0, n_neurons: int = 6) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Responses (4, N, 5, 30) with a stimulus-locked rate and every NaN case of metrics' rules, and three
    predictions (4, N, 30) of them: stimulus 1 is 24 bins long (NaN padding along T), stimulus 2 has 3
    repeats (padding along R), stimulus 3 one repeat (no signal power there); neuron 0 has a scattered
    missing bin, neuron 1 never heard stimulus 0, neuron 2 is silent on stimulus 2 (a flat PSTH), neuron 3
    is predicted constant everywhere in the first prediction, and the second prediction is NaN at a valid
    bin of neuron 4 on stimulus 1."""
    rng = np.random.default_rng(seed)
    n_stim, n_rep, n_bins = 4, 5, 30
    t = np.arange(n_bins)
    rate = 2.0 + 1.5 * np.sin(t / 3.0 + rng.uniform(0, 6, (n_stim, n_neurons, 1)))
    resp = rng.poisson(np.repeat(rate[:, :, None], n_rep, axis=2)).astype(np.float64)
    resp[1, :, :, 24:] = np.nan
    resp[2, :, 3:] = np.nan
    resp[3, :, 1:] = np.nan
    resp[0, 0, 2, 7] = np.nan
    resp[0, 1] = np.nan
    resp[2, 2, :3] = 0.0
    preds = [np.where(np.isnan(resp).all(axis=2), np.nan, rate + rng.normal(0, noise, rate.shape))
             for noise in (0.8, 1.5, 1.0)]
    preds[0][:, 3] = 2.5
    preds[1][1, 4, 5] = np.nan
    return resp, rate, preds


def stats_of(pred: np.ndarray, resp: np.ndarray):
    """The sufficient statistics of ``pred`` (S, N, T) against ``resp`` (S, N, R, T)."""
    return stimulus_stats(pred, response_stats(resp))


def concatenated_cc_norm(pred: np.ndarray, resp: np.ndarray, stimuli) -> np.ndarray:
    """metrics.cc_norm on the stimuli ``stimuli`` (repeats allowed) concatenated, (N,)."""
    idx = np.asarray(stimuli)
    return metrics.cc_norm(torch.from_numpy(pred[idx])[:, :, None], torch.from_numpy(resp[idx])).numpy()


def test_sufficient_stats_reproduce_metrics_on_the_test_set():
    resp, _, preds = awkward_data()
    for pred in preds:
        stats = stats_of(pred, resp)
        got = cc_norm_from_stats(stats, np.ones((1, 4)))[0]
        scores = metrics.score_neurons(torch.from_numpy(pred)[:, :, None], torch.from_numpy(resp))
        np.testing.assert_allclose(got, scores.cc_norm.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(got, ref_cc_norm(pred[:, :, None], resp), rtol=1e-9, atol=1e-12)
        for s in range(4):
            alone = metrics.correlation(torch.from_numpy(pred[s : s + 1, :, None]), torch.from_numpy(resp[s : s + 1]))
            np.testing.assert_allclose(stats.corr[s], alone.numpy(), rtol=1e-12)
    assert np.isnan(cc_norm_from_stats(stats_of(preds[0], resp), np.ones((1, 4)))[0, 3])  # constant prediction
    assert np.isnan(cc_norm_from_stats(stats_of(preds[1], resp), np.ones((1, 4)))[0, 4])  # NaN at a valid bin
    assert np.isfinite(cc_norm_from_stats(stats_of(preds[2], resp), np.ones((1, 4)))[0]).sum() >= 4
    assert np.isnan(stats_of(preds[2], resp).corr[2, 2])  # a silent neuron: its PSTH is flat on that stimulus
    with pytest.raises(ValueError, match=r"predictions of shape \(4, 6, 29\) do not match the test responses'"):
        stats_of(preds[2][:, :, :29], resp)


def test_any_multiset_of_stimuli_equals_the_stimuli_concatenated():
    """Weights count how often a stimulus is drawn: a bootstrap resample, duplicates and all, is the
    explicit concatenation (the stimulus without repeats, the silent one and the NaN one included)."""
    resp, _, preds = awkward_data(seed=1)
    draws = [[0, 0, 1, 2], [3, 3, 3, 3], [2, 2, 2, 0], [1, 3, 1, 3], [0, 1, 2, 3], [2, 2, 3, 3], [1, 1, 1, 1]]
    weights = np.array([np.bincount(d, minlength=4) for d in draws])
    for pred in preds:
        got = cc_norm_from_stats(stats_of(pred, resp), weights)
        want = np.array([concatenated_cc_norm(pred, resp, d) for d in draws])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(cc_norm_from_stats(stats_of(preds[2], resp), weights[:1])[0],
                               ref_cc_norm(preds[2][draws[0]][:, :, None], resp[draws[0]]), rtol=1e-9, atol=1e-12)
    assert np.isnan(got[1]).all()  # one repeat only: no signal power


def brute_force_replicates(groups: list[list[np.ndarray]], resp: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """The two-level bootstrap written out: per replicate, each run's metrics.cc_norm on the drawn stimuli
    concatenated, the mean over its group's runs per neuron where valid, then the mean over the drawn
    neurons (of the difference between two groups) where valid."""
    n_stim, n_neurons = resp.shape[:2]
    stim, neurons = bootstrap_draws(n_stim, n_neurons, n_boot, seed)
    out = []
    for b in range(n_boot):
        per_group = []
        for preds in groups:
            runs = [concatenated_cc_norm(p, resp, stim[b]) for p in preds]
            per_group.append([np.mean([r[j] for r in runs if math.isfinite(r[j])])
                              if any(math.isfinite(r[j]) for r in runs) else math.nan for j in range(n_neurons)])
        value = np.array(per_group[0]) - (np.array(per_group[1]) if len(groups) == 2 else 0.0)
        drawn = [value[j] for j in neurons[b] if math.isfinite(value[j])]
        out.append(sum(drawn) / len(drawn) if drawn else math.nan)
    return np.array(out)


def test_the_two_level_bootstrap_equals_a_brute_force_loop():
    resp, rate, _ = awkward_data(seed=2, n_neurons=5)
    rng = np.random.default_rng(3)
    arm = [rate + rng.normal(0, 0.7, rate.shape) for _ in range(2)]
    base = [rate + rng.normal(0, 1.2, rate.shape) for _ in range(3)]
    arm_stats = [stats_of(p, resp) for p in arm]
    base_stats = [stats_of(p, resp) for p in base]
    stim, _ = bootstrap_draws(4, 5, 60, seed=11)
    per_draw = cc_norm_from_stats(arm_stats[0], np.array([np.bincount(row, minlength=4) for row in stim]))
    assert 0 < np.isnan(per_draw).sum() < per_draw.size / 2  # neurons valid on the test set, not on every draw
    for groups, stats in (([arm], [arm_stats]), ([arm, base], [arm_stats, base_stats])):
        want = brute_force_replicates(groups, resp, n_boot=60, seed=11)
        got = two_level_replicates(stats, n_boot=60, seed=11)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
        assert np.isnan(want).sum() < 60 and np.unique(np.round(want[np.isfinite(want)], 12)).size > 20
        lo, hi = np.percentile(want[np.isfinite(want)], [2.5, 97.5])
        assert two_level_ci(stats, n_boot=60, seed=11) == pytest.approx((lo, hi), abs=1e-12)


def test_replicates_do_not_depend_on_the_chunk_size(monkeypatch):
    resp, rate, _ = awkward_data(seed=4)
    stats = [[stats_of(rate + np.random.default_rng(k).normal(0, 1, rate.shape), resp) for k in range(2)]]
    whole = two_level_replicates(stats, n_boot=50, seed=3)
    monkeypatch.setattr("strf_runner.results.stimulus_stats.CHUNK_BYTES", 1)  # one replicate per chunk
    np.testing.assert_array_equal(two_level_replicates(stats, n_boot=50, seed=3), whole)


@pytest.mark.parametrize("d", [[0.3, -0.1, -0.1], [0.2, 0.1, 0.05], [0.1, -0.1, 0.0, 0.05, 0.02],
                               [1.0, 1.0, -1.0, -1.0], [0.0, 0.0, 0.0]])
def test_the_sign_flip_p_equals_an_enumeration(d):
    d = np.array(d)
    patterns = list(itertools.product([1, -1], repeat=d.size))
    observed = abs(sum(d))
    want = sum(abs(sum(s * x for s, x in zip(signs, d))) >= observed - 1e-12 for signs in patterns) / len(patterns)
    assert sign_flip_p(d) == pytest.approx(want, abs=1e-15)


def test_the_sign_flip_p_is_honest_about_few_stimuli_and_samples_many():
    assert sign_flip_p(np.array([0.2, 0.1, 0.05])) == 0.25  # 3 stimuli, all improved: p can go no lower
    assert math.isnan(sign_flip_p(np.array([])))
    d = np.random.default_rng(0).normal(0.3, 1.0, 20)  # 2^20 patterns: sampled
    signs = 1.0 - 2.0 * ((np.arange(2**20)[:, None] >> np.arange(20)) & 1)
    exact = np.mean(np.abs(signs @ d) >= abs(d.sum()) * (1 - 1e-12))
    assert sign_flip_p(d) == pytest.approx(exact, abs=0.015)
    assert sign_flip_p(d) == sign_flip_p(d)  # seeded


# --------------------------------------------------------------------------------------------
# Whole reports on synthetic sweeps with test predictions
# --------------------------------------------------------------------------------------------

TEST = [2, 3, 4]
N_NEURONS, N_REPEATS, N_BINS = 30, 8, 80


def sweep_data(tmp_path):
    """A dataset of 5 stimuli (test: 2, 3, 4), 30 neurons with a stimulus-locked rate, 8 Poisson repeats;
    returns the file and each test stimulus's rate (N, T)."""
    content = make_content(n_stimuli=5, n_neurons=N_NEURONS, n_repeats=N_REPEATS, lengths=[N_BINS] * 5)
    rng = np.random.default_rng(7)
    rates = {}
    t = np.arange(N_BINS)
    for s, stim in enumerate(content.stimuli):
        rates[s] = 3.0 + 2.0 * np.sin(t / rng.uniform(2, 5, (N_NEURONS, 1)) + rng.uniform(0, 6, (N_NEURONS, 1)))
        stim.responses = rng.poisson(np.repeat(rates[s][:, None], N_REPEATS, axis=1)).astype(np.float32)
    content.splits = {"train": [0], "val": [1], "test": TEST}
    return write_dataset(content, tmp_path / "data.h5"), content, rates


def write_run(root, name, frontend, seed, path, content, predictions, stimuli=TEST):
    """A finished run dir whose neurons.csv is metrics' score of ``predictions`` (3, N, T), as a run writes it."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(run_config(frontend, seed)))
    pred = predictions.astype(np.float32)
    resp = np.stack([content.stimuli[s].responses for s in stimuli])
    scores = metrics.score_neurons(torch.from_numpy(pred)[:, :, None], torch.from_numpy(resp))
    neuron_table(content.neuron_ids, scores).to_csv(run / "neurons.csv", index=False, float_format="%.6g")
    summary = {"test_mean_cc_norm": float(np.nanmean(scores.cc_norm.numpy())), "view": "spectrogram",
               "n_params": 100, "wall_time_s": 1.0, "dataset": {"path": str(path), "sha256": file_sha256(path)}}
    (run / "summary.json").write_text(json.dumps(summary))
    np.savez(run / "test_predictions.npz", predictions=pred, stimuli=np.asarray(stimuli),
             neuron_ids=np.asarray(content.neuron_ids))
    return run


def synthetic_sweep(tmp_path, arm_noise: list[float], base_noise: float = 1.0):
    """native (baseline) and leaf, 2 seeds each: each predicts the true rate plus Gaussian noise, of SD
    ``base_noise`` on every test stimulus for native, ``arm_noise[k]`` on test stimulus k for leaf."""
    path, content, rates = sweep_data(tmp_path)
    rng = np.random.default_rng(9)
    predictions = {}
    for frontend, noise in (("native", [base_noise] * 3), ("leaf", arm_noise)):
        for seed in (0, 1):
            pred = np.stack([rates[s] + rng.normal(0, sd, rates[s].shape) for s, sd in zip(TEST, noise)])
            predictions[frontend, seed] = pred
            write_run(tmp_path / "sweep", f"{frontend}-s{seed}", frontend, seed, path, content, pred)
    return content, predictions


def test_where_sounds_carry_the_effect_only_the_two_level_ci_says_so(tmp_path):
    """leaf predicts test stimulus 2 perfectly and the other two a little worse than native: most neurons
    gain on the three pooled, so the neuron-only CI excludes zero, but a test set drawn without that
    sound (8/27 of the draws) says leaf is worse: the two-level CI includes zero."""
    content, predictions = synthetic_sweep(tmp_path, arm_noise=[0.0, 1.15, 1.15])
    agg = aggregate(collect_runs([tmp_path / "sweep"]))
    c = agg.comparisons.set_index("arm").loc["frontend=leaf"]
    assert c["ci_resamples"] == STIMULI_AND_NEURONS and c["n_stimuli"] == 3 and c["ci_note"] == ""
    assert c["mean_diff"] > 0 and 0 < c["neuron_ci_low"] < c["neuron_ci_high"]
    assert c["ci_low"] < 0 < c["ci_high"]
    assert c["stimuli_improved"] == pytest.approx(1 / 3)
    d = per_stimulus_differences(content, predictions)
    assert d[0] > 0 > max(d[1], d[2])
    assert c["stimulus_corr_diff"] == pytest.approx(d.mean(), rel=1e-9)
    assert c["stimulus_p"] == pytest.approx(enumerated_p(d), abs=1e-15)
    arms = agg.arms.set_index("arm")
    assert (arms["ci_resamples"] == STIMULI_AND_NEURONS).all() and (arms["n_stimuli"] == 3).all()
    for _, arm in arms.iterrows():  # wider than the neuron-only CI, around the same mean
        assert arm["ci_high"] - arm["ci_low"] > arm["neuron_ci_high"] - arm["neuron_ci_low"]
        assert arm["ci_low"] < arm["mean_cc_norm"] < arm["ci_high"]
        assert arm["ensemble_ci_low"] < arm["ensemble_mean_cc_norm"] < arm["ensemble_ci_high"]


def test_where_the_effect_is_real_on_every_sound_both_cis_exclude_zero(tmp_path):
    content, predictions = synthetic_sweep(tmp_path, arm_noise=[0.5, 0.5, 0.5])
    c = aggregate(collect_runs([tmp_path / "sweep"])).comparisons.set_index("arm").loc["frontend=leaf"]
    assert c["ci_resamples"] == STIMULI_AND_NEURONS
    assert 0 < c["neuron_ci_low"] and 0 < c["ci_low"] < c["mean_diff"] < c["ci_high"]
    assert c["stimuli_improved"] == 1.0
    assert c["stimulus_p"] == 0.25  # every sound improved, and 3 sounds can say no more than that
    assert c["stimulus_p"] == pytest.approx(enumerated_p(per_stimulus_differences(content, predictions)))


def per_stimulus_differences(content, predictions) -> np.ndarray:
    """Per test stimulus: metrics.correlation on that stimulus alone, averaged over seeds per neuron, leaf
    minus native averaged over the neurons where both are defined, (3,)."""
    out = []
    for k, s in enumerate(TEST):
        resp = torch.from_numpy(content.stimuli[s].responses[None])
        mean = {}
        for frontend in ("native", "leaf"):
            runs = [metrics.correlation(torch.from_numpy(predictions[frontend, seed][k : k + 1].astype(np.float32))
                                        [:, :, None], resp).numpy() for seed in (0, 1)]
            mean[frontend] = np.nanmean(runs, axis=0)
        diff = mean["leaf"] - mean["native"]
        out.append(np.mean(diff[np.isfinite(diff)]))
    return np.array(out)


def enumerated_p(d: np.ndarray) -> float:
    patterns = list(itertools.product([1, -1], repeat=len(d)))
    return sum(abs(np.dot(signs, d)) >= abs(d.sum()) - 1e-12 for signs in patterns) / len(patterns)


def test_runs_without_test_predictions_get_a_labelled_neuron_only_ci(tmp_path):
    root = tmp_path / "sweep"
    for fe in ("native", "leaf"):
        for seed in (0, 1):
            write_fake_run(root / f"{fe}-s{seed}", run_config(fe, seed), fake_scores(fe, seed))
    agg = aggregate(collect_runs([root]))
    for table in (agg.arms, agg.comparisons):
        assert (table["ci_resamples"] == NEURONS_ONLY).all()
        assert (table["ci_low"] == table["neuron_ci_low"]).all() and (table["ci_high"] == table["neuron_ci_high"]).all()
        assert table["n_stimuli"].isna().all()
    assert agg.arms["ci_note"].str.contains("2 of 2 runs have no test_predictions.npz").all()
    assert agg.comparisons["stimulus_p"].isna().all()
    assert agg.comparisons.loc[0, "ci_note"].startswith("arm: 2 of 2 runs have no test_predictions.npz")
    md = markdown_report(agg, ["sweep"], None)
    assert "| CI resamples |" in md and "| neurons only |" in md and "Wilcoxon p (neurons)" in md
    assert "CIs that resample neurons only" in md and "- frontend=leaf: 2 of 2 runs have no" in md


def test_a_dataset_not_here_or_predictions_that_do_not_match_are_said(tmp_path):
    synthetic_sweep(tmp_path, arm_noise=[0.5, 0.5, 0.5])
    leaf = tmp_path / "sweep" / "leaf-s1"
    table = pd.read_csv(leaf / "neurons.csv")
    table.loc[3, "cc_norm"] += 0.01
    table.to_csv(leaf / "neurons.csv", index=False)
    agg = aggregate(collect_runs([tmp_path / "sweep"]))
    arms = agg.arms.set_index("arm")
    assert arms.loc["frontend=native", "ci_resamples"] == STIMULI_AND_NEURONS
    assert arms.loc["frontend=leaf", "ci_resamples"] == NEURONS_ONLY
    note = arms.loc["frontend=leaf", "ci_note"]
    assert f"test predictions of {leaf} do not reproduce its neurons.csv (neuron u3" in note
    assert agg.comparisons.loc[0, "ci_resamples"] == NEURONS_ONLY
    (tmp_path / "data.h5").rename(tmp_path / "moved.h5")
    agg = aggregate(collect_runs([tmp_path / "sweep"]))
    assert (agg.arms["ci_resamples"] == NEURONS_ONLY).all()
    assert agg.arms["ci_note"].str.contains(f"dataset {tmp_path / 'data.h5'} is not here").all()


def test_an_arm_and_a_baseline_tested_on_different_stimuli_are_not_resampled_together(tmp_path):
    path, content, rates = sweep_data(tmp_path)
    rng = np.random.default_rng(0)
    for frontend, stimuli in (("native", TEST), ("leaf", [1, 3, 4])):
        pred = np.stack([rates[s] + rng.normal(0, 1.0, rates[s].shape) for s in stimuli])
        write_run(tmp_path / "sweep", f"{frontend}-s0", frontend, 0, path, content, pred, stimuli=stimuli)
    agg = aggregate(collect_runs([tmp_path / "sweep"]))
    assert (agg.arms["ci_resamples"] == STIMULI_AND_NEURONS).all()
    c = agg.comparisons.iloc[0]
    assert c["ci_resamples"] == NEURONS_ONLY
    assert c["ci_note"] == "the arm and its baseline were tested on different stimuli"
    assert c["ci_low"] == c["neuron_ci_low"] and math.isnan(c["stimulus_p"])
