"""Property-based (hypothesis) fuzzing of the metrics on larger, messier data than test_metrics.py.

Every property here follows from the definitions documented in strf_runner/metrics.py:

- cc_abs = Pearson r(p, g) over the valid (b, t) of the PSTH g, so it lies in [-1, 1] and is
  invariant under p -> a p + b (a > 0), flipped for a < 0.
- cc_norm = cov(p, g) / sqrt(var_p · SP) has the same affine behaviour, and with
  cc_max = sqrt(SP / var_g): cc_norm = cc_abs / cc_max where SP > 0.
- With p = g: cc_abs = 1 and cc_norm = var_g / sqrt(var_g · SP) = sqrt(var_g / SP) = 1 / cc_max.
- NaN is the only mask: a repeat that is NaN throughout is dropped (same result as removing it),
  prediction values where the PSTH is NaN are ignored, and undefined cc_norm is NaN (never 0)
  with valid = False.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strf_runner import metrics as M

_fuzz = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REL = 1e-9
FIELDS = ("cc_norm", "cc_abs", "signal_power", "noise_power", "cc_max")


def T_(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def assert_close(actual, expected, rel=REL, what=""):
    """Same NaN pattern, and |a - e| <= rel * max(1, |a|, |e|) elsewhere."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, (what, a.shape, e.shape)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN pattern differs")
    ok = ~np.isnan(a)
    scale = np.maximum(1.0, np.maximum(np.abs(a[ok]), np.abs(e[ok])))
    err = np.abs(a[ok] - e[ok]) / scale
    assert np.all(err <= rel), f"{what}: max rel err {err.max() if err.size else 0}\n{a}\n{e}"


def scores(pred: np.ndarray, resp: np.ndarray) -> M.NeuronScores:
    """score_neurons, checked against the individual public functions on the way."""
    p, y = T_(pred), T_(resp)
    s = M.score_neurons(p, y)
    assert_close(s.cc_norm, M.cc_norm(p, y), rel=1e-12, what="score_neurons.cc_norm vs cc_norm")
    assert_close(s.cc_abs, M.correlation(p, y), rel=1e-12, what="score_neurons.cc_abs vs correlation")
    assert_close(s.cc_max, M.cc_max(y), rel=1e-12, what="score_neurons.cc_max vs cc_max")
    sp, npow = M.signal_power(y)
    assert_close(s.signal_power, sp, rel=1e-12, what="signal_power")
    assert_close(s.noise_power, npow, rel=1e-12, what="noise_power")
    for f in FIELDS:
        assert not torch.isinf(getattr(s, f)).any(), f
    torch.testing.assert_close(s.valid, torch.isfinite(s.cc_norm))
    return s


@st.composite
def scenes(draw, min_repeats: int = 2):
    """(pred, resp) with B stimuli of lengths 10..200 (NaN-padded to the longest), N neurons,
    R repeats, a little scattered NaN, and optionally a neuron that never heard some stimulus."""
    seed = draw(st.integers(0, 2**32 - 1))
    B = draw(st.integers(1, 3))
    N = draw(st.integers(1, 4))
    R = draw(st.integers(min_repeats, 10))
    lengths = draw(st.lists(st.integers(10, 200), min_size=B, max_size=B))
    n_holes = draw(st.integers(0, 6))
    noise = draw(st.sampled_from([0.3, 1.0, 3.0]))
    scale = draw(st.sampled_from([1e-2, 1.0, 1e2]))
    offset = draw(st.sampled_from([0.0, 5.0, -50.0]))
    rng = np.random.default_rng(seed)
    T = max(lengths)
    sig = rng.normal(size=(B, N, 1, T))
    resp = offset + scale * (sig + noise * rng.normal(size=(B, N, R, T)))
    pred = offset + scale * (sig + rng.normal(size=(B, N, 1, T)))
    for b, L in enumerate(lengths):
        resp[b, :, :, L:] = np.nan
        pred[b, :, :, L:] = rng.choice([np.nan, np.inf, 1e300, 0.0])  # ignored: PSTH is NaN there
    for _ in range(n_holes):  # a few scattered missing entries
        resp[tuple(rng.integers(0, d) for d in resp.shape)] = np.nan
    if B > 1 and draw(st.booleans()):
        resp[rng.integers(B), rng.integers(N)] = np.nan  # a stimulus one neuron never heard
    return pred, resp


