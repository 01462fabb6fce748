"""Evaluation metrics and training losses for neural encoding models.

Shapes and conventions
----------------------
- ``pred``: the model prediction, shape ``(B, N, 1, T)`` (B stimuli, N neurons, T time bins).
- ``resp``: the recorded responses, shape ``(B, N, R, T)`` (R repeats / trials), floating point.
  Padded or missing entries are NaN.

Valid-data rule
---------------
The valid mask is exactly ``~torch.isnan(resp)``; there is no separate mask argument. To exclude
data (a bad trial, an artefact, a stimulus a neuron never heard) set those entries of ``resp`` to
NaN. A position ``(b, n, t)`` is valid for neuron ``n`` when its PSTH there is not NaN, i.e. at
least one repeat is valid. Prediction values at invalid positions are ignored; they may be anything,
NaN included.

Signal power rule (per stimulus b and neuron n)
-----------------------------------------------
- Valid bins: the bins where the PSTH is valid (at least one repeat is not NaN); T_v is their number.
- Used repeats: the repeats that are not NaN at *every* valid bin; R_v is their number. A repeat
  that is NaN throughout (padding along R) is therefore dropped, and bins that are NaN in every
  repeat (padding along T) are dropped, so NaN padding along R or T gives exactly the result of the
  unpadded data. A repeat with scattered missing bins is dropped from the signal-power estimate of
  that stimulus (it still contributes to the PSTH used by the correlations).
- The stimulus qualifies when R_v >= 2 and T_v >= 2. On the R_v x T_v block, with unbiased (÷(T_v−1))
  variances over time: V_b = variance of the mean over used repeats, TP_b = mean over used repeats
  of each repeat's variance, SP_b = (R_v·V_b − TP_b)/(R_v − 1), NP_b = TP_b − SP_b.
- Across stimuli: SP_n = Σ_b T_v,b·SP_b / Σ_b T_v,b over qualifying stimuli (likewise NP_n);
  NaN when no stimulus qualifies.

Metrics (``psth`` aside) run without gradient in float64 and return float64 tensors of shape (N,)
on the input's device. Losses keep the gradient and the prediction's dtype, and never let NaN
targets into the arithmetic of the graph, so gradients stay finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch

from strf_runner.errors import ShapeError

__all__ = [
    "psth",
    "signal_power",
    "correlation",
    "cc_norm",
    "cc_max",
    "mse_loss",
    "poisson_loss",
    "LOSSES",
    "NeuronScores",
    "ResponseSummary",
    "summarise_responses",
    "score_summary",
    "score_neurons",
]

_TINY = 1e-12
_POISSON_EPS = 1e-8


# --------------------------------------------------------------------------------------------
# Shape checks
# --------------------------------------------------------------------------------------------


def _check_resp(resp: torch.Tensor, name: str = "resp") -> None:
    if not isinstance(resp, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape (B, N, R, T), got {type(resp).__name__}")
    if resp.dim() != 4:
        raise ShapeError(f"{name} must have shape (B, N, R, T), got shape {tuple(resp.shape)}")


def _check_pair(pred: torch.Tensor, resp: torch.Tensor) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(resp, torch.Tensor):
        raise ShapeError(
            f"pred and resp must be torch.Tensors, got {type(pred).__name__} and {type(resp).__name__}"
        )
    ps, rs = tuple(pred.shape), tuple(resp.shape)
    ok = (
        pred.dim() == 4
        and resp.dim() == 4
        and ps[2] == 1
        and ps[0] == rs[0]
        and ps[1] == rs[1]
        and ps[3] == rs[3]
    )
    if not ok:
        raise ShapeError(
            f"pred must have shape (B, N, 1, T) and resp (B, N, R, T) with matching B, N, T; "
            f"got pred shape {ps} and resp shape {rs}"
        )


# --------------------------------------------------------------------------------------------
# Internals (float64, no grad)
# --------------------------------------------------------------------------------------------


def _psth_and_mask(resp: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """PSTH (B, N, 1, T) in resp's dtype and its valid mask (B, N, 1, T)."""
    valid = ~torch.isnan(resp)
    count = valid.sum(dim=2, keepdim=True)
    total = torch.where(valid, resp, torch.zeros((), dtype=resp.dtype, device=resp.device)).sum(
        dim=2, keepdim=True
    )
    ok = count > 0
    g = torch.where(
        ok,
        total / count.clamp(min=1).to(resp.dtype),
        torch.full((), math.nan, dtype=resp.dtype, device=resp.device),
    )
    return g, ok


