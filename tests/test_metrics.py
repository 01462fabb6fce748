"""Tests for strf_runner.metrics against independent loop references and known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from strf_runner import metrics as M
from strf_runner.errors import ShapeError
from tests.helpers.reference import ref_cc_max, ref_cc_norm, ref_correlation, ref_mse, ref_psth, ref_signal_power

GOLDEN = Path("/work/shared/data/ccnorm_ref/ref_stats_ccnorm.hdf5")
TOL = 1e-10


# --------------------------------------------------------------------------------------------
# Data builders
# --------------------------------------------------------------------------------------------


def make_stimuli(seed, N=4, lengths=(13, 9, 17), repeats=(5, 3, 6), noise=1.0):
    """Per-stimulus unpadded data: list of (pred (N, T_b), resp (N, R_b, T_b))."""
    rng = np.random.default_rng(seed)
    out = []
    for T, R in zip(lengths, repeats):
        sig = rng.normal(size=(N, T))
        resp = sig[:, None, :] + noise * rng.normal(size=(N, R, T))
        pred = 0.7 * sig + 0.5 * rng.normal(size=(N, T))
        out.append((pred, resp))
    return out


def collate(stims, extra_R=0, extra_T=0, extra_B=0):
    """NaN-pad a list of per-stimulus arrays into (B, N, 1, T) and (B, N, R, T)."""
    N = stims[0][0].shape[0]
    Rm = max(r.shape[1] for _, r in stims) + extra_R
    Tm = max(r.shape[2] for _, r in stims) + extra_T
    B = len(stims) + extra_B
    pred = np.full((B, N, 1, Tm), np.nan)
    resp = np.full((B, N, Rm, Tm), np.nan)
    for b, (p, r) in enumerate(stims):
        pred[b, :, 0, : p.shape[1]] = p
        resp[b, :, : r.shape[1], : r.shape[2]] = r
    return pred, resp


def padded_dataset(seed=0):
    """A padded dataset with a few extra neuron-specific holes."""
    pred, resp = collate(make_stimuli(seed))
    resp[1, 2] = np.nan  # neuron 2 never heard stimulus 1
    resp[0, 1, 3, :] = np.nan  # one missing trial of neuron 1
    resp[2, 0, 2, 4] = np.nan  # a single missing bin (drops repeat 2 from SP for that stimulus)
    resp[2, 3, :, 5] = np.nan  # a bin missing in all repeats of neuron 3
    return pred, resp


def T_(x):
    return torch.as_tensor(x, dtype=torch.float64)


def assert_close(a, b, tol=TOL):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    m = ~np.isnan(a)
    np.testing.assert_allclose(a[m], b[m], rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# 1. Against the loop reference
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    pred, resp = padded_dataset(0)
    # prediction garbage at invalid (padded) positions must be ignored
    inval = np.isnan(ref_psth(resp))
    pred[inval] = np.nan
    return pred, resp


def test_psth_matches_loop(data):
    _, resp = data
    got = M.psth(T_(resp))
    assert got.shape == (3, 4, 1, 17)
    assert got.dtype == torch.float64
    assert_close(got.numpy(), ref_psth(resp))
    assert M.psth(T_(resp).float()).dtype == torch.float32


def test_signal_power_matches_loop(data):
    _, resp = data
    sp, npow = M.signal_power(T_(resp))
    rsp, rnp = ref_signal_power(resp)
    assert sp.shape == (4,) and sp.dtype == torch.float64
    assert_close(sp.numpy(), rsp)
    assert_close(npow.numpy(), rnp)


def test_correlation_ccnorm_ccmax_match_loop(data):
    pred, resp = data
    p, y = T_(pred), T_(resp)
    assert_close(M.correlation(p, y).numpy(), ref_correlation(pred, resp))
    assert_close(M.cc_norm(p, y).numpy(), ref_cc_norm(pred, resp))
    assert_close(M.cc_max(y).numpy(), ref_cc_max(resp))
    assert not torch.isnan(M.cc_norm(p, y)).any()


def test_metrics_float32_input_float64_output(data):
    pred, resp = data
    out = M.cc_norm(T_(pred).float(), T_(resp).float())
    assert out.dtype == torch.float64
    assert_close(out.numpy(), ref_cc_norm(pred.astype(np.float32).astype(np.float64),
                                           resp.astype(np.float32).astype(np.float64)))


def test_ccnorm_is_correlation_over_ccmax(data):
    pred, resp = data
    p, y = T_(pred), T_(resp)
    ratio = M.correlation(p, y) / M.cc_max(y)
    assert_close(M.cc_norm(p, y).numpy(), ratio.numpy(), tol=1e-12)


def test_score_neurons_consistent(data):
    pred, resp = data
    p, y = T_(pred), T_(resp)
    s = M.score_neurons(p, y)
    assert_close(s.cc_norm.numpy(), M.cc_norm(p, y).numpy(), tol=0)
    assert_close(s.cc_abs.numpy(), M.correlation(p, y).numpy(), tol=0)
    sp, npow = M.signal_power(y)
    assert_close(s.signal_power.numpy(), sp.numpy(), tol=0)
    assert_close(s.noise_power.numpy(), npow.numpy(), tol=0)
    assert_close(s.cc_max.numpy(), M.cc_max(y).numpy(), tol=0)
    assert s.valid.dtype == torch.bool and s.valid.all()
    for f in ("cc_norm", "cc_abs", "signal_power", "noise_power", "cc_max"):
        t = getattr(s, f)
        assert t.device.type == "cpu" and t.dtype == torch.float64 and t.shape == (4,)


def test_metrics_no_grad_and_grad_input():
    pred, resp = padded_dataset(1)
    p = T_(np.nan_to_num(pred)).requires_grad_(True)
    out = M.cc_norm(p, T_(resp))
    assert not out.requires_grad


# --------------------------------------------------------------------------------------------
# 2. Known answers
# --------------------------------------------------------------------------------------------


def test_noiseless_signal_prediction_gives_ccnorm_near_one():
    rng = np.random.default_rng(5)
    B, N, R, T = 2, 3, 40, 1000
    sig = rng.normal(size=(B, N, 1, T))
    resp = sig + 2.0 * rng.normal(size=(B, N, R, T))
    out = M.cc_norm(T_(sig), T_(resp)).numpy()
    assert np.all(np.abs(out - 1) < 0.02), out
    # the raw correlation is clearly lower (noise in the PSTH)
    assert np.all(M.correlation(T_(sig), T_(resp)).numpy() < 0.97)


def test_affine_invariance_and_sign_flip(data):
    pred, resp = data
    p, y = T_(pred), T_(resp)
    base = M.cc_norm(p, y)
    assert_close(M.cc_norm(3.5 * p + 7.0, y).numpy(), base.numpy(), tol=1e-9)
    assert_close(M.cc_norm(-0.2 * p - 1.0, y).numpy(), (-base).numpy(), tol=1e-9)


def test_constant_prediction_is_nan(data):
    _, resp = data
    p = torch.full((3, 4, 1, 17), 2.5, dtype=torch.float64)
    assert torch.isnan(M.cc_norm(p, T_(resp))).all()
    assert torch.isnan(M.correlation(p, T_(resp))).all()


def test_pure_noise_gives_nan_ccnorm_and_zero_ccmax():
    # Responses with negative signal power: repeats anti-correlated around a zero signal.
    rng = np.random.default_rng(3)
    T = 50
    x = rng.normal(size=T)
    resp = np.stack([x, -x, 0.1 * rng.normal(size=T)])[None, None]  # (1, 1, 3, T)
    sp, _ = M.signal_power(T_(resp))
    assert sp.item() <= 0
    pred = rng.normal(size=(1, 1, 1, T))
    assert torch.isnan(M.cc_norm(T_(pred), T_(resp))).all()
    assert M.cc_max(T_(resp)).item() == 0.0
    s = M.score_neurons(T_(pred), T_(resp))
    assert not s.valid.any() and s.cc_max.item() == 0.0
    # many independent-noise neurons: wherever SP <= 0 the ceiling is 0 and cc_norm NaN
    resp = rng.normal(size=(1, 40, 4, 30))
    sp, _ = M.signal_power(T_(resp))
    neg = (sp <= 0).numpy()
    assert neg.sum() > 5
    cm = M.cc_max(T_(resp)).numpy()
    cn = M.cc_norm(T_(rng.normal(size=(1, 40, 1, 30))), T_(resp)).numpy()
    assert np.all(cm[neg] == 0) and np.all(np.isnan(cn[neg]))
    assert np.all(np.isfinite(cn[~neg]))


def test_single_repeat_ccnorm_is_undefined_not_the_correlation():
    """Without repeats there is no signal power, so no cc_norm: NaN and invalid, while the plain
    correlation stays available as cc_abs (the reference returned it as cc_norm: a mislabelled score)."""
    rng = np.random.default_rng(4)
    pred = rng.normal(size=(2, 3, 1, 20))
    resp = pred + rng.normal(size=(2, 3, 1, 20))
    resp[1, :, :, 15:] = np.nan
    b = M.correlation(T_(pred), T_(resp))
    assert torch.isfinite(b).all()
    assert torch.isnan(M.cc_norm(T_(pred), T_(resp))).all()
    assert torch.isnan(M.signal_power(T_(resp))[0]).all()
    assert torch.isnan(M.cc_max(T_(resp))).all()
    s = M.score_neurons(T_(pred), T_(resp))
    assert torch.isnan(s.cc_norm).all() and not s.valid.any()
    assert_close(s.cc_abs.numpy(), b.numpy(), tol=0)


def test_signal_power_equivalent_form():
    rng = np.random.default_rng(6)
    R, T = 7, 40
    y = rng.normal(size=(R, T)) + rng.normal(size=T)
    sp_alt = (np.var(y.sum(0), ddof=1) - np.var(y, axis=1, ddof=1).sum()) / (R * (R - 1))
    sp, npow = M.signal_power(T_(y[None, None]))
    assert abs(sp.item() - sp_alt) < 1e-12
    tp = np.var(y, axis=1, ddof=1).mean()
    assert abs(npow.item() - (tp - sp_alt)) < 1e-12


def test_no_qualifying_stimulus_gives_nan():
    resp = np.full((2, 1, 3, 5), np.nan)
    resp[0, 0, 0, :] = np.arange(5.0)  # only one repeat
    resp[1, 0, :, 0] = 1.0  # only one bin
    assert torch.isnan(M.signal_power(T_(resp))[0]).all()
    assert torch.isnan(M.cc_max(T_(resp))).all()
    assert torch.isnan(M.cc_norm(T_(np.random.default_rng(0).normal(size=(2, 1, 1, 5))), T_(resp))).all()


def test_fewer_than_two_points_nan():
    resp = np.full((1, 2, 2, 4), np.nan)
    resp[0, 0, :, 1] = [1.0, 2.0]
    resp[0, 1] = [[1, 2, 3, 4], [2, 3, 1, 5]]
    pred = np.arange(8.0).reshape(1, 2, 1, 4)
    c = M.correlation(T_(pred), T_(resp)).numpy()
    assert math.isnan(c[0]) and math.isfinite(c[1])


# --------------------------------------------------------------------------------------------
# 3. Padding invariance
# --------------------------------------------------------------------------------------------


def _concat_reference(stims):
    """Metrics from the unpadded per-stimulus arrays (no NaN anywhere)."""
    N = stims[0][0].shape[0]
    # signal power stimulus by stimulus on unpadded data, T-weighted
    sps, nps, ws = [], [], []
    for p, r in stims:
        s, n_ = M.signal_power(T_(r[None]))
        sps.append(s.numpy()); nps.append(n_.numpy()); ws.append(r.shape[2])
    ws = np.array(ws, dtype=float)[:, None]
    sp = (np.array(sps) * ws).sum(0) / ws.sum()
    npow = (np.array(nps) * ws).sum(0) / ws.sum()
    # pooled quantities on the concatenated prediction and PSTH (R = 1, no NaN)
    pcat = np.concatenate([p for p, _ in stims], axis=1)
    gcat = np.concatenate([r.mean(axis=1) for _, r in stims], axis=1)
    P = T_(pcat[None, :, None, :])
    G = T_(gcat[None, :, None, :])
    corr = M.correlation(P, G).numpy()
    var_p = np.var(pcat, axis=1, ddof=1)
    var_g = np.var(gcat, axis=1, ddof=1)
    cov = np.array([np.cov(pcat[n], gcat[n])[0, 1] for n in range(N)])
    ccn = cov / np.sqrt(var_p * sp)
    ccm = np.sqrt(sp / var_g)
    mse = M.mse_loss(P, G, reduction="none").numpy()
    return dict(sp=sp, np=npow, corr=corr, ccn=ccn, ccm=ccm, mse=mse)


@pytest.mark.parametrize("extra", [(0, 0, 0), (3, 5, 0), (0, 0, 2), (2, 1, 1)])
def test_padding_invariance(extra):
    stims = make_stimuli(11)
    ref = _concat_reference(stims)
    pred, resp = collate(stims, *extra)
    pred = np.where(np.isnan(pred), 123.0, pred)  # garbage prediction at padded positions
    p, y = T_(pred), T_(resp)
    sp, npow = M.signal_power(y)
    tol = 1e-12
    assert_close(sp.numpy(), ref["sp"], tol)
    assert_close(npow.numpy(), ref["np"], tol)
    assert_close(M.correlation(p, y).numpy(), ref["corr"], tol)
    assert_close(M.cc_norm(p, y).numpy(), ref["ccn"], tol)
    assert_close(M.cc_max(y).numpy(), ref["ccm"], tol)
    assert_close(M.mse_loss(p, y, reduction="none").detach().numpy(), ref["mse"], tol)


def test_padding_is_bitwise_neutral_for_more_padding():
    stims = make_stimuli(12)
    p1, y1 = collate(stims)
    p2, y2 = collate(stims, extra_R=4, extra_T=6)
    s1 = M.score_neurons(T_(p1), T_(y1))
    s2 = M.score_neurons(T_(p2), T_(y2))
    for f in ("cc_norm", "cc_abs", "signal_power", "noise_power", "cc_max"):
        assert_close(getattr(s1, f).numpy(), getattr(s2, f).numpy(), tol=1e-13)


# --------------------------------------------------------------------------------------------
# 4. Golden file (Schoppe's MATLAB reference)
# --------------------------------------------------------------------------------------------


def test_golden_cc_max():
    if not GOLDEN.exists():
        pytest.skip(f"golden file {GOLDEN} is absent")
    h5py = pytest.importorskip("h5py", reason="h5py is needed to read the golden file")
    with h5py.File(GOLDEN, "r") as f:
        y = np.asarray(f["y_data_all"][()], dtype=np.float64)  # (neuron, trial, time)
        ref = np.asarray(f["cc_max_all"][()], dtype=np.float64).reshape(-1)
    assert y.shape == (10, 50, 100) and ref.shape == (10,)
    T = y.shape[2]
    ours = M.cc_max(T_(y[None])).numpy()  # B = 1
    # MATLAB uses 1/T for Var(y): CCmax_matlab = ours * sqrt(T / (T - 1))
    np.testing.assert_allclose(ours * math.sqrt(T / (T - 1)), ref, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------
# 5. Losses
# --------------------------------------------------------------------------------------------


def test_mse_matches_loop_and_reductions(data):
    pred, resp = data
    p, y = T_(pred), T_(resp)
    ref = ref_mse(pred, resp)
    got = M.mse_loss(p, y, reduction="none")
    assert got.shape == (4,)
    assert_close(got.numpy(), ref)
    assert abs(M.mse_loss(p, y).item() - ref.mean()) < 1e-10
    assert abs(M.mse_loss(p, y, reduction="sum").item() - ref.sum()) < 1e-10
    with pytest.raises(ValueError):
        M.mse_loss(p, y, reduction="avg")


def test_loss_reduction_ignores_nan_neurons():
    rng = np.random.default_rng(8)
    pred = rng.normal(size=(2, 3, 1, 6))
    resp = rng.normal(size=(2, 3, 2, 6))
    resp[:, 1] = np.nan  # neuron 1 has no data at all
    none = M.mse_loss(T_(pred), T_(resp), reduction="none")
    assert math.isnan(none[1].item())
    n = none.numpy()
    assert abs(M.mse_loss(T_(pred), T_(resp)).item() - (n[0] + n[2]) / 2) < 1e-12
    assert abs(M.mse_loss(T_(pred), T_(resp), reduction="sum").item() - (n[0] + n[2])) < 1e-12


def test_mse_neurons_weighted_equally():
    pred = np.zeros((1, 2, 1, 4))
    resp = np.full((1, 2, 1, 4), np.nan)
    resp[0, 0, 0, :] = 1.0  # 4 valid bins, each error 1
    resp[0, 1, 0, 0] = 3.0  # 1 valid bin, error 9
    assert abs(M.mse_loss(T_(pred), T_(resp)).item() - 5.0) < 1e-12


@pytest.mark.parametrize("name", ["mse", "poisson"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_gradients_finite_with_nan(name, reduction):
    pred, resp = padded_dataset(2)
    pred = np.abs(pred)
    resp = np.abs(resp)
    resp[:, 3] = np.nan  # a neuron without any data
    pred[np.isnan(ref_psth(resp))] = np.nan  # NaN predictions at every invalid position
    p = T_(pred).float().requires_grad_(True)  # NaN predictions at invalid positions too
    loss = M.LOSSES[name](p, T_(resp).float(), reduction=reduction)
    assert loss.dtype == torch.float32
    total = torch.nansum(loss) if reduction == "none" else loss
    assert torch.isfinite(total)
    total.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    invalid = torch.isnan(M.psth(T_(resp).float()))
    assert (p.grad[invalid] == 0).all()
    assert (p.grad[~invalid] != 0).any()


def test_poisson_hand_computed():
    eps = 1e-8
    pred = torch.tensor([[[[2.0, 0.5, -1.0, 1.0]]]], dtype=torch.float64)  # (1, 1, 1, 4)
    resp = torch.tensor([[[[1.0, 3.0, 2.0, math.nan]], [[0.0, 1.0, math.nan, math.nan]]]],
                        dtype=torch.float64).permute(0, 2, 1, 3)  # (1, 1, 2, 4) repeats
    # PSTH: [0.5, 2.0, 2.0, NaN]
    g = [0.5, 2.0, 2.0]
    p = [2.0, 0.5, -1.0]
    ell = [pi - gi * math.log(max(pi, eps) + eps) for pi, gi in zip(p, g)]
    want = sum(ell) / 3
    assert abs(M.poisson_loss(pred, resp).item() - want) < 1e-12
    ell_log = [math.exp(pi) - gi * pi for pi, gi in zip(p, g)]
    assert abs(M.poisson_loss(pred, resp, log_input=True).item() - sum(ell_log) / 3) < 1e-12
    assert M.poisson_loss(pred, resp, reduction="none").shape == (1,)


def test_losses_registry():
    assert set(M.LOSSES) == {"mse", "poisson"}
    assert M.LOSSES["mse"] is M.mse_loss and M.LOSSES["poisson"] is M.poisson_loss


@pytest.mark.parametrize(
    "pshape, rshape",
    [
        ((2, 3, 1, 10), (2, 3, 4, 11)),  # T mismatch
        ((2, 3, 1, 10), (2, 4, 4, 10)),  # N mismatch
        ((1, 3, 1, 10), (2, 3, 4, 10)),  # B mismatch
        ((2, 3, 2, 10), (2, 3, 4, 10)),  # pred R != 1
        ((2, 3, 10), (2, 3, 4, 10)),  # pred rank 3
        ((2, 3, 1, 10), (2, 3, 10)),  # resp rank 3
    ],
)
def test_shape_errors(pshape, rshape):
    p, y = torch.zeros(pshape), torch.zeros(rshape)
    for fn in (M.mse_loss, M.poisson_loss, M.correlation, M.cc_norm, M.score_neurons):
        with pytest.raises(ShapeError) as exc:
            fn(p, y)
        msg = str(exc.value)
        assert "\n" not in msg and str(tuple(pshape)) in msg and str(tuple(rshape)) in msg


def test_resp_only_shape_errors():
    for fn in (M.psth, M.signal_power, M.cc_max):
        with pytest.raises(ShapeError, match=r"resp.*\(3, 4\)"):
            fn(torch.zeros(3, 4))


# --------------------------------------------------------------------------------------------
# 6. Property tests
# --------------------------------------------------------------------------------------------

_hyp = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def datasets(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    B = draw(st.integers(1, 3))
    N = draw(st.integers(1, 3))
    R = draw(st.integers(1, 4))
    T = draw(st.integers(2, 12))
    nan_frac = draw(st.sampled_from([0.0, 0.1, 0.4]))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    sig = rng.normal(size=(B, N, 1, T))
    resp = scale * (sig + rng.normal(size=(B, N, R, T)))
    resp[rng.random(resp.shape) < nan_frac] = np.nan
    pred = scale * (sig + rng.normal(size=(B, N, 1, T)))
    return pred, resp


@_hyp
@given(datasets(), st.floats(0.01, 100), st.floats(-100, 100))
def test_prop_affine_invariance(d, a, c):
    pred, resp = d
    base = M.cc_norm(T_(pred), T_(resp)).numpy()
    pos = M.cc_norm(T_(a * pred + c), T_(resp)).numpy()
    neg = M.cc_norm(T_(-a * pred + c), T_(resp)).numpy()
    ok = np.isfinite(base) & np.isfinite(pos) & np.isfinite(neg)
    np.testing.assert_allclose(pos[ok], base[ok], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(neg[ok], -base[ok], rtol=1e-6, atol=1e-8)


@_hyp
@given(datasets())
def test_prop_correlation_bounded_and_no_inf(d):
    pred, resp = d
    p, y = T_(pred), T_(resp)
    c = M.correlation(p, y).numpy()
    assert np.all(np.abs(c[~np.isnan(c)]) <= 1 + 1e-12)
    s = M.score_neurons(p, y)
    for f in ("cc_norm", "cc_abs", "signal_power", "noise_power", "cc_max"):
        assert not torch.isinf(getattr(s, f)).any()
    for loss in (M.mse_loss(p, y, reduction="none"), M.poisson_loss(p.abs(), y.abs(), reduction="none")):
        assert not torch.isinf(loss).any()
    assert_close(s.cc_norm.numpy(), M.cc_norm(p, y).numpy(), tol=0)


def test_precomputed_summary_gives_the_same_scores(data):
    p, y = T_(data[0]), T_(data[1])
    direct = M.score_neurons(p, y)
    target = M.summarise_responses(y)
    cached = M.score_summary(p, target)
    for field in ("cc_norm", "cc_abs", "signal_power", "noise_power", "cc_max"):
        torch.testing.assert_close(getattr(cached, field), getattr(direct, field), equal_nan=True, rtol=0, atol=0)


def test_losses_on_the_psth_equal_losses_on_the_repeats(data):
    p, y = torch.nan_to_num(T_(data[0])), T_(data[1])
    g = M.psth(y)
    for name, fn in M.LOSSES.items():
        torch.testing.assert_close(fn(p.abs(), g), fn(p.abs(), y), rtol=1e-12, atol=1e-12, msg=name)
