"""The naive reference the benchmark measures LEAF against: its definition, term by term."""

from __future__ import annotations

import torch
import torch.nn.functional as F_
from torch import nn

from strf_runner.frontends.leaf import ENVELOPE_EPS, CausalLEAF


class DirectLEAF(nn.Module):
    """LEAF by direct convolution: two real K-tap ``F.conv1d`` filterings (stride 1) of the input
    left-padded by K - 1, the magnitude envelope, a strided depthwise pooling conv, PCEN.

    Wraps a ``CausalLEAF`` and shares its parameters, so outputs and gradients are comparable and
    the same optimiser trains either. (B, 1, T*hop) -> (B, 1, F, T).
    """

    view = "waveform"
    fixed_finite = False  # its Gabor filters train, as LEAF's

    def __init__(self, leaf: CausalLEAF) -> None:
        super().__init__()
        self.leaf = leaf
        self.out_channels = leaf.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.leaf
        m.check_waveform(x)
        re, im = m.kernels()
        n_f = m.out_channels
        y = F_.conv1d(F_.pad(x, (m.kernel_size - 1, 0)), torch.cat([re, im])[:, None])
        env = torch.sqrt(y[:, :n_f] ** 2 + y[:, n_f:] ** 2 + ENVELOPE_EPS)
        pooled = F_.conv1d(F_.pad(env, (m.pool_size - m.hop, 0)), m.pooling_weights()[:, None], stride=m.hop, groups=n_f)
        return m.pcen(pooled).unsqueeze(1)
