"""``ln``: the Linear-Nonlinear model, the Linear STRF followed by a per-neuron parametric softplus."""

from __future__ import annotations

from dataclasses import dataclass

from strf_runner.config import ModelConfig, require_at_least_one
from strf_runner.models.blocks import ParametricSoftplus
from strf_runner.models.linear import LinearSTRF
from strf_runner.models.registry import register


@dataclass
class LNModelConfig(ModelConfig):
    """Linear STRF + per-neuron parametric softplus (2N more parameters)."""

    name: str = "ln"
    temporal_window_size: int = 9
    batch_norm: bool = True

    @property
    def nonnegative_output(self) -> bool:
        return True

    def check(self) -> None:
        require_at_least_one(self, "model", ("temporal_window_size",))


@register("ln", config=LNModelConfig)
class LinearNonlinear(LinearSTRF):
    """Linear STRF -> per-neuron batch norm -> alpha * softplus(beta x) / beta per neuron.

    (B, C_in, F, T) -> (B, N, 1, T), non-negative rates. The Linear parameters plus 2N (alpha and
    beta of every neuron, learnable, 1 at initialisation): 37,009 at F = 34, L = 9, N = 119.
    Causal exactly as the Linear STRF: output frame t sees input frames t-L+1 .. t only.
    """

    def __init__(
        self, n_bands: int, n_neurons: int, temporal_window_size: int = 9, in_channels: int = 1, batch_norm: bool = True
    ) -> None:
        super().__init__(n_bands, n_neurons, temporal_window_size, in_channels, batch_norm)
        self.activation = ParametricSoftplus(n_neurons)
