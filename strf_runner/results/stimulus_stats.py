"""Statistics that count sounds: cc_norm over any multiset of test stimuli, a two-level bootstrap over
stimuli and neurons, and a paired sign-flip test across stimuli.

A test set holds few sounds (3 on NS1), and sounds are a larger source of variance than neurons: a CI
that resamples neurons only speaks with the confidence of every neuron about those few sounds. Here a
bootstrap replicate draws the S test stimuli with replacement, then the neurons with replacement, and
scores every run again on the drawn stimuli.

Sufficient statistics
---------------------
cc_norm (``strf_runner.metrics``, Schoppe et al. 2016) pools the prediction p and the PSTH g over the
valid bins of the stimuli concatenated, and weights each stimulus's signal power SP_b by its valid-bin
count T_v,b over the qualifying stimuli. Both are sums over stimuli, so per stimulus and neuron
``StimulusStats`` keeps (over the PSTH-valid bins, p and g shifted by one per-neuron constant so that
the sums stay well conditioned):

    0 n = T_v   1 Σp   2 Σg   3 Σp²   4 Σg²   5 Σpg   6 T_q·SP_b   7 T_q   8 poisoned

with T_q = T_v where the stimulus qualifies for the signal power (>= 2 used repeats, >= 2 valid bins)
and 0 elsewhere, and ``poisoned`` = 1 where the prediction is not finite at a valid bin (metrics then
gives NaN). The PSTH and the signal power depend on the responses only (``response_stats``, computed
once per report for every run scored against them). cc_norm over a multiset of stimuli, stimulus b
counted w_b times, is a function of Σ_b w_b · stats_b, so a set of multisets is one (M, S) @ (S, N·9)
product; a bootstrap scores each distinct multiset once. The largest |p| and |g| per stimulus
reproduce metrics' rule that a series flat to 1e-12 of its amplitude is exactly flat. Results equal
``metrics.cc_norm`` on the stimuli concatenated to rounding (the tests hold them to 1e-10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from strf_runner import metrics
from strf_runner.memory import check_allocation

FIELDS = 9
N, SP, SG, SPP, SGG, SPG, SP_NUM, SP_DEN, POISONED = range(FIELDS)
TINY = 1e-12  # metrics: var_p below this leaves cc_norm undefined
FLAT = 1e-12  # metrics: a centred series with rms <= FLAT * max|x| is flat (exactly zero)
CHUNK_BYTES = 64 << 20  # the replicates are computed in chunks of about this many bytes of float64
EXACT_SIGN_FLIPS = 16  # up to 2**16 sign patterns are enumerated; more stimuli sample them


@dataclass(frozen=True)
class StimulusStats:
    """One run's sufficient statistics of cc_norm per test stimulus and neuron (see the module docstring).

    sums: (S, N, 9) float64, the fields above; amp: (S, N, 2) float64, max |p| and max |g| over the
    valid bins (0 where none); corr: (S, N) float64, the Pearson correlation of prediction and PSTH on
    each stimulus alone (as ``metrics.correlation`` computes it; NaN where undefined).
    """

    sums: np.ndarray
    amp: np.ndarray
    corr: np.ndarray

    @property
    def n_stimuli(self) -> int:
        return self.sums.shape[0]

    def rows(self, index: np.ndarray) -> StimulusStats:
        """The neurons at ``index`` (K,), in that order; -1 gives a neuron the run lacks (never valid)."""
        index = np.asarray(index, dtype=np.int64)
        missing = index < 0
        sums = self.sums[:, index].copy()
        sums[:, missing] = 0.0
        sums[:, missing, POISONED] = 1.0
        amp = self.amp[:, index].copy()
        amp[:, missing] = 0.0
        corr = self.corr[:, index].copy()
        corr[:, missing] = math.nan
        return StimulusStats(sums, amp, corr)


@dataclass(frozen=True)
class ResponseStats:
    """What every run scored against the same test responses shares, computed once: ``psth`` (S, N, T)
    float64, NaN where no repeat is valid; ``power`` (S, N, 2): T_q·SP_b and T_q (fields 6 and 7)."""

    psth: np.ndarray
    power: np.ndarray


def response_stats(resp: np.ndarray) -> ResponseStats:
    """The PSTH and per-stimulus signal power (``metrics.signal_power`` of each stimulus alone) of test
    responses ``resp`` (S, N, R, T), NaN-padded along R and T."""
    resp_t = torch.from_numpy(np.asarray(resp, dtype=np.float64))
    psth = metrics.psth(resp_t)[:, :, 0].numpy()
    n_valid = (~np.isnan(psth)).sum(axis=2)
    power = np.zeros(psth.shape[:2] + (2,))
    for s in range(psth.shape[0]):
        sp = metrics.signal_power(resp_t[s : s + 1])[0].numpy()  # (N,): NaN where the stimulus does not qualify
        qualifies = np.isfinite(sp)
        power[s, :, 1] = np.where(qualifies, n_valid[s], 0.0)
        power[s, :, 0] = power[s, :, 1] * np.where(qualifies, sp, 0.0)
    return ResponseStats(psth, power)


def stimulus_stats(pred: np.ndarray, responses: ResponseStats) -> StimulusStats:
    """The sufficient statistics of predictions ``pred`` (S, N, T) against test responses summarised by
    ``response_stats``, NaN-padded as ``metrics`` takes them (a bin is valid where at least one repeat
    is not NaN; prediction values at invalid bins are ignored). ValueError when the shapes differ."""
    pred = np.asarray(pred, dtype=np.float64)
    g = responses.psth
    if pred.shape != g.shape:
        raise ValueError(f"test predictions of shape {pred.shape} do not match the test responses' {g.shape} "
                         "(stimuli, neurons, bins)")
    ok = ~np.isnan(g)
    finite = ok & np.isfinite(pred)
    p0, g0 = np.where(finite, pred, 0.0), np.where(ok, g, 0.0)
    shift_p = p0.sum(axis=(0, 2)) / np.maximum(finite.sum(axis=(0, 2)), 1)  # (N,)
    shift_g = g0.sum(axis=(0, 2)) / np.maximum(ok.sum(axis=(0, 2)), 1)
    dp = np.where(finite, pred - shift_p[None, :, None], 0.0)
    dg = np.where(ok, g - shift_g[None, :, None], 0.0)

    sums = np.zeros(pred.shape[:2] + (FIELDS,))
    sums[..., N] = ok.sum(axis=2)
    sums[..., SP], sums[..., SG] = dp.sum(axis=2), dg.sum(axis=2)
    sums[..., SPP], sums[..., SGG], sums[..., SPG] = (dp * dp).sum(axis=2), (dg * dg).sum(axis=2), (dp * dg).sum(axis=2)
    sums[..., SP_NUM : SP_DEN + 1] = responses.power
    sums[..., POISONED] = (ok & ~finite).any(axis=2)
    amp = np.stack([np.abs(p0).max(axis=2, initial=0.0), np.abs(g0).max(axis=2, initial=0.0)], axis=-1)
    return StimulusStats(sums, amp, _correlations(np.where(ok, pred, 0.0), g0, ok))


def _correlations(p0: np.ndarray, g0: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``metrics.correlation`` of each stimulus alone, (S, N): p0, g0 (S, N, T) zero at invalid bins,
    ok (S, N, T) the valid bins."""
    n = ok.sum(axis=2)
    n_f = np.maximum(n, 1)[..., None]

    def centred(x0: np.ndarray) -> np.ndarray:
        xc = np.where(ok, x0 - x0.sum(axis=2, keepdims=True) / n_f, 0.0)
        flat = (xc * xc).sum(axis=2, keepdims=True) <= n_f * (FLAT * np.abs(x0).max(axis=2, keepdims=True)) ** 2
        return np.where(flat, 0.0, xc)

    pc, gc = centred(p0), centred(g0)
    denom = np.sqrt((pc * pc).sum(axis=2) * (gc * gc).sum(axis=2))
    good = (n >= 2) & (denom >= TINY)
    return np.where(good, (pc * gc).sum(axis=2) / np.where(good, denom, 1.0), math.nan)


