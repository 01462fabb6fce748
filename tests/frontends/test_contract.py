"""The contract every registered front-end keeps, checked on all of them (new ones included)."""

from __future__ import annotations

import pytest
import torch

from strf_runner.errors import ShapeError
from strf_runner.frontends.registry import FRONTENDS, build_frontend

AUDIO_FS, HOP, N_BANDS, N_FRAMES = 48000.0, 240, 34, 8


def build(name: str):
    return build_frontend(name, **FRONTENDS.get(name).geometry(N_BANDS, AUDIO_FS, HOP)).double().eval()


def random_input(frontend, generator: torch.Generator) -> torch.Tensor:
    if frontend.view == "waveform":
        return 0.1 * torch.randn(2, 1, N_FRAMES * HOP, generator=generator, dtype=torch.float64)
    return torch.randn(2, 1, N_BANDS, N_FRAMES, generator=generator, dtype=torch.float64) * 20 - 30


def samples_per_frame(frontend) -> int:
    return HOP if frontend.view == "waveform" else 1


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_shape_and_declared_view(name):
    frontend = build(name)
    assert frontend.view in ("waveform", "spectrogram")
    out = frontend(random_input(frontend, torch.Generator().manual_seed(0)))
    assert out.shape == (2, 1, frontend.out_channels, N_FRAMES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_perturbing_the_future_leaves_past_frames_unchanged(name):
    """Random input; for each t, replace everything after bin t with other random values: frames <= t
    must not change (float64; FFT filterbanks may differ by rounding only, ~1e-16 of the output)."""
    frontend = build(name)
    g = torch.Generator().manual_seed(1)
    x = random_input(frontend, g)
    out = frontend(x).detach()
    scale = out.abs().max()
    per = samples_per_frame(frontend)
    for t in range(N_FRAMES - 1):
        y = x.clone()
        y[..., (t + 1) * per :] = random_input(frontend, g)[..., (t + 1) * per :]
        changed = frontend(y).detach()
        assert (changed[..., : t + 1] - out[..., : t + 1]).abs().max() <= 1e-12 * scale, f"frame <= {t} saw the future"
        assert not torch.equal(changed[..., t + 1 :], out[..., t + 1 :]), "the perturbation must reach later frames"


@pytest.mark.parametrize("name", FRONTENDS.names())
def test_wrong_rank_is_a_shape_error(name):
    frontend = build(name)
    with pytest.raises(ShapeError):
        frontend(torch.zeros(5, dtype=torch.float64))
