"""Per-channel energy normalisation (PCEN) with learnable per-channel parameters.

PCEN(t) = (E(t) / (eps + M(t))^alpha + delta)^r - delta^r, with the smoother
M(t) = (1 - s) M(t - 1) + s E(t) and initial state M(0) = E(0) (variant A of spec/frontends.md:
the first frame is its own history, so a clip's onset is not treated as a jump from silence).
The recursion runs as a chunked scan (``exp_smooth``): lower-triangular matrix products within
chunks of about sqrt(T) frames and across chunks, so there is no Python loop over time and output t
is computed from inputs <= t only (its gradient with respect to later frames is exactly zero).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_
from torch import nn

from strf_runner.errors import ConfigError



def exp_smooth(x: torch.Tensor, s: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """First-order recursive smoother M(t) = (1 - s) M(t - 1) + s x(t), M(-1) = ``initial``.

    x: (B, F, T); s: (F,) in (0, 1); initial: (B, F). Returns (B, F, T). Closed form
    M(t) = a^(t+1) initial + sum_{j<=t} s a^(t-j) x(j), a = 1 - s, evaluated in chunks of C frames:
    within a chunk a (C, C) lower-triangular product, across chunks a (n, n) strictly lower one.
    """
    b, f, t_len = x.shape
    c = max(1, math.isqrt(t_len - 1) + 1)
    n = -(-t_len // c)
    a = (1.0 - s).to(x.dtype)[:, None, None]  # (F, 1, 1)
    xs = F_.pad(s[:, None] * x, (0, n * c - t_len)).reshape(b, f, n, c)
    lag = torch.arange(c, device=x.device)
    within = lag[:, None] - lag[None, :]  # (C, C): d - c'
    tri = torch.where(within >= 0, a ** within.clamp(min=0).to(x.dtype), torch.zeros((), dtype=x.dtype, device=x.device))
    local = xs @ tri.transpose(1, 2)  # (B, F, n, C), zero carry-in
    chunk = torch.arange(n, device=x.device)
    gap = chunk[:, None] - 1 - chunk[None, :]  # (n, n): n - 1 - m
    a_c = a**c
    carry_mix = torch.where(gap >= 0, a_c ** gap.clamp(min=0).to(x.dtype), torch.zeros((), dtype=x.dtype, device=x.device))
    carry = (local[..., -1].unsqueeze(-2) @ carry_mix.transpose(1, 2)).squeeze(-2)  # (B, F, n): carry-in from x
    carry = carry + (a_c[..., 0] ** chunk.to(x.dtype)) * initial[..., None]  # plus the initial state
    rise = a ** (lag + 1).to(x.dtype)  # (F, 1, C): a^(d+1)
    out = local + carry[..., None] * rise
    return out.reshape(b, f, n * c)[..., :t_len]


def inverse_softplus(y: float) -> float:
    """x with softplus(x) = y, for storing positive parameters unconstrained."""
    return y + math.log(-math.expm1(-y))


class PCEN(nn.Module):
    """Learnable PCEN over (B, F, T) non-negative energies -> (B, F, T).

    Parameters (each (F,), 4F in all): alpha, delta, r stored through softplus, the smoother
    coefficient s through a sigmoid. ``learnable=False`` keeps them as fixed buffers.
    """

    def __init__(
        self,
        n_channels: int,
        alpha: float = 0.96,
        delta: float = 2.0,
        root: float = 0.5,
        smooth: float = 0.04,
        eps: float = 1e-6,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        checks = [
            (alpha > 0, "alpha", alpha, "> 0"),
            (delta > 0, "delta", delta, "> 0"),
            (root > 0, "root", root, "> 0"),
            (0 < smooth < 1, "smooth", smooth, "in (0, 1)"),
            (eps > 0, "eps", eps, "> 0"),
        ]
        for ok, key, value, need in checks:
            if not ok:
                raise ConfigError(f"frontend.{key} (PCEN) must be {need}, got {value}")
        self.eps = eps
        init = {
            "alpha_raw": inverse_softplus(alpha),
            "delta_raw": inverse_softplus(delta),
            "root_raw": inverse_softplus(root),
            "smooth_logit": math.log(smooth / (1.0 - smooth)),
        }
        for name, value in init.items():
            tensor = torch.full((n_channels,), value)
            if learnable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    @property
    def smooth(self) -> torch.Tensor:
        return torch.sigmoid(self.smooth_logit)

    def smoother(self, energy: torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
        """M(t) for energies (B, F, T) from the state before the first frame, ``initial`` (B, F); by
        default E(0) (the start of a clip)."""
        return exp_smooth(energy, self.smooth, energy[..., 0] if initial is None else initial)

    def forward(self, energy: torch.Tensor) -> torch.Tensor:
        return self.stream(energy)[0]

    def stream(self, energy: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """PCEN of the next chunk (B, F, T >= 1) of a long input, from the smoother value M (B, F) at
        the end of the previous chunk (None at the start); returns the output and M at this chunk's end."""
        if energy.shape[-1] == 0:
            return energy, state
        energy = energy.clamp(min=0)
        alpha = F_.softplus(self.alpha_raw)[:, None]
        delta = F_.softplus(self.delta_raw)[:, None]
        root = F_.softplus(self.root_raw).clamp(min=1e-3)[:, None]
        smooth = self.smoother(energy, state)
        gain = (self.eps + smooth) ** alpha
        return (energy / gain + delta) ** root - delta**root, smooth[..., -1]