def _signal_noise_power(resp: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """SP and NP, (N,) float64, for resp (B, N, R, T). See the module docstring.

    Computed one stimulus at a time in float64, so the temporaries stay the size of one stimulus
    (a whole NS1 training set in float64 would need ~1 GB of them), then combined across stimuli.
    """
    parts = [_stimulus_powers(resp[b : b + 1].to(torch.float64)) for b in range(resp.shape[0])]
    sp_b, np_b, w = (torch.cat(x) for x in zip(*parts))  # (B, N) each; w = 0 where not qualifying
    zero = torch.zeros((), dtype=torch.float64, device=resp.device)
    w_sum = w.sum(dim=0)  # (N,)
    has = w_sum > 0
    nan = torch.full((), math.nan, dtype=torch.float64, device=resp.device)
    w_safe = w_sum.clamp(min=1.0)
    sp = torch.where(has, (w * torch.where(w > 0, sp_b, zero)).sum(dim=0) / w_safe, nan)
    npow = torch.where(has, (w * torch.where(w > 0, np_b, zero)).sum(dim=0) / w_safe, nan)
    return sp, npow


def _stimulus_powers(resp: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per stimulus SP_b, NP_b and the weight T_v (0 where the stimulus does not qualify), each
    (B, N), for float64 resp (B, N, R, T)."""
    valid = ~torch.isnan(resp)  # (B, N, R, T)
    bin_ok = valid.any(dim=2)  # (B, N, T): PSTH valid
    t_v = bin_ok.sum(dim=-1)  # (B, N)
    # a repeat is used when it is valid at every PSTH-valid bin (and there is at least one)
    rep_ok = (valid | ~bin_ok.unsqueeze(2)).all(dim=-1) & (t_v > 0).unsqueeze(-1)  # (B, N, R)
    r_v = rep_ok.sum(dim=-1)  # (B, N)
    block = rep_ok.unsqueeze(-1) & bin_ok.unsqueeze(2)  # (B, N, R, T); resp is finite-or-not-NaN here
    zero = torch.zeros((), dtype=resp.dtype, device=resp.device)
    y = torch.where(block, resp, zero)

    t_f = t_v.to(resp.dtype).clamp(min=1.0)
    r_f = r_v.to(resp.dtype).clamp(min=1.0)
    dof = (t_v.to(resp.dtype) - 1.0).clamp(min=1.0)

    # V_b: variance over time of the used-repeat PSTH
    m = y.sum(dim=2) / r_f.unsqueeze(-1)  # (B, N, T), valid at bin_ok
    m_mean = (m * bin_ok).sum(dim=-1) / t_f  # (B, N)
    mc = torch.where(bin_ok, m - m_mean.unsqueeze(-1), zero)
    v_b = (mc * mc).sum(dim=-1) / dof

    # TP_b: mean over used repeats of each repeat's variance over time
    y_mean = y.sum(dim=-1) / t_f.unsqueeze(-1)  # (B, N, R)
    yc = torch.where(block, y - y_mean.unsqueeze(-1), zero)
    var_r = (yc * yc).sum(dim=-1) / dof.unsqueeze(-1)  # (B, N, R)
    tp_b = torch.where(rep_ok, var_r, zero).sum(dim=-1) / r_f

    qual = (r_v >= 2) & (t_v >= 2)  # (B, N)
    sp_b = (r_f * v_b - tp_b) / (r_f - 1.0).clamp(min=1.0)
    np_b = tp_b - sp_b
    return sp_b, np_b, torch.where(qual, t_v.to(resp.dtype), zero)


@dataclass
class _Moments:
    n: torch.Tensor  # (N,) number of valid (b, t) points
    spp: torch.Tensor  # (N,) Σ p_c²
    sgg: torch.Tensor  # (N,) Σ g_c²
    spg: torch.Tensor  # (N,) Σ p_c g_c


def _moments(pred: torch.Tensor, g: torch.Tensor, ok: torch.Tensor) -> _Moments:
    """Pooled centred sums over the valid (b, t) positions; float64 inputs (B, N, 1, T)."""
    zero = torch.zeros((), dtype=g.dtype, device=g.device)
    dims = (0, 2, 3)
    n = ok.sum(dim=dims)
    n_f = n.to(g.dtype).clamp(min=1.0)
    p0 = torch.where(ok, pred, zero)
    g0 = torch.where(ok, g, zero)
    p_mean = p0.sum(dim=dims) / n_f
    g_mean = g0.sum(dim=dims) / n_f
    pc = torch.where(ok, p0 - p_mean.view(1, -1, 1, 1), zero)
    gc = torch.where(ok, g0 - g_mean.view(1, -1, 1, 1), zero)
    # a constant series centres to rounding residue (~1e-16 |mean|), which the absolute thresholds
    # below can miss (a constant prediction scored cc_abs 2.6e-17, valid): treat it as exactly flat
    pc = torch.where(_flat(pc, p0, n_f, dims).view(1, -1, 1, 1), zero, pc)
    gc = torch.where(_flat(gc, g0, n_f, dims).view(1, -1, 1, 1), zero, gc)
    return _Moments(
        n=n,
        spp=(pc * pc).sum(dim=dims),
        sgg=(gc * gc).sum(dim=dims),
        spg=(pc * gc).sum(dim=dims),
    )


def _flat(xc: torch.Tensor, x0: torch.Tensor, n_f: torch.Tensor, dims) -> torch.Tensor:
    """(N,) bool: the centred series xc is rounding residue, rms(xc) <= 1e-12 · max|x0|."""
    amp = x0.abs().amax(dim=dims)
    return (xc * xc).sum(dim=dims) <= n_f * (1e-12 * amp) ** 2


def _corr_from(m: _Moments) -> torch.Tensor:
    denom = torch.sqrt(m.spp * m.sgg)
    good = (m.n >= 2) & (denom >= _TINY)
    nan = torch.full((), math.nan, dtype=m.spg.dtype, device=m.spg.device)
    return torch.where(good, m.spg / torch.where(good, denom, torch.ones_like(denom)), nan)


def _ccnorm_from(m: _Moments, sp: torch.Tensor) -> torch.Tensor:
    dof = (m.n.to(m.spg.dtype) - 1.0).clamp(min=1.0)
    cov = m.spg / dof
    var_p = m.spp / dof
    good = (m.n >= 2) & torch.isfinite(sp) & (sp > 0) & (var_p >= _TINY)
    denom = torch.sqrt(torch.where(good, var_p * sp, torch.ones_like(sp)))
    nan = torch.full((), math.nan, dtype=sp.dtype, device=sp.device)
    return torch.where(good, cov / denom, nan)


def _ccmax_from(m: _Moments, sp: torch.Tensor) -> torch.Tensor:
    dof = (m.n.to(m.sgg.dtype) - 1.0).clamp(min=1.0)
    var_g = m.sgg / dof
    undefined = torch.isnan(sp) | (m.n < 2) | (var_g < _TINY)
    ratio = torch.where(undefined | (sp <= 0), torch.zeros_like(sp), sp) / torch.where(
        undefined, torch.ones_like(var_g), var_g
    )
    nan = torch.full((), math.nan, dtype=sp.dtype, device=sp.device)
    return torch.where(undefined, nan, torch.sqrt(ratio))


def _prep_pair(pred: torch.Tensor, resp: torch.Tensor):
    _check_pair(pred, resp)
    p = pred.detach().to(torch.float64)
    y = resp.detach().to(torch.float64)
    g, ok = _psth_and_mask(y)
    return p, y, g, ok


# --------------------------------------------------------------------------------------------
# Public metrics
# --------------------------------------------------------------------------------------------


def psth(resp: torch.Tensor) -> torch.Tensor:
    """Peri-stimulus time histogram: NaN-ignoring mean over repeats.

    Args:
        resp: (B, N, R, T) floating responses, NaN where missing.
    Returns:
        (B, N, 1, T) in resp's dtype and device; NaN where no repeat is valid. Not detached.
    """
    _check_resp(resp)
    if not resp.is_floating_point():
        resp = resp.to(torch.get_default_dtype())
    return _psth_and_mask(resp)[0]


@torch.no_grad()
def signal_power(resp: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron signal and noise power (Sahani–Linden, as defined by Schoppe et al. 2016).

    Args:
        resp: (B, N, R, T) responses, NaN where missing (see the module docstring for the rule).
    Returns:
        (sp, np): two float64 tensors of shape (N,); NaN for neurons with no stimulus having
        at least 2 usable repeats and 2 valid bins.
    """
    _check_resp(resp)
    return _signal_noise_power(resp.detach())


@torch.no_grad()
def correlation(pred: torch.Tensor, resp: torch.Tensor) -> torch.Tensor:
    """Raw Pearson correlation between prediction and PSTH, pooled over all valid (b, t).

    Args:
        pred: (B, N, 1, T) prediction.
        resp: (B, N, R, T) responses, NaN where missing.
    Returns:
        (N,) float64; NaN with fewer than 2 valid points or sqrt(Σp_c²·Σg_c²) < 1e-12.
    """
    p, _, g, ok = _prep_pair(pred, resp)
    return _corr_from(_moments(p, g, ok))


@torch.no_grad()
def cc_norm(pred: torch.Tensor, resp: torch.Tensor) -> torch.Tensor:
    """Normalised correlation coefficient, Schoppe et al. 2016 (unbiased estimates).

    cc_norm_n = cov(p, g) / sqrt(var_p · SP_n), cov and var_p pooled over the concatenated valid
    (b, t) positions, SP_n the length-weighted mean of per-stimulus signal powers. Not clipped.
    With one repeat (R == 1) the signal power, and so cc_norm, is undefined: NaN (the reference
    returns the raw correlation there, a plain correlation under cc_norm's name; ``correlation``
    gives it under its own).

    Args:
        pred: (B, N, 1, T) prediction.
        resp: (B, N, R, T) responses, NaN where missing.
    Returns:
        (N,) float64; NaN where SP is not finite (fewer than 2 repeats) or <= 0, var_p < 1e-12, or
        < 2 valid points.
    """
    p, y, g, ok = _prep_pair(pred, resp)
    sp, _ = _signal_noise_power(y)
    return _ccnorm_from(_moments(p, g, ok), sp)


@torch.no_grad()
def cc_max(resp: torch.Tensor) -> torch.Tensor:
    """Noise ceiling sqrt(SP / var_g), var_g the unbiased PSTH variance over the valid positions.

    Where both are defined and cc_max > 0, cc_norm = correlation / cc_max exactly.

    Args:
        resp: (B, N, R, T) responses, NaN where missing.
    Returns:
        (N,) float64; 0 where SP <= 0 (as Schoppe's reference), NaN where SP is NaN, var_g < 1e-12
        or there are fewer than 2 valid points.
    """
    _check_resp(resp)
    y = resp.detach().to(torch.float64)
    g, ok = _psth_and_mask(y)
    sp, _ = _signal_noise_power(y)
    m = _moments(torch.zeros_like(g), g, ok)
    return _ccmax_from(m, sp)


@dataclass
class NeuronScores:
    """Per-neuron scores, all float64 CPU tensors of shape (N,).

    ``valid`` (bool (N,)) marks neurons whose cc_norm is finite.
    """

    cc_norm: torch.Tensor
    cc_abs: torch.Tensor
    signal_power: torch.Tensor
    noise_power: torch.Tensor
    cc_max: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        return torch.isfinite(self.cc_norm)


@dataclass
class ResponseSummary:
    """What the metrics need from a fixed set of responses, computed once and reused every epoch.

    psth: (B, N, 1, T) float64, NaN where no repeat is valid; valid: (B, N, 1, T) bool;
    signal_power, noise_power: (N,) float64 (NaN for a neuron with no stimulus of >= 2 usable repeats).
    """

    psth: torch.Tensor
    valid: torch.Tensor
    signal_power: torch.Tensor
    noise_power: torch.Tensor


@torch.no_grad()
def summarise_responses(resp: torch.Tensor) -> ResponseSummary:
    """PSTH, validity and signal/noise power of responses (B, N, R, T), for ``score_summary``."""
    _check_resp(resp)
    resp = resp.detach()
    parts = [_psth_and_mask(resp[b : b + 1].to(torch.float64)) for b in range(resp.shape[0])]
    g, ok = (torch.cat(x) for x in zip(*parts))
    sp, npow = _signal_noise_power(resp)
    return ResponseSummary(psth=g, valid=ok, signal_power=sp, noise_power=npow)


@torch.no_grad()
def score_summary(pred: torch.Tensor, target: ResponseSummary) -> NeuronScores:
    """All per-neuron scores of ``pred`` (B, N, 1, T) against precomputed responses.

    Equal to ``score_neurons(pred, resp)`` for ``target = summarise_responses(resp)``.
    """
    _check_pair(pred, target.psth)
    m = _moments(pred.detach().to(torch.float64), target.psth, target.valid)
    sp = target.signal_power
    cpu = torch.device("cpu")
    return NeuronScores(
        cc_norm=_ccnorm_from(m, sp).to(cpu),
        cc_abs=_corr_from(m).to(cpu),
        signal_power=sp.to(cpu),
        noise_power=target.noise_power.to(cpu),
        cc_max=_ccmax_from(m, sp).to(cpu),
    )


def score_neurons(pred: torch.Tensor, resp: torch.Tensor) -> NeuronScores:
    """All per-neuron scores at once (PSTH, centred sums and signal power computed once).

    Args:
        pred: (B, N, 1, T) prediction.
        resp: (B, N, R, T) responses, NaN where missing.
    Returns:
        NeuronScores with (N,) float64 CPU tensors; cc_norm equals ``cc_norm(pred, resp)``
        (NaN, with ``valid`` false, for neurons without repeats).
    """
    _check_pair(pred, resp)
    return score_summary(pred, summarise_responses(resp))


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def _reduce(per_neuron: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_neuron
    isnan = torch.isnan(per_neuron)
    filled = torch.where(isnan, torch.zeros_like(per_neuron), per_neuron)
    if reduction == "sum":
        return filled.sum()
    if reduction == "mean":
        return filled.sum() / (~isnan).sum().to(per_neuron.dtype)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _masked_loss(pred, resp, reduction, elementwise) -> torch.Tensor:
    _check_pair(pred, resp)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    dtype = pred.dtype if pred.is_floating_point() else torch.get_default_dtype()
    p = pred.to(dtype)
    with torch.no_grad():
        g, ok = _psth_and_mask(resp.detach().to(dtype))
        zero = torch.zeros((), dtype=dtype, device=p.device)
        g0 = torch.where(ok, g, zero)
    p0 = torch.where(ok, p, torch.zeros((), dtype=dtype, device=p.device))
    ell = torch.where(ok, elementwise(p0, g0), torch.zeros((), dtype=dtype, device=p.device))
    dims = (0, 2, 3)
    count = ok.sum(dim=dims)
    per_neuron = torch.where(
        count > 0,
        ell.sum(dim=dims) / count.clamp(min=1).to(dtype),
        torch.full((), math.nan, dtype=dtype, device=p.device),
    )
    return _reduce(per_neuron, reduction)


def mse_loss(pred: torch.Tensor, resp: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error against the PSTH.

    L_n = mean over valid (b, t) of (p − psth)²; then "mean" (NaN-ignoring mean over neurons,
    each neuron weighted equally), "sum" (NaN-ignoring sum) or "none" ((N,) vector, NaN for
    neurons without valid data).

    Args:
        pred: (B, N, 1, T) prediction (keeps its gradient and dtype).
        resp: (B, N, R, T) responses, NaN where missing.
    Returns:
        scalar, or (N,) for reduction="none".
    """
    return _masked_loss(pred, resp, reduction, lambda p, g: (p - g) ** 2)


def poisson_loss(
    pred: torch.Tensor, resp: torch.Tensor, reduction: str = "mean", log_input: bool = False
) -> torch.Tensor:
    """Poisson negative log-likelihood against the PSTH (no log(y!) term).

    Elementwise ℓ = p − g·log(max(p, 1e-8) + 1e-8), or with ``log_input`` ℓ = exp(p) − g·p;
    then the per-neuron mean over valid (b, t) and the reduction as in :func:`mse_loss`.

    Args:
        pred: (B, N, 1, T) prediction (rate, or log-rate with log_input).
        resp: (B, N, R, T) responses, NaN where missing.
    Returns:
        scalar, or (N,) for reduction="none".
    """
    if log_input:
        fn = lambda p, g: torch.exp(p) - g * p  # noqa: E731
    else:
        fn = lambda p, g: p - g * torch.log(p.clamp(min=_POISSON_EPS) + _POISSON_EPS)  # noqa: E731
    return _masked_loss(pred, resp, reduction, fn)


LOSSES: Dict[str, Callable[..., torch.Tensor]] = {
    "mse": mse_loss,
    "poisson": poisson_loss,
}