def _has_valid_psth(resp: np.ndarray) -> np.ndarray:
    """(N,) number of valid PSTH positions per neuron."""
    return (~np.isnan(resp)).any(axis=2).sum(axis=(0, 2))


def _sp_defined(resp: np.ndarray) -> np.ndarray:
    """(N,) bool: some stimulus has >= 2 repeats valid at every PSTH-valid bin and >= 2 such bins
    (the module docstring's rule; a repeat with scattered holes does not count)."""
    valid = ~np.isnan(resp)
    bins = valid.any(axis=2, keepdims=True)  # (B, N, 1, T)
    full = (valid | ~bins).all(axis=3)  # (B, N, R)
    ok = (full.sum(axis=2) >= 2) & (bins.sum(axis=(2, 3)) >= 2)  # (B, N)
    return ok.any(axis=0)


# --------------------------------------------------------------------------------------------


@_fuzz
@given(scenes())
def test_fuzz_ranges_and_ccnorm_is_ccabs_over_ccmax(scene):
    pred, resp = scene
    s = scores(pred, resp)
    cc_abs, cc_norm, cc_max, sp = (getattr(s, f).numpy() for f in ("cc_abs", "cc_norm", "cc_max", "signal_power"))
    # generic data: every neuron has many valid points and a non-constant PSTH and prediction
    assert np.all(_has_valid_psth(resp) >= 10)
    assert np.all(np.isfinite(cc_abs)), cc_abs
    assert np.all(np.abs(cc_abs) <= 1 + 1e-12), cc_abs
    np.testing.assert_array_equal(np.isfinite(sp), _sp_defined(resp))
    # cc_norm undefined exactly where SP is NaN or <= 0; never 0 in place of undefined
    np.testing.assert_array_equal(np.isnan(cc_norm), ~(sp > 0))
    np.testing.assert_array_equal(s.valid.numpy(), sp > 0)
    assert np.all(cc_max[sp <= 0] == 0) and np.all(np.isnan(cc_max[np.isnan(sp)]))
    pos = sp > 0
    assert np.all(cc_max[pos] > 0)
    assert_close(cc_norm[pos], cc_abs[pos] / cc_max[pos], what="cc_norm = cc_abs / cc_max")


@_fuzz
@given(
    scenes(),
    st.floats(1e-2, 1e2),
    st.sampled_from([1.0, -1.0]),
    st.floats(-1e3, 1e3),
)
def test_fuzz_affine_invariance_and_sign_flip(scene, a, sign, b):
    pred, resp = scene
    base = scores(pred, resp)
    moved = scores(sign * a * pred + b, resp)
    for f in ("cc_norm", "cc_abs"):
        assert_close(getattr(moved, f).numpy(), sign * getattr(base, f).numpy(), what=f)
    for f in ("signal_power", "noise_power", "cc_max"):  # depend on the responses only
        assert_close(getattr(moved, f).numpy(), getattr(base, f).numpy(), rel=0, what=f)


@_fuzz
@given(scenes())
def test_fuzz_psth_as_prediction(scene):
    _, resp = scene
    g = M.psth(T_(resp)).numpy()
    pred = np.where(np.isnan(g), np.inf, g)  # garbage where the PSTH is undefined
    s = scores(pred, resp)
    cc_abs, cc_norm, cc_max, sp = (getattr(s, f).numpy() for f in ("cc_abs", "cc_norm", "cc_max", "signal_power"))
    assert_close(cc_abs, np.ones_like(cc_abs), rel=1e-12, what="cc_abs(psth, psth)")
    pos = sp > 0
    assert_close(cc_norm[pos], 1.0 / cc_max[pos], what="cc_norm(psth) = 1 / cc_max")
    assert np.all(np.isnan(cc_norm[~pos]))


@_fuzz
@given(scenes(), st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -7.0]))
def test_fuzz_prediction_ignored_where_psth_is_nan(scene, garbage):
    pred, resp = scene
    base = scores(pred, resp)
    invalid = np.isnan(M.psth(T_(resp)).numpy())
    other = scores(np.where(invalid, garbage, pred), resp)
    for f in FIELDS:  # the valid entries are the same, so the arithmetic is identical
        assert_close(getattr(other, f).numpy(), getattr(base, f).numpy(), rel=0, what=f)


