"""Statistics for comparing arms of a sweep: bootstrap CIs and paired tests, each saying what it resamples.

Seeds are averaged per neuron before any of this. Two units of replication: neurons (the population
question "does this front-end predict these neurons better?") and test stimuli (sounds, the larger source
of variance, and few). ``two_level_ci`` resamples both, from the runs' test predictions
(``strf_runner.results.stimulus_stats``); ``stimulus_test`` compares an arm with its baseline across
stimuli. The neuron-only functions (``bootstrap_mean_ci``, ``summarise_scores``, ``paired_comparison``)
need only the per-neuron scores: they are the fallback, labelled as such, where test predictions are not to
be had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from strf_runner.results.stimulus_stats import StimulusStats, sign_flip_p, stimulus_differences, two_level_replicates

N_BOOT = 10_000
CONFIDENCE = 0.95
#: What a CI resampled, as the tables say it.
STIMULI_AND_NEURONS = "stimuli and neurons"
NEURONS_ONLY = "neurons only"


def percentile_ci(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (B,) over the finite ones; (NaN, NaN) if none is."""
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (1-D, finite), resampling with replacement.

    Seeded, so a report is reproducible. (NaN, NaN) for fewer than 2 values.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    return percentile_ci(values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1), confidence)


@dataclass
class ArmScores:
    """One arm's per-neuron scores summarised over its valid neurons (ci_*: bootstrap over neurons only)."""

    n_valid: int
    mean: float
    median: float
    ci_low: float
    ci_high: float


def summarise_scores(per_neuron: np.ndarray) -> ArmScores:
    """per_neuron: (N,) cc_norm per neuron (NaN = invalid, left out)."""
    x = np.asarray(per_neuron, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return ArmScores(0, math.nan, math.nan, math.nan, math.nan)
    low, high = bootstrap_mean_ci(x)
    return ArmScores(int(x.size), float(x.mean()), float(np.median(x)), low, high)


@dataclass
class PairedComparison:
    """Arm minus baseline over the neurons valid in both.

    mean_diff with its bootstrap CI over neurons only; wilcoxon_p: two-sided Wilcoxon signed-rank test of the
    differences (1.0 when all are zero); frac_improved: share of neurons with a positive difference.
    """

    n_pairs: int
    mean_diff: float
    ci_low: float
    ci_high: float
    wilcoxon_p: float
    frac_improved: float


def paired_comparison(arm: np.ndarray, baseline: np.ndarray) -> PairedComparison:
    """arm, baseline: (N,) per-neuron scores of the same neurons in the same order (NaN = invalid)."""
    a, b = np.asarray(arm, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same neurons: shapes {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    if d.size == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    low, high = bootstrap_mean_ci(d)
    if np.all(d == 0):
        p = 1.0
    elif d.size < 2:
        p = math.nan
    else:
        p = float(stats.wilcoxon(d).pvalue)
    return PairedComparison(int(d.size), float(d.mean()), low, high, p, float(np.mean(d > 0)))


def two_level_ci(
    groups: list[list[StimulusStats]], n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of the mean score over neurons (one group: an arm's runs) or of the paired
    difference (two: arm, baseline), from a seeded two-level bootstrap over test stimuli, then neurons
    (``two_level_replicates``: the runs' stats over the neurons to resample, valid on the whole test set).
    Replicates in which no drawn neuron is valid are left out; (NaN, NaN) without neurons."""
    if groups[0][0].sums.shape[1] == 0:
        return math.nan, math.nan
    return percentile_ci(two_level_replicates(groups, n_boot, seed), confidence)


@dataclass
class StimulusTest:
    """Arm minus baseline across test stimuli: per stimulus, the mean over neurons of the difference in
    the correlation of prediction and PSTH on that stimulus alone (``stimulus_differences``).

    n_stimuli: stimuli with a difference (some neuron valid in both); mean_diff: their mean; p: two-sided
    sign-flip permutation p of it (exact up to 16 stimuli; >= 0.25 with 3); frac_improved: share of
    stimuli with a positive difference.
    """

    n_stimuli: int
    mean_diff: float
    p: float
    frac_improved: float


def stimulus_test(arm: list[StimulusStats], baseline: list[StimulusStats]) -> StimulusTest:
    """arm, baseline: each run's stats over the same stimuli and the same neurons in the same order."""
    d = stimulus_differences(arm, baseline)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return StimulusTest(0, math.nan, math.nan, math.nan)
    return StimulusTest(int(d.size), float(d.mean()), sign_flip_p(d), float(np.mean(d > 0)))
