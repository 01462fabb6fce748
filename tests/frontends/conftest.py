"""Fixtures shared by the front-end tests."""

from __future__ import annotations

from typing import Callable

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