def cc_norm_from_stats(stats: StimulusStats, weights: np.ndarray) -> np.ndarray:
    """cc_norm of every neuron on the multisets of stimuli that ``weights`` (C, S) counts (how many times
    each stimulus is drawn), as ``metrics.cc_norm`` on those stimuli concatenated: (C, N) float64, NaN
    where undefined."""
    weights = np.asarray(weights, dtype=np.float64)
    n_sets, (n_stim, n_neurons) = weights.shape[0], stats.sums.shape[:2]
    tot = (weights @ stats.sums.reshape(n_stim, -1)).reshape(n_sets, n_neurons, FIELDS)
    n = tot[..., N]
    n_f = np.maximum(n, 1.0)
    spp = tot[..., SPP] - tot[..., SP] ** 2 / n_f
    sgg = tot[..., SGG] - tot[..., SG] ** 2 / n_f
    spg = tot[..., SPG] - tot[..., SP] * tot[..., SG] / n_f
    flat_p, flat_g = _flat(spp, n_f, weights, stats.amp[..., 0]), _flat(sgg, n_f, weights, stats.amp[..., 1])
    spp = np.where(flat_p, 0.0, spp)
    spg = np.where(flat_p | flat_g, 0.0, spg)
    has_sp = tot[..., SP_DEN] > 0
    sp = np.where(has_sp, tot[..., SP_NUM] / np.where(has_sp, tot[..., SP_DEN], 1.0), math.nan)
    dof = np.maximum(n - 1.0, 1.0)
    var_p = spp / dof
    good = (n >= 2) & np.isfinite(sp) & (sp > 0) & (var_p >= TINY) & (tot[..., POISONED] == 0)
    return np.where(good, (spg / dof) / np.sqrt(np.where(good, var_p * sp, 1.0)), math.nan)


