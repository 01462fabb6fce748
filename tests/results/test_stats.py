"""Sweep statistics against independent computations (scipy, plain loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from strf_runner.results.stats import (
    bootstrap_mean_ci,
    paired_comparison,
    summarise_scores,
)


def test_bootstrap_ci_equals_a_plain_resampling_loop():
    values = np.random.default_rng(1).normal(0.5, 0.2, size=40)
    low, high = bootstrap_mean_ci(values, n_boot=500, seed=7)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, values.size, size=(500, values.size))
    means = [np.mean([values[j] for j in row]) for row in idx]
    assert low == pytest.approx(np.percentile(means, 2.5), abs=1e-12)
    assert high == pytest.approx(np.percentile(means, 97.5), abs=1e-12)


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    lo_s, hi_s = bootstrap_mean_ci(small)
    lo_l, hi_l = bootstrap_mean_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # ~ 1/sqrt(100) of the width
    assert bootstrap_mean_ci(small) == (lo_s, hi_s)  # seeded: a report is reproducible
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.array([1.0])))


def test_summary_leaves_invalid_neurons_out():
    s = summarise_scores(np.array([0.2, np.nan, 0.4, 0.9, np.nan]))
    assert s.n_valid == 3
    assert s.mean == pytest.approx(0.5) and s.median == pytest.approx(0.4)
    assert s.ci_low <= s.mean <= s.ci_high
    empty = summarise_scores(np.array([np.nan, np.nan]))
    assert empty.n_valid == 0 and math.isnan(empty.mean)


def test_paired_comparison_matches_scipy_and_a_hand_computed_mean():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.2, 0.8, size=60)
    arm = base + rng.normal(0.05, 0.1, size=60)
    arm[[3, 7]] = np.nan  # invalid in the arm
    base[11] = np.nan  # invalid in the baseline
    c = paired_comparison(arm, base)
    pairs = [(a, b) for a, b in zip(arm, base) if not (math.isnan(a) or math.isnan(b))]
    diffs = np.array([a - b for a, b in pairs])
    assert c.n_pairs == len(pairs) == 57
    assert c.mean_diff == pytest.approx(sum(diffs) / len(diffs), abs=1e-12)
    assert c.wilcoxon_p == pytest.approx(sps.wilcoxon(diffs).pvalue, rel=1e-12)
    assert c.frac_improved == pytest.approx(sum(d > 0 for d in diffs) / len(diffs))
    assert c.ci_low < c.mean_diff < c.ci_high


def test_paired_comparison_edge_cases():
    same = np.array([0.1, 0.5, 0.7])
    c = paired_comparison(same, same.copy())
    assert c.mean_diff == 0 and c.wilcoxon_p == 1.0 and c.frac_improved == 0.0
    none = paired_comparison(np.array([np.nan, 1.0]), np.array([0.5, np.nan]))
    assert none.n_pairs == 0 and math.isnan(none.mean_diff) and math.isnan(none.wilcoxon_p)
    with pytest.raises(ValueError, match="same neurons"):
        paired_comparison(np.zeros(3), np.zeros(4))
