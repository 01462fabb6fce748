"""Chunked streaming equals one forward pass, for every front-end and every readout."""

from __future__ import annotations

import pytest
import torch

from strf_runner.errors import ShapeError, StrfRunnerError
from strf_runner.frontends.registry import FRONTENDS, build_frontend, frontend_class
from strf_runner.models.encoding import EncodingModel
from strf_runner.models.registry import READOUTS, build_readout

AUDIO_FS, HOP, N_BANDS, N_NEURONS, N_FRAMES = 48000.0, 240, 34, 5, 23

FRONTEND_CASES = [(name, {}) for name in FRONTENDS.names()] + [
    ("mel", {"compression": "pcen", "learnable_gain": True}),
    ("sincnet", {"envelope": True, "envelope_ms": 12.0}),
    ("gammatone", {"fir": "direct", "pool_ms": 7.0}),
]
READOUT_CASES = [(name, {}) for name in READOUTS.names()] + [
    ("statenet", {"rnn": "lstm"}),
    ("statenet", {"rnn": "rnn", "hidden_size": 9}),
    ("linear", {"temporal_window_size": 1}),
    ("dnet", {"tau": 1.1}),  # a one-tap decay: no hidden history
]


def _case_id(case: tuple[str, dict]) -> str:
    name, kwargs = case
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


def perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter and float buffer moved off its initial value (batch-norm statistics included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point():
                t.mul_(1 + 0.1 * torch.rand(t.shape, generator=g, dtype=t.dtype)).add_(
                    0.01 * torch.randn(t.shape, generator=g, dtype=t.dtype)
                )
    return module


def build_model(frontend_case, readout_case, seed: int = 0) -> EncodingModel:
    (fe_name, fe_kwargs), (ro_name, ro_kwargs) = frontend_case, readout_case
    torch.manual_seed(seed)
    frontend = build_frontend(fe_name, **frontend_class(fe_name).geometry(N_BANDS, AUDIO_FS, HOP), **fe_kwargs)
    readout = build_readout(ro_name, n_bands=frontend.out_channels, n_neurons=N_NEURONS, **ro_kwargs)
    return perturbed(EncodingModel(frontend, readout), seed).double().eval()


def stimulus(model: EncodingModel, n_frames: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if model.view == "waveform":
        x = 0.1 * torch.randn(2, 1, n_frames * HOP, generator=g, dtype=torch.float64)
        x[..., : 3 * HOP] = 0  # a silent start: PCEN's and DNet's initial states see it
        return x
    return torch.randn(2, 1, N_BANDS, n_frames, generator=g, dtype=torch.float64) * 15 - 40


def streamed(model: EncodingModel, x: torch.Tensor, frames: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    unit = model.frontend.frame_size
    state, specs, preds, start = None, [], [], 0
    for n in frames:
        spec, pred, state = model.stream(x[..., start * unit : (start + n) * unit], state)
        specs.append(spec)
        preds.append(pred)
        start += n
    assert start * unit == x.shape[-1]
    return torch.cat(specs, dim=-1), torch.cat(preds, dim=-1)


SPLITS = {
    "one frame at a time": [1] * N_FRAMES,
    "uneven": [2, 7, 1, 9, 4],
    "whole": [N_FRAMES],
}


@pytest.mark.parametrize("frontend_case", FRONTEND_CASES, ids=_case_id)
def test_every_frontend_streams_exactly(frontend_case):
    model = build_model(frontend_case, ("linear", {}))
    x = stimulus(model, N_FRAMES)
    with torch.no_grad():
        whole_spec, whole_pred = model.frontend(x), model(x)
        for split in SPLITS.values():
            spec, pred = streamed(model, x, split)
            torch.testing.assert_close(spec, whole_spec, rtol=1e-9, atol=1e-9 * whole_spec.abs().max().item())
            torch.testing.assert_close(pred, whole_pred, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("readout_case", READOUT_CASES, ids=_case_id)
def test_every_readout_streams_exactly(readout_case):
    model = build_model(("native_pcen", {}), readout_case)
    x = stimulus(model, N_FRAMES)
    with torch.no_grad():
        whole = model(x)
        for split in SPLITS.values():
            _, pred = streamed(model, x, split)
            torch.testing.assert_close(pred, whole, rtol=1e-9, atol=1e-9)


def test_float32_leaf_statenet_streams_to_rounding():
    model = build_model(("leaf", {}), ("statenet", {})).float()
    x = stimulus(model, 60).float()
    with torch.no_grad():
        whole = model(x)
        _, pred = streamed(model, x, [13, 1, 20, 26])
    torch.testing.assert_close(pred, whole, rtol=1e-4, atol=1e-5)


def test_context_is_not_overstated_for_fir_frontends():
    """The declared context is what the definition needs, not a generous guess: LEAF (K = 721 taps,
    L = 960-sample pooling at hop 240) reaches 6 frames back; mel's 480-point window 1; gammatone's
    960 taps + 480-sample pooling 5 (959 + 480 samples end in frame t)."""
    contexts = {name: build_model((name, {}), ("linear", {})).frontend.context_frames for name in ("leaf", "mel", "gammatone")}
    assert contexts == {"leaf": 6, "mel": 1, "gammatone": 5}


def test_a_chunk_that_is_not_whole_frames_is_a_shape_error():
    model = build_model(("mel", {}), ("linear", {}))
    with pytest.raises(ShapeError, match="whole number of frames of 240"):
        model.stream(torch.zeros(1, 1, 250, dtype=torch.float64))


def test_streaming_in_training_mode_is_refused():
    model = build_model(("native", {}), ("linear", {})).train()
    with pytest.raises(StrfRunnerError, match="needs eval mode"):
        model.stream(torch.zeros(1, 1, N_BANDS, 4, dtype=torch.float64))