def _flat(ss: np.ndarray, n_f: np.ndarray, weights: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """(C, N) bool: the centred sum of squares ``ss`` is rounding residue, rms <= FLAT · the largest |x| on
    the drawn stimuli (amp (S, N) per stimulus). Checked exactly only where it is under the bound that
    the largest |x| on any stimulus gives."""
    flat = ss <= n_f * (FLAT * amp.max(axis=0)) ** 2
    rows, cols = np.nonzero(flat)
    if rows.size:
        drawn_amp = np.where(weights[rows] > 0, amp[:, cols].T, 0.0).max(axis=1)
        flat[rows, cols] = ss[rows, cols] <= n_f[rows, cols] * (FLAT * drawn_amp) ** 2
    return flat


def bootstrap_draws(n_stimuli: int, n_neurons: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The draws of a two-level bootstrap, from ``np.random.default_rng(seed)``: first the stimuli
    (n_boot, n_stimuli), then the neurons (n_boot, n_neurons), indices drawn with replacement."""
    check_allocation(8.0 * n_boot * (n_stimuli + n_neurons), f"a two-level bootstrap of {n_boot} replicates over "
                     f"{n_stimuli} stimuli and {n_neurons} neurons")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_stimuli, size=(n_boot, n_stimuli)), rng.integers(0, n_neurons, size=(n_boot, n_neurons))


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """(C, K) indices in [0, size) -> (C, size) float64: how many times each was drawn per row."""
    rows = np.arange(draws.shape[0])[:, None] * size
    return np.bincount((rows + draws).ravel(), minlength=draws.shape[0] * size).reshape(draws.shape[0], size).astype(
        np.float64)


def seed_mean(scores: list[np.ndarray]) -> np.ndarray:
    """The mean over runs of per-neuron scores (each (..., N)) where finite; NaN where none is."""
    stacked = np.stack(scores)
    finite = np.isfinite(stacked)
    count = finite.sum(axis=0)
    total = np.where(finite, stacked, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), math.nan)


def two_level_replicates(groups: list[list[StimulusStats]], n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap replicates (n_boot,) of the mean score over neurons, resampling stimuli, then neurons.

    groups: one arm (a list of its runs' stats), or an arm and its baseline (the difference arm −
    baseline), all over the same S stimuli and the same K neurons in the same order (the neurons to
    resample: those valid on the whole test set). Per replicate (draws of ``bootstrap_draws``): each
    run's cc_norm on the drawn stimuli, averaged over the group's runs per neuron where defined; then
    the mean (of the difference, where defined in both) over the drawn neurons where defined, each
    counted as often as drawn. NaN for a replicate in which no drawn neuron is defined. Each distinct
    multiset of stimuli is scored once (3 stimuli make only 10).
    """
    n_stim, n_neurons = groups[0][0].sums.shape[:2]
    stim_draws, neuron_draws = bootstrap_draws(n_stim, n_neurons, n_boot, seed)
    multisets, which = np.unique(_counts(stim_draws, n_stim), axis=0, return_inverse=True)
    check_allocation(8.0 * len(multisets) * n_neurons * (len(groups) + 1), f"a two-level bootstrap over "
                     f"{len(multisets)} multisets of {n_stim} stimuli and {n_neurons} neurons")
    chunk = max(1, CHUNK_BYTES // (8 * n_neurons * (FIELDS + n_stim + 8)))
    value = np.empty((len(multisets), n_neurons))
    for start in range(0, len(multisets), chunk):
        weights = multisets[start : start + chunk]
        scores = [seed_mean([cc_norm_from_stats(run, weights) for run in group]) for group in groups]
        value[start : start + chunk] = scores[0] if len(scores) == 1 else scores[0] - scores[1]
    defined = np.isfinite(value)
    value = np.where(defined, value, 0.0)
    out = np.empty(n_boot)
    chunk = max(1, CHUNK_BYTES // (8 * n_neurons * 3))
    for start in range(0, n_boot, chunk):
        rows = which.ravel()[start : start + chunk]
        counts = _counts(neuron_draws[start : start + chunk], n_neurons) * defined[rows]
        total = counts.sum(axis=1)
        out[start : start + chunk] = np.where(total > 0, (counts * value[rows]).sum(axis=1) / np.maximum(total, 1),
                                              math.nan)
    return out


def stimulus_differences(arm: list[StimulusStats], baseline: list[StimulusStats]) -> np.ndarray:
    """Per test stimulus (S,): the mean over neurons of arm − baseline in the correlation of prediction
    and PSTH on that stimulus alone (each averaged over the arm's runs), over the neurons where both are
    defined; NaN where none is. Both arms are scored against the same responses, so on one stimulus a
    difference in cc_norm is this difference divided by the neuron's noise ceiling there, an estimate
    from one sound's repeats that can be ~0 or undefined; the correlation is bounded and needs no repeats.
    """
    diff = seed_mean([run.corr for run in arm]) - seed_mean([run.corr for run in baseline])  # (S, K)
    defined = np.isfinite(diff)
    count = defined.sum(axis=1)
    return np.where(count > 0, np.where(defined, diff, 0.0).sum(axis=1) / np.maximum(count, 1), math.nan)


def sign_flip_p(diffs: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p of the mean of paired differences ``diffs`` (S,), finite.

    Under the null each difference is as likely negative as positive: p is the share of sign patterns
    whose |mean| reaches the observed one. Exact (all 2^S patterns, the observed and its mirror among
    them, so p >= 2 / 2^S: 0.25 with 3 stimuli) for S <= 16; otherwise ``n_perm`` patterns drawn from
    ``seed``, p = (1 + hits) / (1 + n_perm). 1.0 when every difference is 0; NaN for none.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    observed = abs(d.sum())
    if d.size <= EXACT_SIGN_FLIPS:
        signs = 1.0 - 2.0 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
        return float(np.mean(np.abs(signs @ d) >= observed * (1 - 1e-12)))
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, d.size))
    return float((1 + np.sum(np.abs(signs @ d) >= observed * (1 - 1e-12))) / (1 + n_perm))
