"""The independent metric reference that strf_runner.metrics is tested against: plain loops in numpy
float64 and explicit formulas.

Shapes: resp (B, N, R, T) stimuli x neurons x repeats x bins, NaN where missing; pred (B, N, 1, T).
Per-neuron results are (N,) arrays, NaN where the quantity is undefined."""

from __future__ import annotations

import math

import numpy as np


def ref_psth(resp):
    """The mean over valid (non-NaN) repeats, (B, N, 1, T); NaN at bins with no valid repeat."""
    B, N, R, T = resp.shape
    out = np.full((B, N, 1, T), np.nan)
    for b in range(B):
        for n in range(N):
            for t in range(T):
                vals = [resp[b, n, r, t] for r in range(R) if not math.isnan(resp[b, n, r, t])]
                if vals:
                    out[b, n, 0, t] = sum(vals) / len(vals)
    return out


def _var_unbiased(x):
    x = list(x)
    mu = sum(x) / len(x)
    return sum((v - mu) ** 2 for v in x) / (len(x) - 1)


def ref_signal_power(resp):
    """Rule: valid bins = bins with >= 1 valid repeat; used repeats = valid at every valid bin.

    Returns (signal power, noise power), each (N,): per-stimulus estimates averaged with the number of
    valid bins as weights, over stimuli with >= 2 used repeats and >= 2 valid bins."""
    B, N, R, T = resp.shape
    sp = np.full(N, np.nan)
    npow = np.full(N, np.nan)
    for n in range(N):
        num_sp = num_np = wsum = 0.0
        for b in range(B):
            bins = [t for t in range(T) if any(not math.isnan(resp[b, n, r, t]) for r in range(R))]
            reps = [r for r in range(R) if bins and all(not math.isnan(resp[b, n, r, t]) for t in bins)]
            Rv, Tv = len(reps), len(bins)
            if Rv < 2 or Tv < 2:
                continue
            block = np.array([[resp[b, n, r, t] for t in bins] for r in reps])
            mean_tr = [sum(block[:, j]) / Rv for j in range(Tv)]
            V = _var_unbiased(mean_tr)
            TP = sum(_var_unbiased(block[i]) for i in range(Rv)) / Rv
            spb = (Rv * V - TP) / (Rv - 1)
            num_sp += Tv * spb
            num_np += Tv * (TP - spb)
            wsum += Tv
        if wsum > 0:
            sp[n] = num_sp / wsum
            npow[n] = num_np / wsum
    return sp, npow


def _pairs(pred, resp, n):
    g = ref_psth(resp)
    B, _, _, T = resp.shape
    ps, gs = [], []
    for b in range(B):
        for t in range(T):
            if not math.isnan(g[b, n, 0, t]):
                ps.append(pred[b, n, 0, t])
                gs.append(g[b, n, 0, t])
    return ps, gs


def ref_correlation(pred, resp):
    """Pearson correlation of prediction and PSTH over the bins where the PSTH is defined, (N,)."""
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        ps, gs = _pairs(pred, resp, n)
        if len(ps) < 2:
            continue
        mp, mg = sum(ps) / len(ps), sum(gs) / len(gs)
        spp = sum((a - mp) ** 2 for a in ps)
        sgg = sum((c - mg) ** 2 for c in gs)
        spg = sum((a - mp) * (c - mg) for a, c in zip(ps, gs))
        if math.sqrt(spp * sgg) < 1e-12:
            continue
        out[n] = spg / math.sqrt(spp * sgg)
    return out


def ref_cc_norm(pred, resp):
    """Normalised correlation cov(pred, PSTH) / sqrt(var(pred) * signal power), (N,); NaN where fewer than
    2 bins have a PSTH, the signal power is not a finite number > 0, or the prediction is constant."""
    sp, _ = ref_signal_power(resp)
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        ps, gs = _pairs(pred, resp, n)
        k = len(ps)
        if k < 2 or not math.isfinite(sp[n]) or sp[n] <= 0:
            continue
        mp, mg = sum(ps) / k, sum(gs) / k
        cov = sum((a - mp) * (c - mg) for a, c in zip(ps, gs)) / (k - 1)
        var_p = sum((a - mp) ** 2 for a in ps) / (k - 1)
        if var_p < 1e-12:
            continue
        out[n] = cov / math.sqrt(var_p * sp[n])
    return out


def ref_cc_max(resp):
    """The ceiling sqrt(signal power / var(PSTH)), (N,); 0 where the signal power is <= 0."""
    sp, _ = ref_signal_power(resp)
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        _, gs = _pairs(np.zeros((resp.shape[0], N, 1, resp.shape[3])), resp, n)
        if len(gs) < 2 or math.isnan(sp[n]):
            continue
        var_g = _var_unbiased(gs)
        if var_g < 1e-12:
            continue
        out[n] = 0.0 if sp[n] <= 0 else math.sqrt(sp[n] / var_g)
    return out


def ref_mse(pred, resp):
    """Mean squared error of prediction against PSTH over the bins where the PSTH is defined, (N,)."""
    N = resp.shape[1]
    out = np.full(N, np.nan)
    for n in range(N):
        ps, gs = _pairs(pred, resp, n)
        if ps:
            out[n] = sum((a - c) ** 2 for a, c in zip(ps, gs)) / len(ps)
    return out
