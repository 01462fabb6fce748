"""The encoding model: a front-end (the wav2spec slot) followed by a readout."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from strf_runner.config import BUDGET_KEYS, FrontendConfig, ModelConfig
from strf_runner.errors import StrfRunnerError
from strf_runner.frontends.base import Frontend
from strf_runner.frontends.registry import build_frontend, frontend_class
from strf_runner.models.registry import build_readout, readout_class

if TYPE_CHECKING:
    from strf_runner.data.dataset import NeuralDataset


class EncodingModel(nn.Module):
    """stims -> frontend -> (B, 1, F, T) -> readout -> predictions (B, N, 1, T).

    ``view`` is the dataset view the front-end consumes, so the runner loads the right one.
    """

    def __init__(self, frontend: Frontend, readout: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.readout = readout

    @property
    def view(self) -> str:
        return self.frontend.view

    def forward(self, stims: torch.Tensor) -> torch.Tensor:
        return self.readout(self.frontend(stims))

    def from_finite(self, features: torch.Tensor) -> torch.Tensor:
        """``forward`` from the front-end's finite-stage output (B, F, T) (see ``Frontend.fixed_finite``)."""
        return self.readout(self.frontend.after_finite(features))

    def stream(
        self, stims: torch.Tensor, state: tuple[Any, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[Any, Any]]:
        """The next chunk of a long input (a whole number of frames, >= 1) through both stages.

        Returns (front-end output (B, 1, F, T), predictions (B, N, 1, T), state for the next chunk);
        state None at the start. Concatenated over chunks, both equal ``forward`` on the whole input
        (eval mode, up to float rounding), with memory bounded by the chunk.
        """
        if self.training:
            raise StrfRunnerError(
                "EncodingModel.stream needs eval mode (call model.eval()): in training mode batch norm "
                "uses each chunk's own statistics, so chunks would not add up to the whole"
            )
        fe_state, ro_state = state or (None, None)
        spec, fe_state = self.frontend.stream(stims, fe_state)
        pred, ro_state = self.readout.stream(spec, ro_state)
        return spec, pred, (fe_state, ro_state)

    def n_params(self) -> int:
        """Number of trainable scalars (buffers such as batch-norm statistics excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def build_encoding_model(spec: dict[str, Any]) -> EncodingModel:
    """The model a spec describes: {"frontend": {"name": ..., **kwargs}, "readout": {"name": ..., **kwargs}}
    with every constructor argument (data-dependent ones included: n_bands, audio_fs, hop, n_neurons), so
    a saved spec rebuilds the exact architecture without the dataset. A key an older spec lacks (the
    option did not exist when it was saved) takes the value its runs were built with: the class's
    ``UNRECORDED`` (not its default, which may have changed since)."""
    fe, ro = dict(spec["frontend"]), dict(spec["readout"])
    fe_name, ro_name = fe.pop("name"), ro.pop("name")
    fe = {**getattr(frontend_class(fe_name), "UNRECORDED", {}), **fe}
    ro = {**getattr(readout_class(ro_name), "UNRECORDED", {}), **ro}
    return EncodingModel(build_frontend(fe_name, **fe), build_readout(ro_name, **ro))


def build_model(frontend: FrontendConfig, readout: ModelConfig, data: NeuralDataset) -> EncodingModel:
    """Front-end + readout as configured, for ``data``'s geometry, each built once; ``model.spec`` holds
    every constructor argument of both (data-dependent ones included: what ``build_encoding_model``
    rebuilds it from). The config's training budget (lr, epochs) is no constructor argument."""
    frontend_spec = {k: v for k, v in dataclasses.asdict(frontend).items() if k != "lr"}
    frontend_spec.update(frontend_class(frontend.name).geometry(data.n_bands, data.audio_fs, data.hop))
    built = build_frontend(**frontend_spec)
    readout_spec = {k: v for k, v in dataclasses.asdict(readout).items() if k not in BUDGET_KEYS}
    readout_spec.update(n_bands=built.out_channels, n_neurons=data.n_neurons)
    model = EncodingModel(built, build_readout(**readout_spec))
    model.spec = {"frontend": frontend_spec, "readout": readout_spec}
    return model


def model_info(model: EncodingModel, data: NeuralDataset) -> dict[str, Any]:
    """model.json: the model's spec plus what a user of the model needs to feed it and read its output."""
    return {
        "spec": model.spec,
        "view": data.view,
        "neuron_ids": list(data.neuron_ids),
        "dt_ms": data.dt_ms,
        "audio_fs": data.audio_fs,
        "hop": data.hop,
        "spectrogram_freqs_hz": None if data.spectrogram_freqs is None else [float(f) for f in data.spectrogram_freqs],
    }