@_fuzz
@given(scenes(min_repeats=3), st.data())
def test_fuzz_whole_missing_repeats_equal_removed_repeats(scene, data):
    pred, resp = scene
    R = resp.shape[2]
    resp = resp.copy()
    keeps = []
    for n in range(resp.shape[1]):
        drop = data.draw(st.sets(st.integers(0, R - 1), max_size=R - 2), label=f"dropped repeats of neuron {n}")
        resp[:, n, sorted(drop), :] = np.nan
        keeps.append([r for r in range(R) if r not in drop])
    s = scores(pred, resp)
    sp = s.signal_power.numpy()
    assert np.all(np.isfinite(s.cc_abs.numpy()))
    np.testing.assert_array_equal(np.isfinite(sp), _sp_defined(resp))
    np.testing.assert_array_equal(np.isnan(s.cc_norm.numpy()), ~(sp > 0))
    for n, keep in enumerate(keeps):
        alone = scores(pred[:, [n]], resp[:, [n]][:, :, keep])
        for f in FIELDS:
            assert_close(getattr(s, f).numpy()[n : n + 1], getattr(alone, f).numpy(), rel=1e-12, what=f"{f}[{n}]")


@_fuzz
@given(scenes(), st.floats(-1e3, 1e3))
def test_fuzz_constant_prediction_is_nan_and_invalid(scene, c):
    pred, resp = scene
    invalid = np.isnan(M.psth(T_(resp)).numpy())
    const = np.where(invalid, pred, c)  # constant wherever it counts, garbage elsewhere
    s = scores(const, resp)
    assert torch.isnan(s.cc_norm).all() and torch.isnan(s.cc_abs).all()
    assert not s.valid.any()
    # with a single repeat cc_norm is undefined: NaN and invalid, never ~0
    one = scores(const, resp[:, :, :1])
    assert torch.isnan(one.cc_norm).all() and not one.valid.any()


@_fuzz
@given(scenes(), st.data())
def test_fuzz_nonpositive_signal_power_and_all_nan_neurons(scene, data):
    """Neurons whose repeats cancel (SP < 0) and neurons without any data are NaN and invalid,
    and leave the other neurons' scores as they were."""
    pred, resp = scene
    B, N, _, T = resp.shape
    kinds = data.draw(st.lists(st.sampled_from(["ok", "anti", "flat", "empty"]), min_size=N, max_size=N), label="kinds")
    level = data.draw(st.floats(-1e3, 1e3), label="level")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    resp, pred = resp.copy(), pred.copy()
    for n, kind in enumerate(kinds):
        if kind == "empty":
            resp[:, n] = np.nan
        elif kind in ("anti", "flat"):
            # two repeats, the second the mirror image of the first plus (anti) a little noise
            # orthogonal to it: on every stimulus SP = cov(r0, r1) = -var(r0) < 0, while the PSTH
            # still varies; "flat": no noise, the PSTH is `level` up to rounding
            resp[:, n] = np.nan
            pred[:, n] = rng.normal(size=(B, 1, T))  # finite wherever this neuron's PSTH is valid
            for b in range(B):
                L = int(rng.integers(10, T + 1))
                x = rng.normal(size=L)
                x -= x.mean()
                e = rng.normal(size=L)
                e -= e.mean()
                e -= (e @ x) / (x @ x) * x
                resp[b, n, 0, :L] = level + x
                resp[b, n, 1, :L] = level - x + (0.1 * e if kind == "anti" else 0.0)
    s = scores(pred, resp)
    for n, kind in enumerate(kinds):
        if kind == "ok":
            alone = scores(pred[:, [n]], resp[:, [n]])
            for f in FIELDS:
                assert_close(getattr(s, f).numpy()[n : n + 1], getattr(alone, f).numpy(), rel=1e-12, what=f)
            continue
        assert np.isnan(s.cc_norm[n].item()) and not s.valid[n].item(), (kind, s)
        if kind == "anti":
            assert s.signal_power[n].item() < 0
            assert s.cc_max[n].item() == 0.0
            assert np.isfinite(s.cc_abs[n].item())
        elif kind == "flat":  # a flat PSTH: no correlation and no ceiling, whatever the prediction
            assert s.signal_power[n].item() < 0
            assert np.isnan(s.cc_abs[n].item()) and np.isnan(s.cc_max[n].item())
        else:
            for f in FIELDS:
                assert np.isnan(getattr(s, f)[n].item()), (f, s)
