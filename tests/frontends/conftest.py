"""Fixtures shared by the front-end tests."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch


def _jacobian_causality(model: torch.nn.Module, x: torch.Tensor, hop: int, exact: bool = True) -> None:
    """For each output frame t: d(sum over channels of out[t]) / dx is zero at samples >= (t+1)*hop and
    not all zero before. ``exact=False`` (FFT paths) allows rounding: |after| <= 1e-6 max|before|."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    for t in range(out.shape[-1]):
        (g,) = torch.autograd.grad(out[..., t].sum(), x, retain_graph=True)
        after, before = g[..., (t + 1) * hop :], g[..., : (t + 1) * hop]
        assert before.abs().max() > 0, t
        if exact:
            assert (after == 0).all(), t
        elif after.numel():
            assert after.abs().max() <= 1e-6 * before.abs().max(), t


@pytest.fixture
def jacobian_causality() -> Callable[..., None]:
    return _jacobian_causality


def _pcen_loop(e: np.ndarray, alpha, delta, r, s, eps) -> np.ndarray:
    """PCEN by its plain recursion over time, per band (F, T), initial state M(0) = E(0)."""
    out = np.zeros_like(e)
    for f in range(e.shape[0]):
        m = e[f, 0]
        for t in range(e.shape[1]):
            if t > 0:
                m = (1 - s[f]) * m + s[f] * e[f, t]
            out[f, t] = (e[f, t] / (eps + m) ** alpha[f] + delta[f]) ** r[f] - delta[f] ** r[f]
    return out


@pytest.fixture
def pcen_loop() -> Callable[..., np.ndarray]:
    return _pcen_loop
