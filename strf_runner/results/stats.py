"""Statistics for comparing arms of a sweep over neurons: bootstrap CIs and paired tests.

Neurons are the unit of replication (the population question is "does this front-end predict these
neurons better?"); seeds are averaged per neuron before any of this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

N_BOOT = 10_000
CONFIDENCE = 0.95


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
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass
class ArmScores:
    """One arm's per-neuron scores summarised over its valid neurons."""

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

    mean_diff with its bootstrap CI; wilcoxon_p: two-sided Wilcoxon signed-rank test of the
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
